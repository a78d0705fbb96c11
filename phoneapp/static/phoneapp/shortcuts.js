// Whether letter shortcuts are on, per browser: H on a picture's page, P, N, C, S, U, Z, B, X, G in the review
// queue. The Account page's switch (account.js) turns them off (WCAG 2.1.4: a speech-input user's words must not
// decide a picture); review.js and upload.js ask here before acting on a letter.
(function () {
  "use strict";

  const SETTING = "phonecheck-single-key-shortcuts";

  function on() {
    try {
      return window.localStorage.getItem(SETTING) !== "off";
    } catch (error) {
      return true; // storage refused (private mode): the default
    }
  }

  function set(enabled) {
    if (enabled) window.localStorage.removeItem(SETTING);
    else window.localStorage.setItem(SETTING, "off");
  }

  window.PhoneCheckShortcuts = { on, set };
})();
