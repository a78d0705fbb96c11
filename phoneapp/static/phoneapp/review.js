// Keyboard review: P = phone, N = not a phone, C = confirm the model (absent when it is unsure), S = skip,
// U or Ctrl+Z = undo the last decision, arrow keys = previous (what was decided before) / next, Z = zoom to full
// resolution (the wheel zooms further), H = heat map. Each action is posted at once (with the CSRF token) and the
// next picture opened; the buttons do the same without JavaScript as ordinary form posts.
(function () {
  "use strict";

  const root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  const DECISION_KEYS = { p: "phone", n: "not_phone", c: "confirm" };
  const MAX_ZOOM = 4;

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function post(url, fields) {
    const body = new FormData();
    Object.entries(fields || {}).forEach(([name, value]) => body.append(name, value));
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    }).then((response) => response.json().then((data) => ({ ok: response.ok, data: data })));
  }

  // --- Zoom: the picture at its full resolution inside a scrolling frame; the wheel zooms further ------------
  function setUpZoom(review) {
    const frame = document.getElementById("zoom-frame");
    const picture = frame && frame.querySelector("img.picture");
    const button = document.getElementById("zoom-button");
    if (!frame || !picture) return () => {};
    let scale = 1;
    function apply() {
      const zoomed = frame.classList.contains("zoomed");
      const stack = frame.querySelector(".picture-stack");
      // Sizes set through the CSSOM, not a style attribute: allowed by a Content-Security-Policy without inline styles.
      stack.style.width = zoomed ? Math.round(picture.naturalWidth * scale) + "px" : "";
      if (button) button.setAttribute("aria-pressed", String(zoomed));
    }
    function toggle() {
      frame.classList.toggle("zoomed");
      scale = 1;
      apply();
    }
    frame.addEventListener("wheel", (event) => {
      if (!frame.classList.contains("zoomed")) return;
      event.preventDefault();
      scale = Math.min(MAX_ZOOM, Math.max(0.25, scale * (event.deltaY < 0 ? 1.25 : 0.8)));
      apply();
    }, { passive: false });
    if (button) button.addEventListener("click", toggle);
    review.dataset.zoomReady = "true";
    return toggle;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const review = document.getElementById("review");
    const undoButton = document.getElementById("undo-button");
    if (!review) {
      // The empty queue still offers undo (U / Ctrl+Z) of the last decision.
      if (undoButton) {
        document.addEventListener("keydown", (event) => {
          const key = event.key.toLowerCase();
          if ((key === "z" && (event.ctrlKey || event.metaKey)) || (key === "u" && !event.ctrlKey)) {
            event.preventDefault();
            undoButton.form.submit();
          }
        });
      }
      return;
    }
    const form = document.getElementById("decisions");
    const status = document.getElementById("review-status");
    const toggle = document.getElementById("show-heatmap");
    const zoom = setUpZoom(review);
    let busy = false;

    function say(message, isError) {
      status.textContent = message;
      status.classList.toggle("error", Boolean(isError));
    }

    function act(url, fields, button, pending) {
      if (busy) return;
      busy = true;
      if (button) button.classList.add("saving");
      say(pending);
      post(url, fields)
        .then(({ ok, data }) => {
          if (!ok) throw new Error(data.error || "Not saved.");
          say("Saved.");
          window.location.assign(data.next_url || data.url);
        })
        .catch((error) => {
          busy = false;
          if (button) button.classList.remove("saving");
          say(error.message || "Not saved; try again.", true);
        });
    }

    function decide(decision) {
      const button = form.querySelector('button[value="' + decision + '"]');
      if (!button) {
        say("The model is unsure about this picture: press P or N.", true);
        return;
      }
      act(review.dataset.decideUrl, { decision: decision }, button, "Saving…");
    }

    form.addEventListener("submit", (event) => {
      const decision = event.submitter && event.submitter.value;
      if (!decision) return; // let the browser post it
      event.preventDefault();
      decide(decision);
    });

    document.addEventListener("keydown", (event) => {
      if (event.altKey || event.repeat) return;
      if (event.target.closest("input[type=text], textarea, select")) return;
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (event.ctrlKey || event.metaKey) {
        if (key === "z" && undoButton && !undoButton.disabled) {
          event.preventDefault();
          act(review.dataset.undoUrl, {}, undoButton, "Undoing…");
        }
        return;
      }
      if (DECISION_KEYS[key]) {
        event.preventDefault();
        decide(DECISION_KEYS[key]);
      } else if (key === "s") {
        event.preventDefault();
        act(review.dataset.skipUrl, {}, document.getElementById("skip-button"), "Skipping…");
      } else if (key === "u" && undoButton && !undoButton.disabled) {
        event.preventDefault();
        act(review.dataset.undoUrl, {}, undoButton, "Undoing…");
      } else if (key === "z") {
        event.preventDefault();
        zoom();
      } else if (key === "ArrowRight" && review.dataset.nextUrl) {
        event.preventDefault();
        window.location.assign(review.dataset.nextUrl);
      } else if (key === "ArrowLeft" && review.dataset.previousUrl) {
        event.preventDefault();
        window.location.assign(review.dataset.previousUrl);
      } else if (key === "h" && toggle) {
        toggle.checked = !toggle.checked;
      }
    });
  });
})();
