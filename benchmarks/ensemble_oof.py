"""Would two shipped models together make fewer errors? Their out-of-fold predictions, combined.

``python benchmarks/ensemble_oof.py MODEL_A MODEL_B``

Both models' ``predictions.json`` hold grouped 5-fold cross-validation predictions on the same folds (every real
picture scored once, by the rotation that never trained on it). This combines the calibrated logits (mean and
max) and judges each fold at the threshold chosen on the **other** folds' predictions by the training rule
(best accuracy with at most 1% false positives), so no picture's score picks its own threshold. It also prints
the fewest errors any single threshold could give (an oracle: the ceiling of threshold tuning, not a result).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from ml_training.calibration import choose_threshold  # noqa: E402

SMALL_PHONE_SOURCE = "phone-usage-video"


def out_of_fold(model: str) -> dict[str, dict]:
    rows = json.loads((REPO_ROOT / "trained_models" / model / "predictions.json").read_text())["cross_validation"]
    return {row["path"]: row for row in rows if row["kind"] == "real"}


def logits(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return np.log(clipped / (1 - clipped))


def report(name: str, scores: np.ndarray, targets: np.ndarray, folds: np.ndarray, sources: np.ndarray) -> None:
    said = np.zeros(len(scores), dtype=bool)
    probabilities = 1 / (1 + np.exp(-scores))
    for fold in np.unique(folds):
        others = folds != fold
        threshold = choose_threshold(probabilities[others], targets[others], max_false_positive_rate=0.01)
        said[folds == fold] = probabilities[folds == fold] >= threshold
    errors = said != targets
    not_small = sources != SMALL_PHONE_SOURCE
    kept, kept_targets = scores[not_small], targets[not_small]
    oracle = min(int(np.sum((kept >= cut) != kept_targets)) for cut in np.unique(kept))
    print(
        f"{name:12s} all {len(scores)}: accuracy {np.mean(~errors):.4f} ({int(errors.sum())} errors: "
        f"FP {int(np.sum(said & (targets == 0)))}, FN {int(np.sum(~said & (targets == 1)))}) | without the "
        f"{int(np.sum(~not_small))} video frames: accuracy {np.mean(~errors[not_small]):.4f} "
        f"({int(errors[not_small].sum())} errors; best single threshold: {oracle})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    args = parser.parse_args()
    first, second = out_of_fold(args.model_a), out_of_fold(args.model_b)
    paths = sorted(set(first) & set(second))
    if any(first[path]["fold"] != second[path]["fold"] for path in paths):
        raise SystemExit("The two models were cross-validated on different folds; their predictions do not combine.")
    targets = np.array([first[path]["target"] for path in paths])
    folds = np.array([first[path]["fold"] for path in paths])
    sources = np.array([first[path]["source"] for path in paths])
    a = logits(np.array([first[path]["probability"] for path in paths]))
    b = logits(np.array([second[path]["probability"] for path in paths]))
    for name, scores in (
        (args.model_a, a),
        (args.model_b, b),
        ("mean logit", (a + b) / 2),
        ("max logit", np.maximum(a, b)),
    ):
        report(name, scores, targets, folds, sources)


if __name__ == "__main__":
    main()
