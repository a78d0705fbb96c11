"""Verdicts from phone log-odds: the labels, the :class:`Prediction` record and the calibration every engine shares.

Torch-free on purpose: the serving path (ONNX Runtime on NumPy arrays) and the PyTorch classifiers both turn
logits into verdicts here, so temperature and threshold are applied the same way whichever engine ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from inference.manifest import ModelManifest

PHONE = "phone"
NOT_PHONE = "not_phone"


@dataclass(frozen=True)
class Prediction:
    """One verdict: the label, the probability that the picture shows a phone, and the model that said so."""

    label: str
    probability: float
    model_version: str

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "probability": self.probability, "model_version": self.model_version}


def calibrated_probabilities(logits: Iterable[float] | np.ndarray, manifest: ModelManifest) -> list[float]:
    """Probability of "phone" from uncalibrated log-odds, with the manifest's temperature applied.

    The logistic function in float32, as ``torch.sigmoid`` computes it on the network's own output; a very
    confident logit overflows ``exp`` to infinity, which correctly gives 0.
    """
    scaled = np.asarray(logits, dtype=np.float32) / np.float32(manifest.temperature)
    with np.errstate(over="ignore"):
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-scaled))).tolist()


def verdicts(probabilities: Iterable[float], manifest: ModelManifest) -> list[Prediction]:
    """One :class:`Prediction` per probability, labelled by the manifest's decision threshold."""
    threshold = manifest.threshold
    return [
        Prediction(
            label=PHONE if probability >= threshold else NOT_PHONE,
            probability=round(float(probability), 6),
            model_version=manifest.version,
        )
        for probability in probabilities
    ]
