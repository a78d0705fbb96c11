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
    const said = boxes.map(({ box, score }) => boxSaid(box, score));
    svg.setAttribute(
      "aria-label",
      boxes.length + " phone" + (boxes.length === 1 ? "" : "s") + " found by the model: " + said.join("; ")
    );
    boxes.forEach(({ box, score }) => {
      const element = rect(box, score >= SURE_PLACE ? "box" : "box unsure-place");
      element.dataset.score = String(Math.round(score * 100));
      svg.append(withScoreTitle(element, score, box));
    });
    return svg;
  }

  // Where a box is, in words, for people who cannot see the picture: the third of the picture its centre is in,
  // and how wide it is ("the top left, 20% of the picture wide"); box_place_words in phoneapp/templatetags/ui.py
  // words it the same way.
  function placeWords(box) {
    const centreX = (box[0] + box[2]) / 2;
    const centreY = (box[1] + box[3]) / 2;
    const row = centreY < 1 / 3 ? "top" : centreY > 2 / 3 ? "bottom" : "middle";
    const column = centreX < 1 / 3 ? "left" : centreX > 2 / 3 ? "right" : "centre";
    const where = row === "middle" && column === "centre" ? "centre" : row + " " + column;
    return "the " + where + ", " + Math.max(1, Math.round((box[2] - box[0]) * 100)) + "% of the picture wide";
  }

  // A model's box in words with its own score: "phone in the top left, 20% of the picture wide (91%)", or under
  // SURE_PLACE "the phone may be in ..." (the template's _boxes.html says the same).
  function boxSaid(box, score) {
    return (score >= SURE_PLACE ? "phone in " : "the phone may be in ") + placeWords(box) + " (" + Math.round(score * 100) + "%)";
  }

  // A model's box says where it is and its own score on hover; the review queue's editor uses it for the model's
  // boxes too.
  function withScoreTitle(element, score, box) {
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = boxSaid(box, score);
    element.append(title);
    return element;
  }

  window.PhoneCheckBoxes = { clamp, canvas, rect, overlay, withScoreTitle, placeWords, SURE_PLACE };
})();
