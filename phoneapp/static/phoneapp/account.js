// The Account page's switch for single-key shortcuts, remembered per browser by shortcuts.js (loaded first). It was
// part of upload.js, which this page loaded for these few lines.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("single-key-shortcuts");
    if (!box) return;
    box.checked = window.PhoneCheckShortcuts.on();
    box.addEventListener("change", () => {
      try {
        window.PhoneCheckShortcuts.set(box.checked);
      } catch (error) {
        box.checked = true; // cannot be remembered in this browser
      }
    });
  });
})();
