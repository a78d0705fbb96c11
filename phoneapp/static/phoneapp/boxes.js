// Boxes over a picture, as SVG in percent of the picture (x1, y1, x2, y2 fractions -> x, y, width, height), so
// they stay in place at any size the picture is shown and need no inline style (CSP). Shared by upload.js (the
// model's boxes on upload cards, history cards and the detail page once a pending verdict arrives: the same
// markup as _boxes.html) and review.js (the reviewer's box editor).
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  // Below this own score a box is drawn dashed, "the phone may be here" (SURE_PLACE in phoneapp/selectors/decisions.py).
  const SURE_PLACE = 0.5;

  function clamp(value) {
    return Math.min(1, Math.max(0, value));
  }

  function canvas(className) {
    const svg = document.createElementNS(SVG_NS, "svg");
    [["class", className], ["viewBox", "0 0 100 100"], ["preserveAspectRatio", "none"], ["role", "img"]]
      .forEach(([name, value]) => svg.setAttribute(name, value));
    return svg;
  }

  function rect(box, className) {
    const element = document.createElementNS(SVG_NS, "rect");
    element.setAttribute("class", className);
    element.setAttribute("x", (box[0] * 100).toFixed(2));
    element.setAttribute("y", (box[1] * 100).toFixed(2));
    element.setAttribute("width", ((box[2] - box[0]) * 100).toFixed(2));
    element.setAttribute("height", ((box[3] - box[1]) * 100).toFixed(2));
    element.setAttribute("vector-effect", "non-scaling-stroke");
    return element;
  }

  // The model's boxes ([{box: [x1, y1, x2, y2], score}], as the API gives them) as an <svg class="boxes">, or
  // null when there is none; malformed entries are skipped, as the template's box_rects filter does.
  function overlay(entries) {
    const boxes = (Array.isArray(entries) ? entries : [])
      .filter((entry) => entry && Array.isArray(entry.box) && entry.box.length === 4 && entry.box.every(Number.isFinite))
      .map((entry) => ({ box: entry.box.map(clamp), score: Number(entry.score) || 0 }))
      .filter(({ box }) => box[2] > box[0] && box[3] > box[1]);
    if (!boxes.length) return null;
    const svg = canvas("boxes");
    svg.setAttribute("aria-label", boxes.length + " phone" + (boxes.length === 1 ? "" : "s") + " found by the model");
    boxes.forEach(({ box, score }) => {
      const element = rect(box, score >= SURE_PLACE ? "box" : "box unsure-place");
      element.dataset.score = String(Math.round(score * 100));
      svg.append(withScoreTitle(element, score));
    });
    return svg;
  }

  // A model's box says its own score on hover: "phone here, 91%", or under SURE_PLACE "the phone may be here, 35%"
  // (the template's _boxes.html says the same); the review queue's editor uses it for the model's boxes too.
  function withScoreTitle(element, score) {
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = (score >= SURE_PLACE ? "phone here, " : "the phone may be here, ") + Math.round(score * 100) + "%";
    element.append(title);
    return element;
  }

  window.PhoneCheckBoxes = { clamp, canvas, rect, overlay, withScoreTitle, SURE_PLACE };
})();
