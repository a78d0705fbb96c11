"""The one classifier contract: NumPy and Pillow in, :class:`Prediction` (with boxes and evidence) out.

Every engine (eager PyTorch, ONNX Runtime) and every model kind (zero-shot, fine-tuned, scene detector) is used
through this protocol, so callers never ask which engine or kind they hold. A leaf module: it imports neither
torch nor any engine, and the engines import it, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from inference.manifest import ModelManifest
from inference.prediction import Prediction

# The engines, by the names settings, manifests and logs use.
TORCH = "torch"
ONNXRUNTIME = "onnxruntime"

# Names of the graph's outputs, shared by the exporter and both engines.
LOGITS_OUTPUT = "phone_logits"
EVIDENCE_OUTPUT = "evidence"
BOXES_OUTPUT = "boxes"


@dataclass(frozen=True)
class ModelOutputs:
    """What a network gives for a preprocessed batch, as NumPy arrays whichever engine ran it.

    ``logits``: (N,) uncalibrated phone log-odds per picture. ``cells``: per-cell log-odds of every view
    (N * views, H, W), or None for a network without a cell map. ``cell_boxes``: (N, 4, H, W) box corners per
    cell for models that localise, else None.
    """

    logits: np.ndarray
    cells: np.ndarray | None = None
    cell_boxes: np.ndarray | None = None

    @classmethod
    def from_named(cls, arrays: Mapping[str, np.ndarray]) -> ModelOutputs:
        return cls(
            logits=np.asarray(arrays[LOGITS_OUTPUT]),
            cells=arrays.get(EVIDENCE_OUTPUT),
            cell_boxes=arrays.get(BOXES_OUTPUT),
        )


@runtime_checkable
class Classifier(Protocol):
    """A loaded model version, ready to judge upright RGB pictures (see :func:`inference.loader.load`)."""

    manifest: ModelManifest
    model_dir: Path
    engine: str
    # The version its manifest asks where it says "not a phone" (inference/second_opinion.py); None for most.
    second_opinion: Classifier | None

    @property
    def version(self) -> str: ...

    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]:
        """Calibrated probability of "phone" per picture, in order."""
        ...

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """One verdict per picture, in order, with the boxes of the phones found."""
        ...

    def predict_and_explain(self, image: Image.Image) -> tuple[Prediction, np.ndarray | None]:
        """The verdict and, when the same pass gives it, the evidence map (None: ask :meth:`evidence_map`)."""
        ...

    def evidence_map(self, image: Image.Image) -> np.ndarray:
        """Where the phone evidence is: a small (H, W) map over the region the model sees, positive = phone."""
        ...
