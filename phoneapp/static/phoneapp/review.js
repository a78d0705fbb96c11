// Keyboard review: P = phone, N = not a phone, C = confirm the model (absent when it is unsure), S = skip,
// U or Ctrl+Z = undo the last decision, arrow keys = back (where the reviewer came from) / next, Z = zoom to full
// resolution (+ / - or Ctrl + wheel zoom further; the wheel, a finger or the arrow keys on the focused zoomed
// picture pan), H = heat map. Each action is posted at once
// (with the CSRF token) and the next picture opened; the buttons do the same without JavaScript as ordinary form
// posts. Letters act only while single-key shortcuts are on (shortcuts.js).
// Boxes: drag on the picture (mouse or touch) or press B (arrows move the box, Shift+arrows size it, Enter saves it,
// Esc drops it) to draw a box around a phone; click a box (or press X to select the first) and press X or Delete
// to remove it (the model's boxes too). Once the boxes were touched, they are posted with the decision; G makes
// the decision ground truth.
(function () {
  "use strict";

  const root = document.documentElement;
  const DECISION_KEYS = { p: "phone", n: "not_phone", c: "confirm" };
  const singleKeyShortcutsOn = window.PhoneCheckShortcuts.on; // shortcuts.js, loaded first
  const MAX_ZOOM = 4;
  const ZOOM_STEP = 1.25;
  const PAN_KEYS = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"];

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
    }).then((response) => response.json().then((data) => ({ ok: response.ok, status: response.status, data: data })));
  }

  // --- Zoom: the picture at its full resolution inside a scrolling frame; the wheel zooms further ------------
  function setUpZoom(review) {
    const frame = document.getElementById("zoom-frame");
    const picture = frame && frame.querySelector("img.picture");
    const button = document.getElementById("zoom-button");
    if (!frame || !picture) return { toggle: () => {}, step: () => {} };
    let scale = 1;
    // Never smaller than the picture fits the frame: "full resolution" of a small picture shrank it.
    function fitted() {
      return picture.naturalWidth ? Math.max(1, frame.clientWidth / picture.naturalWidth) : 1;
    }
    function apply() {
      const zoomed = frame.classList.contains("zoomed");
      const stack = frame.querySelector(".picture-stack");
      // Sizes set through the CSSOM, not a style attribute: allowed by a Content-Security-Policy without inline styles.
      stack.style.width = zoomed ? Math.round(picture.naturalWidth * scale) + "px" : "";
      if (button) button.setAttribute("aria-pressed", String(zoomed));
      // Zoomed, the frame takes focus, so the keyboard can move around it (arrows) and zoom (+ and -).
      if (zoomed) {
        frame.tabIndex = 0;
        frame.setAttribute("role", "region");
        frame.setAttribute(
          "aria-label",
          singleKeyShortcutsOn()
            ? "Zoomed picture: arrow keys move around it, + and - zoom, Z fits it"
            : "Zoomed picture: arrow keys move around it, Ctrl and the wheel zoom"
        );
      } else {
        frame.removeAttribute("tabindex");
        frame.removeAttribute("role");
        frame.removeAttribute("aria-label");
      }
    }
    function toggle() {
      scale = fitted();
      const hadFocus = frame.contains(document.activeElement);
      frame.classList.toggle("zoomed");
      apply();
      // Zoomed, the whole frame is brought into view (on a phone, above the decision bar: html's scroll-padding).
      if (frame.classList.contains("zoomed")) {
        frame.focus({ preventScroll: true });
        frame.scrollIntoView({ block: "nearest" });
      }
      else if (hadFocus && button) button.focus({ preventScroll: true });
    }
    // + and - (from the keyboard) zoom as Ctrl + wheel does; + on a fitted picture zooms it first.
    function step(direction) {
      if (!frame.classList.contains("zoomed")) {
        if (direction > 0) toggle();
        return;
      }
      scale = Math.min(MAX_ZOOM, Math.max(fitted(), scale * (direction > 0 ? ZOOM_STEP : 1 / ZOOM_STEP)));
      apply();
    }
    // Ctrl + wheel (and a trackpad's pinch, which browsers send as one) zooms; the plain wheel scrolls the zoomed
    // picture, as everywhere else (it only zoomed, so the wheel could not move around the picture).
    frame.addEventListener("wheel", (event) => {
      if (!frame.classList.contains("zoomed") || !(event.ctrlKey || event.metaKey)) return;
      event.preventDefault();
      step(event.deltaY < 0 ? 1 : -1);
    }, { passive: false });
    if (button) button.addEventListener("click", toggle);
    review.dataset.zoomReady = "true";
    return { toggle, step };
  }

  // --- Boxes: where the phones are, as fractions of the picture (x1, y1, x2, y2) ---------------------------------
  const { clamp, canvas, rect, withScoreTitle, placeWords, SURE_PLACE } = window.PhoneCheckBoxes; // boxes.js, loaded first
  const STEP = 0.02;
  const MIN_SIDE = 0.01;

  function setUpBoxes(review, form) {
    const stack = document.querySelector("#zoom-frame .picture-stack");
    const field = document.getElementById("boxes-field");
    const drawButton = document.getElementById("draw-box-button");
    const deleteButton = document.getElementById("delete-box-button");
    const count = document.getElementById("box-count");
    if (!stack || !field) return null;
    let boxes = [];
    let scores = []; // the model's score of each box, null for a box the reviewer drew
    try {
      boxes = JSON.parse(review.dataset.boxes || "[]");
      scores = JSON.parse(review.dataset.boxScores || "[]");
    } catch (error) {
      boxes = [];
    }
    if (scores.length !== boxes.length) scores = boxes.map(() => null);
    let selected = -1;
    let draft = null; // [x1, y1, x2, y2] while drawing
    let dragStart = null;
    let draftKeysSaid = false; // the keys for the box being drawn were said (render)
    const editor = canvas("box-editor");
    editor.id = "box-editor";
    stack.appendChild(editor);

    function render() {
      while (editor.firstChild) editor.removeChild(editor.firstChild);
      boxes.forEach((box, index) => {
        // The model's boxes as every other page draws them: dashed under 50%, with their score as the tooltip.
        const score = scores[index];
        const guess = score !== null && score < SURE_PLACE;
        const element = rect(box, "user-box" + (guess ? " unsure-place" : "") + (index === selected ? " selected" : ""));
        element.dataset.index = String(index);
        editor.appendChild(score === null ? element : withScoreTitle(element, score, box));
      });
      if (draft) editor.appendChild(rect(normalised(draft), "draft-box"));
      const counted = boxes.length + " box" + (boxes.length === 1 ? "" : "es");
      editor.setAttribute("aria-label", "Phone boxes: " + (boxes.length ? boxes.map(placeWords).join("; ") : "none"));
      // Said in a live region at each change: where the box being drawn or the selected box is, not only how many.
      // The keys are said once, when a box is started: said again at each arrow press, a screen reader read ~20 words
      // per step before the next place.
      if (draft) {
        count.textContent = "Drawing a box at " + placeWords(normalised(draft)) +
          (draftKeysSaid ? "." : ": arrows move it, Shift+arrows size it, Enter saves it, Esc drops it.");
        draftKeysSaid = true;
      } else {
        draftKeysSaid = false;
        count.textContent = counted + (selected >= 0 ? "; selected: " + placeWords(boxes[selected]) : "");
      }
      deleteButton.disabled = selected < 0;
    }

    function normalised(box) {
      return [Math.min(box[0], box[2]), Math.min(box[1], box[3]), Math.max(box[0], box[2]), Math.max(box[1], box[3])].map(clamp);
    }

    function touched() {
      field.disabled = false;
      field.value = JSON.stringify(boxes.map((box) => box.map((value) => Number(value.toFixed(4)))));
      review.dataset.boxesEdited = "true";
    }

    function commitDraft() {
      if (!draft) return false;
      const box = normalised(draft);
      draft = null;
      if (box[2] - box[0] >= MIN_SIDE && box[3] - box[1] >= MIN_SIDE) {
        boxes.push(box);
        scores.push(null);
        selected = boxes.length - 1;
        touched();
      }
      render();
      return true;
    }

    function startKeyboardDraft() {
      draft = [0.4, 0.35, 0.6, 0.65];
      selected = -1;
      render();
    }

    function deleteSelected() {
      if (selected < 0) return false;
      // Delete box is disabled once nothing is selected, and a disabled button drops focus to the page's body: a
      // keyboard or screen-reader user who pressed it was left nowhere. Focus goes to Draw a box, beside it.
      const hadFocus = document.activeElement === deleteButton;
      boxes.splice(selected, 1);
      scores.splice(selected, 1);
      selected = -1;
      touched();
      render();
      if (hadFocus) drawButton.focus({ preventScroll: true });
      return true;
    }

    // X without a selected box selects the first (the model's best) and X again deletes it: a box could only be
    // selected by clicking it, so a keyboard reviewer could not remove the model's wrong guess.
    function selectOrDelete() {
      if (selected >= 0) return deleteSelected();
      if (!boxes.length) return false;
      selected = 0;
      render();
      count.textContent += " · box 1 selected: X deletes it";
      return true;
    }

    function point(event) {
      const bounds = editor.getBoundingClientRect();
      return [clamp((event.clientX - bounds.left) / bounds.width), clamp((event.clientY - bounds.top) / bounds.height)];
    }

    editor.addEventListener("pointerdown", (event) => {
      if (event.button !== undefined && event.button !== 0) return;
      const index = event.target.dataset ? event.target.dataset.index : undefined;
      // A finger on a zoomed picture pans it (the browser's own scrolling), unless B started a box to place.
      const zoomed = stack.closest(".zoom-frame.zoomed");
      if (event.pointerType === "touch" && zoomed && !draft && index === undefined) return;
      event.preventDefault();
      if (index !== undefined) {
        selected = Number(index);
        render();
        return;
      }
      dragStart = point(event);
      draft = [dragStart[0], dragStart[1], dragStart[0], dragStart[1]];
      editor.setPointerCapture(event.pointerId);
      render();
    });
    editor.addEventListener("pointermove", (event) => {
      if (!dragStart) return;
      const here = point(event);
      draft = [dragStart[0], dragStart[1], here[0], here[1]];
      render();
    });
    function endDrag() {
      if (!dragStart) return;
      dragStart = null;
      commitDraft();
    }
    editor.addEventListener("pointerup", endDrag);
    editor.addEventListener("pointercancel", () => {
      dragStart = null;
      draft = null;
      render();
    });
    drawButton.addEventListener("click", startKeyboardDraft);
    deleteButton.addEventListener("click", deleteSelected);
    render();

    // Keys reach a box being drawn only from the picture, the page itself or the button that started it: once Tab
    // has moved on, Enter and Space belong to the control with focus (Enter on "Phone" saved the box instead).
    function keysForDraft(event) {
      const target = event.target;
      return target === document.body || target === drawButton || Boolean(target.closest && target.closest("#zoom-frame"));
    }

    // Returns true when the key was the box editor's.
    return function onKey(event, key) {
      if (draft && !dragStart && keysForDraft(event)) {
        const move = { ArrowLeft: [-STEP, 0], ArrowRight: [STEP, 0], ArrowUp: [0, -STEP], ArrowDown: [0, STEP] }[key];
        if (move) {
          if (event.shiftKey) {
            draft[2] = clamp(draft[2] + move[0]);
            draft[3] = clamp(draft[3] + move[1]);
          } else {
            const width = draft[2] - draft[0];
            const height = draft[3] - draft[1];
            draft[0] = Math.min(1 - width, Math.max(0, draft[0] + move[0]));
            draft[1] = Math.min(1 - height, Math.max(0, draft[1] + move[1]));
            draft[2] = draft[0] + width;
            draft[3] = draft[1] + height;
          }
          render();
          return true;
        }
        if (key === "Enter") return commitDraft();
        if (key === "Escape") {
          draft = null;
          render();
          return true;
        }
        return true; // while drawing, other keys do nothing (no decision by accident)
      }
      if (key === "b") {
        startKeyboardDraft();
        // B pressed on another control (Zoom, just used to leave the zoomed picture) started a box no key could
        // move or save, and Enter pressed that control: the keys reach the box from the Draw button.
        if (!keysForDraft({ target: document.activeElement || document.body })) drawButton.focus({ preventScroll: true });
        return true;
      }
      if (key === "x" || key === "Delete" || key === "Backspace") return selectOrDelete();
      return false;
    };
  }

  // On a phone the decision bar is fixed to the screen's bottom (app.css). The page ends just above it, whatever
  // its height (two or three rows, a status line): with a fixed allowance Skip, Undo and the queue links sat
  // ~300 px above the bar, out of a thumb's reach.
  function keepPageClearOfDecisionBar(form) {
    if (!window.ResizeObserver) return;
    new ResizeObserver(() => {
      const height = getComputedStyle(form).position === "fixed" ? form.offsetHeight : 0;
      root.style.setProperty("--decision-bar-height", height + "px");
    }).observe(form);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const review = document.getElementById("review");
    const undoButton = document.getElementById("undo-button");
    if (!review) {
      // The empty queue still offers undo (U / Ctrl+Z) of the last decision, and ← back to it, as on every picture
      // of the queue (a reviewer who pressed ← after the last decision got nothing).
      if (undoButton) {
        const back = document.getElementById("back-to-last");
        document.addEventListener("keydown", (event) => {
          if (event.key === "ArrowLeft" && back && !event.altKey && !event.ctrlKey && !event.metaKey) {
            event.preventDefault();
            window.location.assign(back.href);
            return;
          }
          const key = event.key.toLowerCase();
          // U alone only while single-key shortcuts are on, as on every review page (WCAG 2.1.4).
          const plainU = key === "u" && !event.ctrlKey && !event.metaKey && !event.altKey && singleKeyShortcutsOn();
          if ((key === "z" && (event.ctrlKey || event.metaKey)) || plainU) {
            event.preventDefault();
            undoButton.form.submit();
          }
        });
      }
      return;
    }
    const form = document.getElementById("decisions");
    const status = document.getElementById("review-status");
    keepPageClearOfDecisionBar(form);
    const toggle = document.getElementById("show-heatmap");
    const zoom = setUpZoom(review);
    const boxKey = setUpBoxes(review, form);
    const groundTruth = document.getElementById("ground-truth");
    const boxesField = document.getElementById("boxes-field");
    let busy = false;

    function say(message, isError) {
      status.textContent = message;
      status.classList.toggle("error", Boolean(isError));
    }

    let stale = false;

    function act(url, fields, button, pending) {
      if (busy) return;
      busy = true;
      if (button) button.classList.add("saving");
      say(pending);
      post(url, fields)
        .then(({ ok, status, data }) => {
          // Another reviewer decided while this page was open: the next decision key reloads the page, so the
          // reviewer sees their decision before deciding again (it answered every key with the same 409).
          if (status === 409) stale = true;
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
      if (stale) {
        say("Reloading to show the other reviewer's decision…");
        window.location.reload();
        return;
      }
      const button = form.querySelector('button[value="' + decision + '"]');
      if (!button) {
        say("The model is unsure about this picture: press P or N.", true);
        return;
      }
      const fields = { decision: decision };
      // The review as this page showed it: if another reviewer decided meanwhile, the server refuses (409).
      const seenField = document.getElementById("seen-field");
      if (seenField) fields.seen = seenField.value;
      if (boxesField && !boxesField.disabled) fields.boxes = boxesField.value;
      if (groundTruth && groundTruth.checked) fields.ground_truth = "1";
      act(review.dataset.decideUrl, fields, button, "Saving…");
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
      // Letters alone act only while single-key shortcuts are on (Account page; WCAG 2.1.4): a speech-input user
      // saying a word must not decide a picture. Arrows, Enter, Esc, Delete and Ctrl+Z stay.
      if (key.length === 1 && !event.ctrlKey && !event.metaKey && !singleKeyShortcutsOn()) return;
      // Tab always moves on (a box being drawn stays, to be saved with Enter or dropped with Esc): the box tool
      // took every key, so the keyboard was trapped on the picture (WCAG 2.1.2).
      if (key === "Tab") return;
      if (!event.ctrlKey && !event.metaKey && boxKey && boxKey(event, key)) {
        event.preventDefault();
        return;
      }
      // Arrows, Page Up/Down, Home and End on the focused zoomed picture move around it (the browser scrolls it),
      // instead of opening the next picture.
      if (PAN_KEYS.includes(key) && event.target.closest && event.target.closest("#zoom-frame.zoomed")) return;
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
        zoom.toggle();
      } else if (key === "+" || key === "=" || key === "-") {
        event.preventDefault();
        zoom.step(key === "-" ? -1 : 1);
      } else if (key === "ArrowRight" && review.dataset.nextUrl) {
        event.preventDefault();
        window.location.assign(review.dataset.nextUrl);
      } else if (key === "ArrowLeft" && review.dataset.previousUrl) {
        event.preventDefault();
        window.location.assign(review.dataset.previousUrl);
      } else if (key === "h" && toggle) {
        toggle.checked = !toggle.checked;
      } else if (key === "g" && groundTruth) {
        groundTruth.checked = !groundTruth.checked;
      }
    });
  });
})();
