"""Calibration, the decision threshold and the unsure band of a scene model, from out-of-fold picture logits.

- Calibration is Platt scaling, ``p = sigmoid((z - shift) / T)``: the max over cells is biased upwards (the
  more cells, the higher the best one by chance), so a temperature alone cannot centre it. The shift is folded
  into the head's objectness bias when the model is written, so serving applies a temperature only.
- The threshold keeps the pooled false-positive rate of each slice (scenes; close-ups and look-alikes) within a
  limit and, within that, finds the most phones on average over phone sources: a source with few pictures
  weighs as much as one with many, which favours what generalises. (A limit on every source alone was tried
  first: the 77 look-alikes in hands allowed one false positive, which pushed the threshold to 0.99 and the
  recall on scenes to 12%; docs/experiments.md.)
- The unsure band is where this model's out-of-fold verdicts are unreliable: the narrowest interval around
  the threshold outside which each side's verdicts are at least ``RELIABLE`` correct.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from inference.prediction import logistic

RELIABLE = 0.97


def fit_platt(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(temperature, shift) minimising log-loss of ``sigmoid((logits - shift) / temperature)``."""
    z = torch.tensor(np.asarray(logits, dtype=np.float64))
    y = torch.tensor(np.asarray(targets, dtype=np.float64))
    scale = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # log(1 / T)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([scale, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.exp(scale) * z + bias, y)
        loss.backward()
        return loss

    optimiser.step(closure)
    a, b = float(torch.exp(scale).detach()), float(bias.detach())
    return 1.0 / a, -b / a


# Shipped scene models calibrate at temperatures of 0.66 to 1.0. Far above that, Platt scaling found that the
# out-of-fold scores barely tell the labels apart and flattened them towards the base rate: a retrain on a few
# dozen reviews gave T = 983,270, every verdict reading 60%, and no unsure band left.
UNINFORMATIVE_TEMPERATURE = 5.0

# What to do about it, in the words of ``python -m ml_training train``, which trains on folders only; the retrain
# passes its own (reviewed uploads, ``--data-dir`` and ``TRAINING_DATA_DIR``), since that is where it is read.
MORE_PICTURES = "train on more labelled pictures (add --data-dir folders)"


def uninformative_calibration(temperature: float, shift: float, *, remedy: str = MORE_PICTURES) -> str | None:
    """Why a fitted calibration shows the model cannot tell phones apart on its pictures, and ``remedy``, what
    the command that trained it can do about it; None when it can tell them apart."""
    if temperature <= UNINFORMATIVE_TEMPERATURE:
        return None
    return (
        f"its out-of-fold scores barely separate phones from the rest (calibration temperature {temperature:.3g}, "
        f"shift {shift:.3g}; shipped models: about 1), so its verdicts would all read close to one probability; "
        f"{remedy}"
    )


def calibrate(logits: np.ndarray, temperature: float, shift: float) -> np.ndarray:
    """Calibrated probabilities exactly as serving computes them once the shift is folded into the head.

    The shift is subtracted in float32 (what the head's bias does inside the graph), then serving's own
    :func:`inference.prediction.logistic` applies the temperature: one sigmoid for training and serving.
    """
    return logistic(np.asarray(logits, dtype=np.float32) - np.float32(shift), temperature)


def choose_threshold(
    probabilities: np.ndarray,
    targets: np.ndarray,
    sources: Sequence[str],
    slices: Sequence[str],
    *,
    max_false_positive_rate: float,
) -> float:
    """The threshold with the best mean recall over phone sources, each slice's phone-free pictures within the
    false-positive limit (pooled over the slice)."""
    probabilities, targets = np.asarray(probabilities, dtype=np.float64), np.asarray(targets)
    source_array, slice_array = np.asarray(sources), np.asarray(slices)
    negative_slices = sorted(set(slice_array[targets == 0]))
    phone_sources = sorted(set(source_array[targets == 1]))
    values = np.unique(probabilities)
    # Midpoints between neighbouring scores, one cut above them all (no phone verdict) and one at the lowest score
    # (every picture a phone: the best cut when there is nothing phone-free to keep out).
    candidates = np.concatenate([[0.5], [values[0]], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    best, best_key = float(candidates[-1]), None
    for threshold in candidates:
        predicted = probabilities >= threshold
        fp_rates = [np.mean(predicted[(targets == 0) & (slice_array == name)]) for name in negative_slices]
        if fp_rates and max(fp_rates) > max_false_positive_rate:
            continue
        recalls = [np.mean(predicted[(targets == 1) & (source_array == name)]) for name in phone_sources]
        key = (float(np.mean(recalls)) if recalls else 0.0, -abs(threshold - 0.5))
        if best_key is None or key > best_key:
            best, best_key = float(threshold), key
    return best


def unsure_band(probabilities: np.ndarray, targets: np.ndarray, threshold: float) -> tuple[float, float]:
    """(low, high) around ``threshold``: below ``low`` and from ``high`` up, verdicts are ``RELIABLE`` correct."""
    probabilities, targets = np.asarray(probabilities, dtype=np.float64), np.asarray(targets)
    below = np.sort(np.unique(probabilities[probabilities < threshold]))[::-1]
    low = threshold
    for value in below:
        outside = probabilities < value
        if not outside.any() or np.mean(targets[outside] == 0) >= RELIABLE:
            low = float(value)
            break
    above = np.sort(np.unique(probabilities[probabilities >= threshold]))
    high = threshold
    for value in above:
        outside = probabilities > value
        if not outside.any() or np.mean(targets[outside] == 1) >= RELIABLE:
            high = float(value)
            break
    return round(min(low, threshold), 4), round(max(high, threshold), 4)
