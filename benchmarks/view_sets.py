"""Which view sets find small phones: one model's scores for its whole pictures and several sets of crops.

``python benchmarks/view_sets.py --model NAME --data-dir DIR [--composites 150] [--threads 2] [--out scores.json]``

For the model's test and validation folds (its ``split.json``) and as many small-phone and distractor
composites made from each fold's own pictures, it scores (on ONNX Runtime, as the worker does) the whole
picture, a 2x2 lattice of crops of 60% of a side, a 3x3 lattice of 45% crops, and the two 45% and 30% crops
centred on the model's strongest evidence cells. Each view set keeps the strongest logit of its views; its
threshold is the one that keeps false positives at or under 1% of the **validation** fold's real not_phone
pictures, and it is judged at that threshold on both folds. Views that a model was not trained to score show
here as a jump in that threshold (crops of look-alikes score high).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.images import open_image
from inference.loader import resolve_model_dir
from inference.preprocessing import crop_boxes, image_to_array
from inference.serving import EVIDENCE_OUTPUT, LOGITS_OUTPUT, load_serving_classifier
from ml_training.data import load_samples
from ml_training.evaluate import composite_test_set, samples_in_part
from ml_training.metrics import roc_auc

Row = dict[str, object]


def evidence_boxes(width: int, height: int, cells: np.ndarray, count: int, fraction: float) -> list[tuple[int, ...]]:
    """Crops of ``fraction`` of each side centred on the ``count`` strongest cells of an evidence map."""
    rows, columns = cells.shape
    crop_w, crop_h = round(width * fraction), round(height * fraction)
    boxes = []
    for index in np.argsort(-cells.flatten())[:count]:
        row, column = divmod(int(index), columns)
        left = min(max(0, round((column + 0.5) / columns * width - crop_w / 2)), width - crop_w)
        top = min(max(0, round((row + 0.5) / rows * height - crop_h / 2)), height - crop_h)
        boxes.append((left, top, left + crop_w, top + crop_h))
    return boxes


class ViewScorer:
    """Per-view logits of one model on ONNX Runtime: the whole picture, then every crop set."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        classifier = load_serving_classifier(model_dir, threads=threads)
        if not hasattr(classifier, "session"):
            raise SystemExit("This benchmark needs ONNX Runtime (pip install onnxruntime).")
        self.session = classifier.session
        self.input_name = self.session.get_inputs()[0].name
        self.preprocessing = classifier.manifest.preprocessing

    def _run(self, images: list) -> tuple[np.ndarray, np.ndarray]:
        arrays = np.stack([image_to_array(image, self.preprocessing) for image in images])
        logits, cells = self.session.run([LOGITS_OUTPUT, EVIDENCE_OUTPUT], {self.input_name: arrays})
        return logits, cells

    def score(self, image) -> dict[str, object]:
        logits, cells = self._run([image])
        width, height = image.size
        crop_sets = {
            "grid2": crop_boxes(width, height, 2, 0.6),
            "grid3": crop_boxes(width, height, 3, 0.45),
            "zoom45": evidence_boxes(width, height, cells[0], 2, 0.45),
            "zoom30": evidence_boxes(width, height, cells[0], 2, 0.30),
        }
        scores: dict[str, object] = {"full": float(logits[0])}
        for name, boxes in crop_sets.items():
            scores[name] = self._run([image.crop(box) for box in boxes])[0].tolist()
        return scores


VIEW_SETS: dict[str, Callable[[Row], float]] = {
    "whole picture": lambda row: row["full"],
    "+ 2x2 crops (60%)": lambda row: max([row["full"], *row["grid2"]]),
    "+ 3x3 crops (45%)": lambda row: max([row["full"], *row["grid3"]]),
    "+ best evidence crop (45%)": lambda row: max(row["full"], row["zoom45"][0]),
    "+ 2 best evidence crops (45%)": lambda row: max([row["full"], *row["zoom45"]]),
    "+ 2 best evidence crops (30%)": lambda row: max([row["full"], *row["zoom30"]]),
}


def score_folds(model_dir: Path, data_dir: Path, composites: int, threads: int) -> list[Row]:
    scorer = ViewScorer(model_dir, threads)
    samples = load_samples(data_dir)
    rows: list[Row] = []
    started = time.perf_counter()
    for part in ("test", "validation"):
        members = samples_in_part(model_dir, samples, data_dir, part)
        images = [open_image(s.path, draft_size=scorer.preprocessing.draft_size) for s in members]
        for sample, image in zip(members, images, strict=True):
            rows.append({"part": part, "kind": "real", "source": sample.source, "target": sample.target,
                         "path": sample.path, **scorer.score(image)})  # fmt: skip
        pictures, targets = composite_test_set(members, images, composites, seed=7)
        for image, target in zip(pictures, targets, strict=True):
            rows.append({"part": part, "kind": "composite", "source": "composite", "target": target,
                         **scorer.score(image)})  # fmt: skip
        print(f"{part}: {len(members)} pictures, {len(pictures)} composites ({time.perf_counter() - started:.0f}s)")
    return rows


def report(rows: list[Row]) -> None:
    def select(part: str, kind: str) -> list[Row]:
        return [row for row in rows if row["part"] == part and row["kind"] == kind]

    for name, strongest in VIEW_SETS.items():
        negatives = np.sort([strongest(r) for r in select("validation", "real") if r["target"] == 0])
        allowed = int(np.floor(0.01 * len(negatives)))
        threshold = float(negatives[-(allowed + 1)]) + 1e-6
        print(f"{name}: logit threshold {threshold:.2f}")
        for part in ("test", "validation"):
            real, composite = select(part, "real"), select(part, "composite")
            scores, targets = np.array([strongest(r) for r in real]), np.array([r["target"] for r in real])
            c_scores, c_targets = (
                np.array([strongest(r) for r in composite]),
                np.array([r["target"] for r in composite]),
            )
            video = np.array([strongest(r) for r in real if r["source"] == "phone-usage-video"])
            said = scores >= threshold
            print(
                f"  {part:10s} real: acc={np.mean(said == targets):.4f} FP={int(np.sum(said & (targets == 0)))} "
                f"FN={int(np.sum(~said & (targets == 1)))} AUC={roc_auc(scores, targets):.4f} | composites: "
                f"recall={int(np.sum((c_scores >= threshold) & (c_targets == 1)))}/{int(np.sum(c_targets))} "
                f"FP={int(np.sum((c_scores >= threshold) & (c_targets == 0)))} AUC={roc_auc(c_scores, c_targets):.3f}"
                f" | video frames {int(np.sum(video >= threshold))}/{len(video)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--composites", type=int, default=150, help="phone (and distractor) composites per fold")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="save every view's logit as JSON")
    parser.add_argument("--scores", type=Path, default=None, help="report on a saved --out file instead of scoring")
    args = parser.parse_args()
    if args.scores:
        rows = json.loads(args.scores.read_text())
    else:
        rows = score_folds(resolve_model_dir(args.model), args.data_dir, args.composites, args.threads)
        if args.out:
            args.out.write_text(json.dumps(rows))
    report(rows)


if __name__ == "__main__":
    main()
