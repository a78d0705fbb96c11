// Live uploads: drag and drop (or paste, or choose) many pictures, see each one's preview and upload progress,
// and its verdict appear in place as soon as the worker writes it. Also refreshes pending verdicts on the
// history and detail pages. Without JavaScript the form posts normally and the page lists the new uploads.
(function () {
  "use strict";

  const POLL_MS = 600;
  const PARALLEL_UPLOADS = 3;
  const root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  function csrfToken() {
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
  function verdictState(upload) {
    if (upload.status !== "done") return upload.status;
    if (upload.unsure) return "unsure";
    return upload.label;
  }

  function bar(percent) {
    const band = el("span", { class: "bar-band" });
    band.style.left = (root.dataset.unsureLow || 30) + "%";
    band.style.width = (root.dataset.unsureWidth || 40) + "%";
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = percent + "%";
    return el("span", { class: "bar", "aria-hidden": "true" }, [band, fill]);
  }

  function renderVerdict(element, upload) {
    const state = verdictState(upload);
    element.className = "verdict verdict-" + state;
    element.dataset.status = upload.status;
    element.replaceChildren();
    if (upload.status === "done") {
      const percent = Math.round(upload.probability * 100);
      const word = state === "unsure" ? "Unsure" : upload.label === "phone" ? "Phone" : "Not a phone";
      element.append(
        el("span", { class: "verdict-word", text: word + " — " + percent + "% phone" }),
        bar(percent),
        el("small", { class: "verdict-meta", text: "model " + (upload.model_version || "unknown") }),
      );
    } else if (upload.status === "failed") {
      element.append(el("span", { class: "verdict-word", text: "Failed" }), " ",
        el("small", { class: "verdict-meta", text: upload.error || "unknown error" }));
    } else {
      const name = upload.status.charAt(0).toUpperCase() + upload.status.slice(1);
      element.append(el("span", { class: "verdict-word", text: name + "…" }));
    }
  }

  function renderError(element, message) {
    element.className = "verdict verdict-failed";
    element.dataset.status = "failed";
    element.replaceChildren(el("span", { class: "verdict-word", text: "Not uploaded" }), " ",
      el("small", { class: "verdict-meta", text: message }));
  }

  function poll(element) {
    const id = element.dataset.verdictFor;
    fetch("/api/uploads/" + id + "/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((upload) => {
        renderVerdict(element, upload);
        if (upload.status === "pending" || upload.status === "processing") setTimeout(() => poll(element), POLL_MS);
      })
      .catch(() => setTimeout(() => poll(element), POLL_MS * 4));
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

  function addCard(file) {
    const list = document.getElementById("results");
    const preview = el("img", { alt: "" });
    preview.src = URL.createObjectURL(file);
    const thumb = el("span", { class: "result-thumb" }, [preview]);
    const name = el("span", { class: "name", text: file.name });
    const progress = el("progress", { class: "upload-progress", max: "100", value: "0", "aria-label": "Uploading " + file.name });
    const verdict = el("div", { class: "verdict verdict-uploading", "data-status": "uploading" },
      [el("span", { class: "verdict-word", text: "Waiting to upload…" })]);
    const item = el("li", { class: "result" }, [thumb, el("div", { class: "result-body" }, [name, progress, verdict])]);
    list.prepend(item);
    return { item, thumb, name, progress, verdict, preview };
  }

  function linkCard(card, created) {
    const href = "/uploads/" + created.id + "/";
    card.item.dataset.uploadId = created.id;
    const link = el("a", { href: href, class: "name", text: card.name.textContent });
    card.name.replaceWith(link);
    card.verdict.dataset.verdictFor = created.id;
  }

  function errorMessage(xhr) {
    try {
      const data = JSON.parse(xhr.responseText);
      if (data && data.error) return data.error;
    } catch (ignored) { /* not JSON: fall through */ }
    if (xhr.status === 0) return "The server could not be reached.";
    if (serverFailed(xhr)) return "The picture was not saved (HTTP " + xhr.status + ").";
    return "The upload was refused (HTTP " + xhr.status + ").";
  }

  // 5xx and no answer at all are the server's trouble, worth another try; a 4xx is a refusal with its reason.
  function serverFailed(xhr) {
    return xhr.status === 0 || xhr.status >= 500;
  }

  function renderRetry(job, message) {
    const { card } = job;
    const retry = el("button", { type: "button", class: "small retry", text: "Retry" });
    retry.addEventListener("click", () => {
      card.progress.value = 0;
      card.verdict.before(card.progress);
      card.verdict.className = "verdict verdict-uploading";
      card.verdict.dataset.status = "uploading";
      card.verdict.replaceChildren(el("span", { class: "verdict-word", text: "Waiting to upload…" }));
      waiting.push(job);
      next();
    });
    card.verdict.className = "verdict verdict-failed";
    card.verdict.dataset.status = "failed";
    card.verdict.replaceChildren(el("span", { class: "verdict-word", text: "Server error — try again" }), retry, " ",
      el("small", { class: "verdict-meta", text: message }));
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
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) card.progress.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("loadend", () => {
      running -= 1;
      card.progress.value = 100;
      card.progress.remove();
      if (xhr.status === 201) {
        const [created] = JSON.parse(xhr.responseText);
        linkCard(card, created);
        renderVerdict(card.verdict, { status: created.status });
        poll(card.verdict);
      } else if (serverFailed(xhr)) {
        renderRetry(job, errorMessage(xhr));
      } else {
        renderError(card.verdict, errorMessage(xhr));
      }
      next();
    });
    xhr.send(body);
  }

  function next() {
    const form = document.getElementById("upload-form");
    const parallel = Number((form && form.dataset.parallel) || PARALLEL_UPLOADS);
    while (running < parallel && waiting.length) upload(waiting.shift());
  }

  function enqueue(files, form) {
    const maxBytes = Number(form.dataset.maxBytes || 0);
    Array.from(files).forEach((file) => {
      const card = addCard(file);
      if (maxBytes && file.size > maxBytes) {
        card.progress.remove();
        renderError(card.verdict, "The file is larger than the limit of " + Math.round(maxBytes / 1048576) + " MB.");
        return;
      }
      waiting.push({ file, card });
    });
    next();
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

  function setUpForm() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = form.querySelector("input[type=file]");
    const zone = document.getElementById("drop-zone");
    // Chosen files go when the form is submitted (as without JavaScript); dropped and pasted ones at once.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!input.files.length) return;
      enqueue(input.files, form);
      input.value = "";
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

  // --- Heat map toggle: H on any page with the picture overlay ------------------------------------------------
  function setUpHeatmapKey() {
    const toggle = document.getElementById("show-heatmap");
    if (!toggle || document.getElementById("review")) return; // review.js handles keys on the review page
    document.addEventListener("keydown", (event) => {
      if (event.key.toLowerCase() !== "h" || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.closest("input[type=text], textarea, select")) return;
      toggle.checked = !toggle.checked;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpForm();
    setUpHeatmapKey();
    watchPending(document);
  });
})();
