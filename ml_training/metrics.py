"""Binary classification metrics in numpy: accuracy, precision, recall, F1, ROC-AUC, ECE, confusion matrix; and the
paired test of a candidate model against the one it would replace."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

ECE_BINS = 15
# One-sided significance of the paired test: a candidate is worse (or better) than its baseline when the exact p of
# that direction is below this. The promotion rule and ``compare`` both judge by it, so they cannot disagree.
SIGNIFICANCE = 0.05


@dataclass
class Metrics:
    """Figures for one set of pictures at one threshold; ``to_dict`` is what manifests and ``--json`` show.

    ``confusion`` is ``[[TN, FP], [FN, TP]]`` (rows: true not_phone, phone; columns: predicted).
    """

    count: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    roc_auc: float | None
    ece: float
    threshold: float
    confusion: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def roc_curve(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score, from (0, 0) to (1, 1)."""
    order = np.argsort(-probabilities, kind="mergesort")
    scores, labels = probabilities[order], targets[order]
    # One point per distinct score: the last index of each run of equal scores.
    last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    true_positives = np.cumsum(labels)[last]
    false_positives = (last + 1) - true_positives
    positives, negatives = max(1, labels.sum()), max(1, len(labels) - labels.sum())
    return np.r_[0.0, false_positives / negatives], np.r_[0.0, true_positives / positives]


def roc_auc(probabilities: np.ndarray, targets: np.ndarray) -> float | None:
    """Area under the ROC curve; ``None`` when only one class is present."""
    if len(np.unique(targets)) < 2:
        return None
    fpr, tpr = roc_curve(probabilities, targets)
    return float(np.trapezoid(tpr, fpr))


def reliability_bins(
    probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """(mean predicted probability of phone, observed share of phones, count) for each non-empty bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    return [
        (float(probabilities[index == b].mean()), float(targets[index == b].mean()), int(np.sum(index == b)))
        for b in range(bins)
        if np.any(index == b)
    ]


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Count-weighted gap between predicted probability of phone and the observed share, over equal-width bins.

    Computed on P(phone) itself (not the winning class's confidence) because P(phone) is the number users see.
    """
    if len(probabilities) == 0:
        return 0.0
    gaps = [
        count * abs(predicted - observed)
        for predicted, observed, count in reliability_bins(probabilities, targets, bins)
    ]
    return float(sum(gaps) / len(probabilities))


def binary_metrics(probabilities: np.ndarray, targets: np.ndarray, threshold: float | np.ndarray = 0.5) -> Metrics:
    """All figures for calibrated phone probabilities against 0/1 targets.

    ``threshold`` may be one per picture (pooled cross-validation, each fold with its own); the mean is reported.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    predicted = probabilities >= threshold
    tp = int(np.sum(predicted & (targets == 1)))
    fp = int(np.sum(predicted & (targets == 0)))
    fn = int(np.sum(~predicted & (targets == 1)))
    tn = int(np.sum(~predicted & (targets == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return Metrics(
        count=len(targets),
        accuracy=(tp + tn) / len(targets) if len(targets) else 0.0,
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        false_positive_rate=fp / (fp + tn) if fp + tn else 0.0,
        roc_auc=roc_auc(probabilities, targets),
        ece=expected_calibration_error(probabilities, targets),
        threshold=float(np.mean(threshold)),
        confusion=[[tn, fp], [fn, tp]],
    )


def format_metrics(name: str, metrics: Metrics) -> str:
    """One fixed-format line, the same in logs, reports and the CLI."""
    auc = "n/a" if metrics.roc_auc is None else f"{metrics.roc_auc:.4f}"
    (tn, fp), (fn, tp) = metrics.confusion
    return (
        f"{name}: n={metrics.count} acc={metrics.accuracy:.4f} prec={metrics.precision:.4f} "
        f"rec={metrics.recall:.4f} f1={metrics.f1:.4f} fpr={metrics.false_positive_rate:.4f} auc={auc} "
        f"ece={metrics.ece:.4f} thr={metrics.threshold:.3f} confusion=[[TN {tn}, FP {fp}], [FN {fn}, TP {tp}]]"
    )


def disagreements(first_right: Sequence[bool], second_right: Sequence[bool]) -> tuple[int, int]:
    """(pictures only the first model got right, pictures only the second got right), over the same pictures in
    the same order: the two counts :func:`mcnemar_one_sided` tests."""
    if len(first_right) != len(second_right):
        raise ValueError("Both models must be scored on the same pictures.")
    pairs = list(zip(first_right, second_right, strict=True))
    return sum(a and not b for a, b in pairs), sum(b and not a for a, b in pairs)


def mcnemar_one_sided(only_first_right: int, only_second_right: int) -> float:
    """McNemar's exact test that the second of two models is worse, from the pictures where exactly one is right:
    the binomial tail (p = 1/2) of the first being the only one right on at least as many pictures as observed."""
    disagreeing = only_first_right + only_second_right
    tail = sum(math.comb(disagreeing, k) for k in range(only_first_right, disagreeing + 1)) / 2**disagreeing
    return round(min(1.0, float(tail)), 6)


@dataclass(frozen=True)
class PairedTest:
    """McNemar's exact test of a candidate against its baseline -- the model it would replace (the active model when
    retraining, the older version in ``compare``) -- on the same pictures.

    Only the pictures where exactly one of the two is right carry evidence, so the counts are all it holds and both
    one-sided p values follow from them. One class serves the promotion rule and ``compare`` so the two can never
    count or judge differently.
    """

    pictures: int
    only_baseline_right: int
    only_candidate_right: int

    @property
    def p_candidate_worse(self) -> float:
        return mcnemar_one_sided(self.only_baseline_right, self.only_candidate_right)

    @property
    def p_candidate_better(self) -> float:
        return mcnemar_one_sided(self.only_candidate_right, self.only_baseline_right)

    @property
    def candidate_worse(self) -> bool:
        return self.p_candidate_worse < SIGNIFICANCE

    def to_dict(self) -> dict[str, int | float | bool]:
        """The retrain report's ``paired_tests`` entry. Its keys are stored in reports and model versions' metrics
        (documented in docs/retraining.md), where the baseline is always the active model: keep them as they are."""
        return {
            "pictures": self.pictures,
            "candidate_only_right": self.only_candidate_right,
            "active_only_right": self.only_baseline_right,
            "p_candidate_worse": self.p_candidate_worse,
            "candidate_worse": self.candidate_worse,
        }


def paired_test(*, baseline: Sequence[bool], candidate: Sequence[bool]) -> PairedTest:
    """The paired test from per-picture correctness of both models on the same pictures in the same order."""
    only_baseline, only_candidate = disagreements(baseline, candidate)
    return PairedTest(pictures=len(candidate), only_baseline_right=only_baseline, only_candidate_right=only_candidate)
