"""Temperature scaling and the decision threshold, both fitted on validation pictures only."""

from __future__ import annotations

import numpy as np


def _nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    # log(1 + exp(-x)) for positives, log(1 + exp(x)) for negatives, computed stably.
    return float(np.mean(np.logaddexp(0.0, np.where(targets == 1, -scaled, scaled))))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, *, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature T minimising the log-loss of ``sigmoid(logits / T)`` (Guo et al., 2017).

    One parameter, so a log-spaced grid refined once is exact enough and cannot diverge.
    """
    logits, targets = np.asarray(logits, dtype=np.float64), np.asarray(targets)
    if len(logits) == 0 or len(np.unique(targets)) < 2:
        return 1.0
    grid = np.geomspace(low, high, 200)
    best = grid[int(np.argmin([_nll(logits, targets, t) for t in grid]))]
    fine = np.geomspace(best / 1.05, best * 1.05, 41)
    return float(fine[int(np.argmin([_nll(logits, targets, t) for t in fine]))])


def choose_threshold(probabilities: np.ndarray, targets: np.ndarray, *, max_false_positive_rate: float = 0.01) -> float:
    """The threshold with the best accuracy among those keeping validation false positives within the limit.

    Ties go to the threshold nearest 0.5, so a calibrated model keeps the natural cut when nothing is gained.
    Candidates are midpoints between sorted probabilities (a threshold exactly on a picture's score is fragile).
    """
    probabilities, targets = np.asarray(probabilities, dtype=np.float64), np.asarray(targets)
    if len(probabilities) == 0 or len(np.unique(targets)) < 2:
        return 0.5
    values = np.unique(probabilities)
    candidates = np.concatenate([[0.5], (values[1:] + values[:-1]) / 2])
    negatives = max(1, int(np.sum(targets == 0)))
    best, best_key = 0.5, None
    for threshold in candidates:
        predicted = probabilities >= threshold
        false_positive_rate = np.sum(predicted & (targets == 0)) / negatives
        if false_positive_rate > max_false_positive_rate:
            continue
        key = (np.mean(predicted == (targets == 1)), -abs(threshold - 0.5))
        if best_key is None or key > best_key:
            best, best_key = float(threshold), key
    if best_key is None:  # no threshold meets the limit: take the strictest one that still flags anything
        best = float(values[-1])
    return best
