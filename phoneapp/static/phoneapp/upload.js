// Live uploads: drag and drop (or paste, or choose) many pictures, see each one's preview and upload progress,
// and its verdict appear in place as soon as the worker writes it. Also refreshes pending verdicts on the
// history and detail pages. Without JavaScript the form posts normally and the page lists the new uploads.
(function () {
  "use strict";

  // Pending verdicts are asked for again after POLL_MS, then less and less often (x1.5 each time, up to
  // POLL_MAX_MS): a page of uploads waiting out a worker outage must not flood the server. Errors back off faster.
  const POLL_MS = 600;
  const POLL_MAX_MS = 5000;
  const POLL_ERROR_MAX_MS = 30000;
  const PARALLEL_UPLOADS = 3;
  // An upload pending longer than this is waiting out a busy or stopped worker: its card says so, in the server's
  // words and after the server's delay (templatetags/ui.py, handed over as data- attributes of <body>).
  const PENDING_NOTE_AFTER_MS = Number(document.body.dataset.pendingNoteAfterMs || 30000);
  const PENDING_NOTE = document.body.dataset.pendingNote || "Saved; waiting for the classifier.";
  const NOTHING_CHOSEN = "No picture chosen yet: choose one or more pictures, then press Upload.";

  // Read when each request is sent, from the cookie first: signing in again in another tab changes the token, and
  // the one this page was drawn with is then refused.
  function csrfToken() {
    const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
    if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    });
    (children || []).forEach((child) => node.append(child));
    return node;
  }

  // --- Verdicts: the same markup as _verdict.html -------------------------------------------------------------
  // The API says what to show (verdict: phone / not_phone / unsure, judged by the deciding model version's own
  // threshold and unsure band); this page never decides a verdict itself, and never shows one without a number.
  const VERDICT_WORDS = { phone: "Phone", not_phone: "Not a phone", unsure: "Unsure" };
  // After the verdict word, as _verdict.html says it: "Not a phone — 3% chance of a phone" (the part after the
  // word in normal weight), "over 99%" and "under 1%" at the ends (templatetags/ui.py, phone_chance).
  function chanceText(percent) {
    const said = percent >= 100 ? "over 99%" : percent <= 0 ? "under 1%" : percent + "%";
    return said + " chance of a phone";
  }
  const SVG = "http://www.w3.org/2000/svg";

  function hasVerdict(upload) {
    return upload.status === "done" && typeof upload.probability === "number" && Boolean(VERDICT_WORDS[upload.verdict]);
  }

  function verdictState(upload) {
    if (upload.status === "done") return hasVerdict(upload) ? upload.verdict : "processing";
    return upload.status;
  }

  function svgRect(className, x, y, width, height) {
    const rect = document.createElementNS(SVG, "rect");
    [["class", className], ["x", x], ["y", y], ["width", width], ["height", height]]
      .forEach(([name, value]) => rect.setAttribute(name, String(value)));
    return rect;
  }

  // The probability bar: the model's unsure band shaded and its threshold marked, as SVG attributes (no inline
  // styles, which a Content-Security-Policy may forbid).
  function bar(upload, percent) {
    const svg = document.createElementNS(SVG, "svg");
    [["class", "bar"], ["aria-hidden", "true"], ["viewBox", "0 0 100 10"], ["preserveAspectRatio", "none"],
      ["focusable", "false"]].forEach(([name, value]) => svg.setAttribute(name, value));
    const band = upload.unsure_band || [upload.threshold, upload.threshold];
    const low = Math.round(band[0] * 1000) / 10;
    const high = Math.round(band[1] * 1000) / 10;
    const legend = document.createElementNS(SVG, "title");
    // Rounded once, from the band itself, as the server does (the bar's 0.1 steps rounded again gave 85 for 84.49).
    legend.textContent = barLegend(band[0], band[1]);
    svg.append(legend, svgRect("bar-track", 0, 0, 100, 10),
      svgRect("bar-band", low, 0, Math.round((high - low) * 10) / 10, 10),
      svgRect("bar-fill", 0, 2, percent, 6), svgRect("bar-threshold", Math.round(upload.threshold * 1000) / 10, 0, 0.8, 10));
    return svg;
  }

  // Shown on hover, as templatetags/ui.py's decision_bar words it.
  function barLegend(low, high) {
    return "Phone above " + bandEdgePercent(high) + "%, not a phone below " + bandEdgePercent(low) +
      "%, unsure in between (the shaded band)";
  }

  // A band edge in whole percent, with a decimal or two only where that says 0 or 100 ("Phone above 100%" for a
  // band ending at 0.9995); as templatetags/ui.py's _band_edge_percent.
  function bandEdgePercent(fraction) {
    for (const places of [0, 1, 2]) {
      const scale = 10 ** places;
      const scaled = Math.round(fraction * 100 * scale);
      if (scaled > 0 && scaled < 100 * scale) return (scaled / scale).toFixed(places);
    }
    return (Math.round(fraction * 10000) / 100).toFixed(2);
  }

  // What a screen reader hears: one line per picture when its verdict (or refusal) is in, with its name, on each
  // page that waits for verdicts (upload, history and detail: a "Try again" there came to nothing said). The cards
  // themselves are not a live region: their every change (progress, "Uploading…", the bar, the boxes' titles) was
  // announced, ~6 announcements a picture, none of them saying which picture.
  const ANNOUNCED_LINES = 20;

  function announce(name, text) {
    const announcer = document.getElementById("upload-announcer");
    if (!announcer) return;
    announcer.append(el("span", { text: (name ? name + ": " : "") + text + ". " }));
    while (announcer.childElementCount > ANNOUNCED_LINES) announcer.firstElementChild.remove();
  }

  function announceOnce(element, name, text) {
    if (element.dataset.announced === text) return;
    element.dataset.announced = text;
    announce(name, text);
  }

  // The picture of a detail page says its verdict in its alt text, as _picture.html's (templatetags/ui.py,
  // verdict_alt): drawn while pending, it kept saying "(pending)" after the verdict had arrived.
  function renderPictureAlt(element, upload) {
    const holder = element.closest("[data-upload-id]");
    const picture = holder && holder.querySelector("img.picture");
    if (!picture) return;
    picture.alt = hasVerdict(upload)
      ? upload.original_name + ": judged " + VERDICT_WORDS[upload.verdict].toLowerCase() + ", " +
        chanceText(Math.round(upload.probability * 100))
      : upload.original_name + " (" + upload.status + ")";
  }

  function renderVerdict(element, upload) {
    renderPictureAlt(element, upload);
    const state = verdictState(upload);
    element.className = "verdict verdict-" + state;
    // "done" only once the verdict is really there: tests and styles key on it.
    element.dataset.status = hasVerdict(upload) || upload.status !== "done" ? upload.status : "processing";
    element.replaceChildren();
    if (hasVerdict(upload)) {
      const percent = Math.round(upload.probability * 100);
      element.append(
        el("span", { class: "verdict-word" }, [VERDICT_WORDS[upload.verdict] + " ",
          el("span", { class: "verdict-chance", text: "— " + chanceText(percent) })]),
        bar(upload, percent),
        verdictNote("model " + (upload.model_version || "unknown")),
      );
      announceOnce(element, upload.original_name, VERDICT_WORDS[upload.verdict] + ", " + chanceText(percent));
    } else if (upload.status === "failed") {
      element.append(el("span", { class: "verdict-word", text: "Failed" }), " ",
        verdictNote(upload.error || "unknown error"));
      announceOnce(element, upload.original_name, "failed: " + (upload.error || "unknown error"));
    } else {
      const name = state.charAt(0).toUpperCase() + state.slice(1);
      element.append(el("span", { class: "verdict-word", text: name + "…" }));
      // Timed by this page's own clock from when it first showed the card (a browser's clock can be off from the
      // server's), or already long when the server drew the page with the note.
      if (!element.dataset.firstSeen) element.dataset.firstSeen = String(Date.now());
      const waited = Date.now() - Number(element.dataset.firstSeen);
      if (upload.status === "pending" && (element.dataset.pendingLong === "1" || waited > PENDING_NOTE_AFTER_MS)) {
        element.append(" ", verdictNote(PENDING_NOTE));
      }
    }
  }

  function renderError(element, message, name) {
    announce(name, "not uploaded: " + message);
    renderFailed(element, "Not uploaded", " ", verdictNote(message));
  }

  // A card whose picture is not stored (yet): its word, then what can be done and why (a button, a note, a link).
  function renderFailed(element, word, ...parts) {
    element.className = "verdict verdict-failed";
    element.dataset.status = "failed";
    element.replaceChildren(el("span", { class: "verdict-word", text: word }), ...parts);
  }

  function verdictNote(text) {
    return el("small", { class: "verdict-meta", text: text });
  }

  // The model's boxes over the picture of the card (or detail page) holding this verdict, once it is known.
  function renderBoxes(element, upload) {
    const holder = element.closest("[data-upload-id]");
    const stack = holder && holder.querySelector(".picture-stack");
    if (!stack || !hasVerdict(upload)) return;
    const drawn = stack.querySelector("svg.boxes");
    const overlay = window.PhoneCheckBoxes.overlay(upload.boxes);
    if (drawn) drawn.remove();
    if (overlay) stack.append(overlay);
  }

  // Answers after which asking again cannot help: the upload is gone, or this browser is no longer signed in
  // (what to do then is a link to sign in again).
  const SIGNED_OUT = ["Signed out", () => signInLink("Sign in again to see the verdict.")];
  const POLL_STOPS = {
    404: ["Deleted", () => verdictNote("This upload no longer exists.")],
    401: SIGNED_OUT,
    403: SIGNED_OUT,
  };

  function renderStopped(element, word, explanation) {
    element.className = "verdict verdict-stopped";
    element.dataset.status = "stopped";
    element.replaceChildren(el("span", { class: "verdict-word", text: word }), " ", explanation());
  }

  // Opens in a new tab, so this page (and any picture still waiting on it) stays; its requests read the new token.
  function signInLink(text) {
    return el("a", { href: "/accounts/login/?next=/account/", target: "_blank", rel: "noopener", class: "sign-in-again", text: text });
  }

  // The timer of each verdict's next check, so a check can be brought forward (the connection is back, the page
  // is shown again) without starting a second chain of checks.
  const pollTimers = new Map();

  function pollLater(element, delay) {
    pollTimers.set(element, setTimeout(() => {
      pollTimers.delete(element);
      poll(element, delay);
    }, delay));
  }

  function pollPendingNow() {
    Array.from(pollTimers.keys()).forEach((element) => {
      clearTimeout(pollTimers.get(element));
      pollTimers.delete(element);
      poll(element);
    });
  }

  function poll(element, delay) {
    const id = element.dataset.verdictFor;
    const wait = delay || POLL_MS;
    fetch("/api/uploads/" + id + "/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((upload) => {
        renderVerdict(element, upload);
        renderBoxes(element, upload);
        if (needsPolling(upload)) pollLater(element, Math.min(wait * 1.5, POLL_MAX_MS));
      })
      .catch((status) => {
        if (POLL_STOPS[status]) {
          renderStopped(element, ...POLL_STOPS[status]);
          return;
        }
        pollLater(element, Math.min(wait * 2, POLL_ERROR_MAX_MS));
      });
  }

  function needsPolling(upload) {
    return upload.status === "pending" || upload.status === "processing" || (upload.status === "done" && !hasVerdict(upload));
  }

  function watchPending(scope) {
    scope.querySelectorAll("[data-verdict-for]").forEach((element) => {
      const status = element.dataset.status;
      if (status === "pending" || status === "processing") poll(element);
    });
  }

  // --- Upload queue: one request per file, so each has its own progress bar and verdict ----------------------
  const waiting = [];
  let running = 0;

  // --- A connection that comes and goes (a phone on a train) ---------------------------------------------------
  // A picture whose request got no answer, or a 503 (the server's database or storage away for now), waits in
  // `stalled` and is sent again by itself with the same Idempotency-Key (a picture the server had stored is
  // answered 200 with its upload, never stored twice): at once when the browser says it is back online, otherwise
  // after RESEND_MS, doubling up to RESEND_MAX_MS. A request that stops moving (no upload progress for STALL_MS,
  // or no answer ANSWER_WAIT_MS after its last byte) is given up and waits the same way. While the browser is
  // offline nothing new is started: waiting pictures say so.
  const RESEND_MS = 5000;
  const RESEND_MAX_MS = 60000;
  const STALL_MS = 45000;
  const ANSWER_WAIT_MS = 120000;
  const WATCHDOG_MS = 5000;
  const OFFLINE_NOTE = "Offline: sent when the connection is back.";
  const stalled = [];
  let resendDelay = null; // null: the first wait (firstResendMs) comes next
  let resendTimer = null;

  // The first wait, from the form's data-resend-ms when set (the browser tests shorten it), else RESEND_MS.
  function firstResendMs() {
    const form = document.getElementById("upload-form");
    return Number((form && form.dataset.resendMs) || RESEND_MS);
  }

  function offline() {
    return navigator.onLine === false;
  }

  // A button that puts the picture back in the queue at once, with its key. Named with its picture: tabbing through
  // a failed batch said "Retry", "Retry", "Retry". Pressed, it goes (the card says "Waiting to upload…"), so focus
  // moves to its card: it fell to the page's body, and a screen reader lost its place.
  function sendAgainButton(job, text) {
    const button = el("button",
      { type: "button", class: "small retry", text: text, "aria-label": text + " " + job.file.name });
    button.addEventListener("click", () => {
      const hadFocus = document.activeElement === button;
      resendNow(job);
      if (hadFocus) {
        job.card.item.tabIndex = -1;
        job.card.item.focus({ preventScroll: true });
      }
    });
    return button;
  }

  function connectionLost(job) {
    waitToResend(job, "Connection lost — sent again by itself",
      "No answer from the server: the picture may have been saved. Sending it again does not store it twice.");
  }

  // 503: the server says it cannot take pictures right now (its database or storage is away); nothing was saved.
  function serverUnavailable(job, xhr) {
    const seconds = Number(xhr.getResponseHeader("Retry-After"));
    if (seconds > 0) resendDelay = Math.max(resendDelay ?? firstResendMs(), Math.min(seconds * 1000, RESEND_MAX_MS));
    waitToResend(job, "Server busy — sent again by itself", errorMessage(xhr));
  }

  function waitToResend(job, word, note) {
    stalled.push(job);
    announce(job.file.name, word.toLowerCase());
    renderFailed(job.card.verdict, word, sendAgainButton(job, "Send now"), " ", verdictNote(note));
    scheduleResend();
  }

  function scheduleResend() {
    if (resendTimer !== null || !stalled.length) return;
    const delay = resendDelay ?? firstResendMs();
    resendTimer = setTimeout(() => {
      resendTimer = null;
      resendDelay = Math.min(delay * 2, RESEND_MAX_MS);
      resendStalled();
    }, delay);
  }

  function requeue(job) {
    showWaiting(job.card, offline() ? OFFLINE_NOTE : "");
    waiting.push(job);
  }

  function resendStalled() {
    stalled.splice(0).forEach(requeue);
    next();
  }

  function resendNow(job) {
    const at = stalled.indexOf(job);
    if (at >= 0) stalled.splice(at, 1);
    requeue(job);
    next();
  }

  function backOnline() {
    resendDelay = null;
    clearTimeout(resendTimer);
    resendTimer = null;
    waiting.forEach((job) => showWaiting(job.card));
    resendStalled();
    pollPendingNow();
  }

  function setUpConnectionWatch() {
    window.addEventListener("online", backOnline);
    window.addEventListener("offline", () => waiting.forEach((job) => showWaiting(job.card, OFFLINE_NOTE)));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") pollPendingNow();
    });
    // Leaving the page drops every picture not sent yet: the browser asks first.
    window.addEventListener("beforeunload", (event) => {
      if (!running && !waiting.length && !stalled.length) return;
      event.preventDefault();
      event.returnValue = "";
    });
  }

  // Signed out meanwhile (another tab, an expired session): the picture keeps its key and waits for Retry, with a
  // way to sign in again that leaves this page open.
  function signedOut(job) {
    announce(job.file.name, "not sent: you are signed out; sign in again, then press Retry");
    renderFailed(job.card.verdict, "Signed out — not sent", sendAgainButton(job, "Retry"), " ",
      signInLink("Sign in again (new tab), then press Retry."));
  }

  // As the server's pages show sizes after a reload (Django's filesizeformat): "0 bytes", "38.7 KB", "1.5 MB".
  function formatSize(bytes) {
    if (bytes < 1024) return bytes + (bytes === 1 ? " byte" : " bytes");
    if (bytes < 1048576) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  // A local preview of a chosen file; when the browser cannot draw it (HEIC, TIFF), a label says so until the
  // server's thumbnail replaces it (see useServerThumbnail).
  function localPreview(file) {
    const preview = el("img", { alt: "", "data-source": "local" });
    preview.addEventListener("error", () => {
      if (preview.dataset.source !== "local") return;
      preview.dataset.source = "none";
      preview.removeAttribute("src");
      preview.closest(".result-thumb, .chosen-thumb").classList.add("no-preview");
    }, { once: true });
    preview.src = URL.createObjectURL(file);
    return preview;
  }

  function useServerThumbnail(card, created) {
    if (!created.thumbnail) return;
    const drawn = card.preview.dataset.source === "local" && card.preview.complete && card.preview.naturalWidth > 0;
    if (drawn) return;
    card.preview.dataset.source = "server";
    card.thumb.classList.remove("no-preview");
    card.preview.src = created.thumbnail;
  }

  // Cards of one batch go on top in the order the files were chosen (each prepended alone, they read backwards).
  function addCard(file, before) {
    const list = document.getElementById("results");
    const preview = localPreview(file);
    // The same frame as the page's own cards (_thumb.html): the model's boxes go into the picture's stack.
    const stack = el("span", { class: "picture-stack" }, [preview]);
    const thumb = el("span", { class: "result-thumb" }, [stack, el("span", { class: "no-preview-text", text: "no preview" })]);
    const name = el("span", { class: "name", text: file.name });
    const size = el("small", { class: "muted result-size", text: formatSize(file.size) });
    const progress = el("progress", { class: "upload-progress", max: "100", value: "0", "aria-label": "Uploading " + file.name });
    // Not inside the live region's announcements until there is something true to say.
    const verdict = el("div", { class: "verdict verdict-uploading", "data-status": "uploading" },
      [el("span", { class: "verdict-word", text: "Waiting to upload…" })]);
    const item = el("li", { class: "result" }, [thumb, el("div", { class: "result-body" }, [name, size, progress, verdict])]);
    list.insertBefore(item, before || null);
    return { item, thumb, name, size, progress, verdict, preview };
  }

  function linkCard(card, created) {
    const href = "/uploads/" + created.id + "/";
    card.item.dataset.uploadId = created.id;
    const link = el("a", { href: href, class: "name", text: card.name.textContent });
    card.name.replaceWith(link);
    card.verdict.dataset.verdictFor = created.id;
  }

  // Once stored, the card says what the page says after a reload: the size kept (metadata removed) and the date.
  // The API writes "created" in the server's time zone (Django's TIME_ZONE), as the page's "Y-m-d H:i" does.
  function showStored(card, created) {
    card.size.textContent = formatSize(created.size_bytes) + " · " + created.created.slice(0, 10) + " " +
      created.created.slice(11, 16);
  }

  // The 201 carries the full verdict when it is already known; otherwise the card says "Pending…" and polls.
  function showCreated(card, created) {
    linkCard(card, created);
    showStored(card, created);
    useServerThumbnail(card, created);
    renderVerdict(card.verdict, created);
    renderBoxes(card.verdict, created);
    if (needsPolling(created)) poll(card.verdict);
  }

  function errorMessage(xhr) {
    try {
      const data = JSON.parse(xhr.responseText);
      if (data && data.error) return data.error;
    } catch (ignored) { /* not JSON: fall through */ }
    if (serverFailed(xhr)) return "The picture was not saved (HTTP " + xhr.status + ").";
    return "The upload was refused (HTTP " + xhr.status + ").";
  }

  // A 5xx is the server's trouble, worth another try; a 4xx is a refusal with its reason (no answer at all:
  // connectionLost; a 503, the server saying it is away for now: serverUnavailable, which tries again by itself).
  function serverFailed(xhr) {
    return xhr.status >= 500;
  }

  function renderRetry(job, message) {
    announce(job.file.name, "server error, maybe not saved; a Retry button is on its card");
    renderFailed(job.card.verdict, "Server error — try again", sendAgainButton(job, "Retry"), " ", verdictNote(message));
  }

  // A card back in the queue: its progress bar reset and "Waiting to upload…" (with why, when there is a reason).
  function showWaiting(card, note) {
    card.progress.value = 0;
    card.verdict.before(card.progress);
    card.verdict.className = "verdict verdict-uploading";
    card.verdict.dataset.status = "uploading";
    card.verdict.replaceChildren(el("span", { class: "verdict-word", text: "Waiting to upload…" }));
    if (note) card.verdict.append(" ", verdictNote(note));
  }

  // Past the upload rate limit: the picture waits its turn (the server's Retry-After) and is sent again by itself,
  // so dropping more pictures than the limit allows still uploads them all, only more slowly.
  function waitForBudget(job, xhr) {
    const seconds = Math.max(1, Number(xhr.getResponseHeader("Retry-After")) || 5);
    showWaiting(job.card, "Upload limit reached; trying again in " + seconds + " s.");
    setTimeout(() => {
      waiting.push(job);
      next();
    }, seconds * 1000);
  }

  function upload(job) {
    const { file, card } = job;
    running += 1;
    card.verdict.replaceChildren(el("span", { class: "verdict-word", text: "Uploading…" }));
    const body = new FormData();
    body.append("image", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/uploads/");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Idempotency-Key", job.key);
    let lastMoved = Date.now();
    let allSent = false;
    xhr.upload.addEventListener("progress", (event) => {
      lastMoved = Date.now();
      if (event.lengthComputable) card.progress.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.upload.addEventListener("load", () => {
      allSent = true;
      lastMoved = Date.now();
    });
    const watchdog = setInterval(() => {
      if (Date.now() - lastMoved > (allSent ? ANSWER_WAIT_MS : STALL_MS)) xhr.abort(); // a line gone silent
    }, WATCHDOG_MS);
    xhr.addEventListener("loadend", () => {
      clearInterval(watchdog);
      running -= 1;
      card.progress.value = 100;
      card.progress.remove();
      if (xhr.status === 201 || xhr.status === 200) {
        // 200: a retry of a picture the server had stored; its answer was lost on the way back.
        resendDelay = null;
        showCreated(card, JSON.parse(xhr.responseText)[0]);
      } else if (xhr.status === 429) {
        waitForBudget(job, xhr);
      } else if (xhr.status === 0) {
        connectionLost(job);
      } else if (xhr.status === 503) {
        serverUnavailable(job, xhr);
      } else if (xhr.status === 401 || xhr.status === 403) {
        signedOut(job);
      } else if (serverFailed(xhr)) {
        renderRetry(job, errorMessage(xhr));
      } else {
        renderError(card.verdict, errorMessage(xhr), file.name);
      }
      next();
    });
    xhr.send(body);
  }

  function next() {
    if (offline()) return; // the "online" event starts them again
    const form = document.getElementById("upload-form");
    const parallel = Number((form && form.dataset.parallel) || PARALLEL_UPLOADS);
    while (running < parallel && waiting.length) upload(waiting.shift());
  }

  function enqueue(files, form) {
    const maxBytes = Number(form.dataset.maxBytes || 0);
    const before = document.getElementById("results").firstElementChild;
    const summary = document.getElementById("chosen-summary");
    if (summary && summary.textContent === NOTHING_CHOSEN) summary.textContent = "";
    Array.from(files).forEach((file) => {
      const card = addCard(file, before);
      if (maxBytes && file.size > maxBytes) {
        card.progress.remove();
        renderError(card.verdict, "The file is larger than the limit of " + Math.round(maxBytes / 1048576) + " MB.", file.name);
        return;
      }
      if (offline()) showWaiting(card, OFFLINE_NOTE);
      waiting.push({ file, card, key: idempotencyKey() });
    });
    next();
  }

  // One Idempotency-Key per picture, the same on each of its retries: an answer lost on the way back (a dropped
  // connection) left the picture stored, and Retry stored it a second time. randomUUID needs a secure context (HTTPS
  // or localhost); getRandomValues works everywhere.
  function idempotencyKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function pastedFiles(event) {
    const items = event.clipboardData ? Array.from(event.clipboardData.items) : [];
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    return items
      .filter((item) => item.kind === "file" && item.type.startsWith("image/"))
      .map((item, index) => {
        const file = item.getAsFile();
        const extension = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
        return new File([file], "pasted-" + stamp + (index ? "-" + index : "") + "." + extension, { type: file.type });
      });
  }

  // Upload looks ready only once there is something to send, and says how much ("Upload 3 pictures"): offered
  // as ready before anything was chosen, it was pressed first and only then said to choose. Marked with
  // aria-disabled rather than disabled, so it keeps its place in the Tab order and pressing it still says what to do.
  function showUploadReady(count) {
    const button = document.getElementById("upload-button");
    if (!button) return;
    button.textContent = count ? "Upload " + count + (count === 1 ? " picture" : " pictures") : "Upload";
    if (count) button.removeAttribute("aria-disabled");
    else button.setAttribute("aria-disabled", "true");
  }

  function showChosen(files) {
    const list = document.getElementById("chosen");
    const summary = document.getElementById("chosen-summary");
    if (!list || !summary) return;
    list.replaceChildren();
    const chosen = Array.from(files);
    showUploadReady(chosen.length);
    const total = chosen.reduce((sum, file) => sum + file.size, 0);
    summary.textContent = chosen.length
      ? chosen.length + (chosen.length === 1 ? " picture" : " pictures") + " chosen, " + formatSize(total) + ": press Upload to send."
      : "";
    chosen.forEach((file) => {
      const thumb = el("span", { class: "chosen-thumb" }, [localPreview(file), el("span", { class: "no-preview-text", text: "no preview" })]);
      list.append(el("li", { class: "chosen-file" }, [thumb, chosenName(file.name),
        el("small", { class: "muted", text: formatSize(file.size) })]));
    });
  }

  // A chosen file's name on one line under its preview, a long one cut at its start ("…a8f3b2c4d1c5.jpg"): the end
  // tells pictures from one camera apart and holds the extension. Wrapped in the preview's narrow column, a long name
  // broke anywhere, even inside ".jpg". The line runs right to left so the ellipsis goes first; the name itself is
  // isolated (bdi) to keep its own direction. The whole name is in the title, and read out in full.
  function chosenName(name) {
    return el("span", { class: "name", title: name }, [el("bdi", { text: name })]);
  }

  function setUpForm() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = form.querySelector("input[type=file]");
    const zone = document.getElementById("drop-zone");
    // Chosen files go when the form is submitted (as without JavaScript); dropped and pasted ones at once.
    // Until then the chosen files are listed with previews, names and sizes.
    input.addEventListener("change", () => showChosen(input.files));
    showChosen(input.files); // a reload may keep the files chosen before it
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!input.files.length) {
        // Said in words, where "press Upload" is said: the input is hidden, so a browser's "required" bubble
        // pointed at nothing (and marked the control invalid before anything was done). Focus goes to the file
        // chooser, so Enter or Space there is the next step.
        document.getElementById("chosen-summary").textContent = NOTHING_CHOSEN;
        input.focus();
        return;
      }
      enqueue(input.files, form);
      input.value = "";
      showChosen([]);
    });
    let depth = 0;
    zone.addEventListener("dragenter", (event) => { event.preventDefault(); depth += 1; zone.classList.add("dragging"); });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); });
    zone.addEventListener("dragleave", () => { depth -= 1; if (depth <= 0) { depth = 0; zone.classList.remove("dragging"); } });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      if (event.dataTransfer && event.dataTransfer.files.length) enqueue(event.dataTransfer.files, form);
    });
    // A picture dropped next to the zone must not make the browser navigate away to it.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    document.addEventListener("paste", (event) => {
      const files = pastedFiles(event);
      if (files.length) {
        event.preventDefault();
        enqueue(files, form);
      }
    });
  }

  // --- History filters, the heat map key ---------------------------------------------------------------------
  // History on a phone: seven filters filled the first screen before any picture. Folded while none is set (the
  // summary says how many are); open without JavaScript and on wider screens.
  function foldFiltersOnPhones() {
    const panel = document.getElementById("filters-panel");
    if (panel && !panel.dataset.active && window.matchMedia("(max-width: 40rem)").matches) panel.open = false;
  }

  // Letter shortcuts can be switched off on the Account page, per browser (shortcuts.js, loaded first).
  const shortcuts = window.PhoneCheckShortcuts;

  // H on any page with the picture overlay.
  function setUpHeatmapKey() {
    const toggle = document.getElementById("show-heatmap");
    if (!toggle || document.getElementById("review")) return; // review.js handles keys on the review page
    document.addEventListener("keydown", (event) => {
      if (event.key.toLowerCase() !== "h" || event.ctrlKey || event.metaKey || event.altKey) return;
      if (!shortcuts.on()) return;
      if (event.target.closest("input[type=text], textarea, select")) return;
      toggle.checked = !toggle.checked;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpForm();
    setUpConnectionWatch();
    setUpHeatmapKey();
    foldFiltersOnPhones();
    watchPending(document);
  });
})();
