// Keyboard review: P = phone, N = not a phone, C = confirm the model, arrow keys = previous / next, H = heat map.
// A decision is posted at once (with the CSRF token) and the next picture is opened; the buttons do the same
// without JavaScript as ordinary form posts.
(function () {
  "use strict";

  const root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  const DECISION_KEYS = { p: "phone", n: "not_phone", c: "confirm" };

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const review = document.getElementById("review");
    if (!review) return;
    const form = document.getElementById("decisions");
    const status = document.getElementById("review-status");
    const toggle = document.getElementById("show-heatmap");
    let busy = false;

    function say(message, isError) {
      status.textContent = message;
      status.classList.toggle("error", Boolean(isError));
    }

    function decide(decision) {
      if (busy) return;
      busy = true;
      const button = form.querySelector('button[value="' + decision + '"]');
      if (button) button.classList.add("saving");
      say("Saving…");
      const body = new FormData();
      body.append("decision", decision);
      fetch(review.dataset.decideUrl, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      })
        .then((response) => response.json().then((data) => ({ ok: response.ok, data: data })))
        .then(({ ok, data }) => {
          if (!ok) throw new Error(data.error || "The decision was not saved.");
          say("Saved.");
          window.location.assign(data.next_url);
        })
        .catch((error) => {
          busy = false;
          if (button) button.classList.remove("saving");
          say(error.message || "The decision was not saved; try again.", true);
        });
    }

    form.addEventListener("submit", (event) => {
      const decision = event.submitter && event.submitter.value;
      if (!decision) return; // let the browser post it
      event.preventDefault();
      decide(decision);
    });

    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
      if (event.target.closest("input[type=text], textarea, select")) return;
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (DECISION_KEYS[key]) {
        event.preventDefault();
        decide(DECISION_KEYS[key]);
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
