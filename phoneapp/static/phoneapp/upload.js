// Uploads pictures through the JSON API and shows each verdict as soon as the worker writes it.
// Without JavaScript the form posts normally and the page lists the new uploads.
(function () {
  "use strict";

  const POLL_MS = 700;
  const UNSURE = [0.3, 0.7];

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function verdictText(upload) {
    if (upload.status === "done") {
      const percent = Math.round(upload.probability * 100);
      let word = upload.label === "phone" ? "Phone" : "Not a phone";
      if (upload.unsure) word = "Unsure";
      return word + " — " + percent + "% phone";
    }
    if (upload.status === "failed") return "Failed: " + (upload.error || "unknown error");
    return upload.status.charAt(0).toUpperCase() + upload.status.slice(1) + "…";
  }

  function renderVerdict(element, upload) {
    element.dataset.status = upload.status;
    element.className = "verdict verdict-" + upload.status + (upload.label ? " verdict-" + upload.label : "");
    element.textContent = verdictText(upload);
    if (upload.status === "done") {
      const meter = document.createElement("meter");
      meter.min = 0; meter.max = 1; meter.value = upload.probability;
      meter.setAttribute("aria-label", "Probability of phone");
      const model = document.createElement("small");
      model.className = "model";
      model.textContent = upload.model_version || "";
      element.append(" ", meter, " ", model);
    }
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

  function watchPending(root) {
    root.querySelectorAll("[data-verdict-for]").forEach((element) => {
      const status = element.dataset.status;
      if (status === "pending" || status === "processing") poll(element);
    });
  }

  function addResult(list, created, file) {
    const item = document.createElement("li");
    item.className = "result";
    item.dataset.uploadId = created.id;
    const image = document.createElement("img");
    image.src = "/uploads/" + created.id + "/thumbnail";
    image.alt = file ? file.name : "";
    image.width = 96;
    const link = document.createElement("a");
    link.href = "/uploads/" + created.id + "/";
    link.textContent = file ? file.name : "upload " + created.id;
    const verdict = document.createElement("span");
    verdict.dataset.verdictFor = created.id;
    verdict.dataset.status = created.status;
    verdict.className = "verdict verdict-" + created.status;
    verdict.textContent = "Pending…";
    item.append(image, " ", link, " ", verdict);
    list.prepend(item);
    return verdict;
  }

  function showError(message) {
    let box = document.getElementById("upload-error");
    if (!box) {
      box = document.createElement("p");
      box.id = "upload-error";
      box.className = "error";
      box.setAttribute("role", "alert");
      document.getElementById("upload-form").after(box);
    }
    box.textContent = message;
  }

  function send(files) {
    const list = document.getElementById("results");
    const body = new FormData();
    Array.from(files).forEach((file) => body.append("image", file));
    return fetch("/api/uploads/", {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    })
      .then((response) => response.json().then((data) => ({ ok: response.ok, data: data })))
      .then(({ ok, data }) => {
        if (!ok) return showError(data.error || "The upload was refused.");
        const existing = document.getElementById("upload-error");
        if (existing) existing.remove();
        data.forEach((created, index) => poll(addResult(list, created, files[index])));
      })
      .catch(() => showError("The upload failed: the server could not be reached."));
  }

  function setUpForm() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = form.querySelector("input[type=file]");
    const zone = document.getElementById("drop-zone");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.files.length) send(input.files).then(() => form.reset());
    });
    ["dragenter", "dragover"].forEach((name) =>
      zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dragging"); }));
    ["dragleave", "drop"].forEach((name) =>
      zone.addEventListener(name, () => zone.classList.remove("dragging")));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) send(event.dataTransfer.files);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpForm();
    watchPending(document);
  });
  window.phoneCheckUnsureBand = UNSURE;
})();
