"""Verdicts from phone log-odds: the labels, the :class:`Prediction` record and the calibration every engine shares.

Torch-free on purpose: the serving path (ONNX Runtime on NumPy arrays) and the PyTorch classifiers both turn
logits into verdicts here, so temperature and threshold are applied the same way whichever engine ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.boxes import Box
from inference.manifest import ModelManifest

PHONE = "phone"
NOT_PHONE = "not_phone"


@dataclass(frozen=True)
class Prediction:
    """One verdict: the label, the probability that the picture shows a phone, the model that said so, and where.

    ``boxes`` are the phones found, best first (empty for a "not a phone" verdict and for models that do not
    localise).
    """

    label: str
    probability: float
    model_version: str
    boxes: tuple[Box, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "probability": self.probability,
            "model_version": self.model_version,
            "boxes": [box.to_dict() for box in self.boxes],
        }


def logistic(logits: Iterable[float] | np.ndarray, temperature: float) -> np.ndarray:
    """``sigmoid(logits / temperature)`` in float32: the one sigmoid serving applies and training calibrates with.

    Float32, as ``torch.sigmoid`` computes it on the network's own output, so a threshold chosen in training
    splits served probabilities at the same place; a very confident logit overflows ``exp`` to infinity, which
    correctly gives 0.
    """
    scaled = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    with np.errstate(over="ignore"):
        probabilities: np.ndarray = np.float32(1.0) / (np.float32(1.0) + np.exp(-scaled))
    return probabilities


def calibrated_probabilities(logits: Iterable[float] | np.ndarray, manifest: ModelManifest) -> list[float]:
    """Probability of "phone" from uncalibrated log-odds, with the manifest's temperature applied (:func:`logistic`)."""
    probabilities: list[float] = logistic(logits, manifest.temperature).tolist()
    return probabilities


def verdicts(
    probabilities: Iterable[float], manifest: ModelManifest, boxes: Sequence[Sequence[Box]] | None = None
) -> list[Prediction]:
    """One :class:`Prediction` per probability, labelled by the manifest's decision threshold, with its boxes."""
    threshold = manifest.threshold
    probabilities = list(probabilities)
    found = boxes if boxes is not None else [()] * len(probabilities)
    return [
        Prediction(
            label=PHONE if probability >= threshold else NOT_PHONE,
            probability=round(float(probability), 6),
            model_version=manifest.version,
            boxes=tuple(picture_boxes) if probability >= threshold else (),
        )
        for probability, picture_boxes in zip(probabilities, found, strict=True)
    ]
