"""What every engine does the same: batching, calibration, verdicts, boxes and evidence maps from raw outputs.

An engine only says how a preprocessed batch becomes :class:`~inference.contract.ModelOutputs` (:meth:`run`);
everything a caller sees is computed here from those arrays, so PyTorch and ONNX Runtime give the same verdicts,
probabilities and boxes by construction, not by keeping two copies of the same code in step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from inference.boxes import Box, decode_boxes
from inference.contract import Classifier, ModelOutputs
from inference.evidence import merged_evidence
from inference.manifest import ModelManifest
from inference.prediction import Prediction, calibrated_probabilities, verdicts
from inference.preprocessing import multiscale_settings, multiscale_views_array
from inference.scene_options import SceneNetworkOptions
from inference.second_opinion import revised_probabilities

# Largest batch handed to an engine at once: per-picture cost is flat from 1 to 16 on this CPU, and bigger
# batches only cost memory (a 256-picture batch of Lite0 activations is over 1 GB).
DEFAULT_MAX_BATCH = 8


class BaseClassifier(ABC):
    """A model version on some engine; subclasses implement :meth:`run` (and may explain without cells)."""

    engine: str = ""

    def __init__(self, manifest: ModelManifest, model_dir: Path, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.manifest = manifest
        self.model_dir = Path(model_dir)
        self.max_batch = max(1, max_batch)
        self.multiscale_grid, self.multiscale_fraction = multiscale_settings(manifest.options)
        # How a localising network pools its cells: its boxes take the pooling's lift off (boxes.own_evidence).
        self.cell_pooling = SceneNetworkOptions.from_manifest_options(manifest.options).picture_pooling
        # The loaded model version the manifest's ``second_opinion`` names (set by the loader), or None.
        self.second_opinion: Classifier | None = None

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def views_per_image(self) -> int:
        """Views the network sees per picture: the whole picture, plus its crops for a multi-scale model."""
        return 1 + self.multiscale_grid**2

    def preprocess_array(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The (N * views, C, H, W) float32 batch the network takes, made by the shared NumPy preprocessing."""
        return multiscale_views_array(
            images, self.manifest.preprocessing, grid=self.multiscale_grid, fraction=self.multiscale_fraction
        )

    @abstractmethod
    def run(self, batch: np.ndarray) -> ModelOutputs:
        """The network's raw outputs for a preprocessed batch (engine-specific)."""

    def outputs(self, images: Sequence[Image.Image]) -> ModelOutputs:
        """Raw outputs for any number of pictures, in chunks of ``max_batch`` so no huge batch is ever built."""
        parts = [
            self.run(self.preprocess_array(images[start : start + self.max_batch]))
            for start in range(0, len(images), self.max_batch)
        ]
        if not parts:
            return ModelOutputs(logits=np.zeros(0, dtype=np.float32))
        return ModelOutputs(
            logits=np.concatenate([part.logits for part in parts]),
            cells=None if parts[0].cells is None else np.concatenate([part.cells for part in parts]),
            cell_boxes=None if parts[0].cell_boxes is None else np.concatenate([part.cell_boxes for part in parts]),
        )

    def calibrated(self, logits: np.ndarray) -> list[float]:
        return calibrated_probabilities(logits, self.manifest)

    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]:
        return self._probabilities(self.outputs(images), images)

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        return self._verdicts(self.outputs(images), images)

    def predict_and_explain(self, image: Image.Image) -> tuple[Prediction, np.ndarray | None]:
        """The verdict and, for networks with a cell map, the evidence from the same forward pass (free here;
        computing it later means decoding and running the model again)."""
        outputs = self.outputs([image])
        evidence = None if outputs.cells is None else self._picture_evidence(outputs.cells, image)
        return self._verdicts(outputs, [image])[0], evidence

    def evidence_map(self, image: Image.Image) -> np.ndarray:
        outputs = self.outputs([image])
        if outputs.cells is None:
            return self.explain_without_cells(image)
        return self._picture_evidence(outputs.cells, image)

    def explain_without_cells(self, image: Image.Image) -> np.ndarray:
        """Evidence for a network whose graph has no cell map (the zero-shot model: Grad-CAM, in PyTorch)."""
        raise NotImplementedError(f"{type(self).__name__} cannot explain its verdicts.")

    def _probabilities(self, outputs: ModelOutputs, images: Sequence[Image.Image]) -> list[float]:
        """The calibrated probabilities, with the second opinion's say where the manifest asks for one."""
        probabilities = self.calibrated(outputs.logits)
        spec = self.manifest.second_opinion
        if spec is None or self.second_opinion is None:
            return probabilities
        return revised_probabilities(
            probabilities, images, spec=spec, member=self.second_opinion, threshold=self.manifest.threshold
        )

    def _verdicts(self, outputs: ModelOutputs, images: Sequence[Image.Image]) -> list[Prediction]:
        return verdicts(self._probabilities(outputs, images), self.manifest, self._boxes(outputs))

    def _boxes(self, outputs: ModelOutputs) -> list[list[Box]] | None:
        """Each picture's phones, for models that localise (their cell map is one view per picture)."""
        if outputs.cell_boxes is None or outputs.cells is None:
            return None
        return [
            decode_boxes(
                cells, boxes, probability=self.calibrated, threshold=self.manifest.threshold, pooling=self.cell_pooling
            )
            for cells, boxes in zip(outputs.cells, outputs.cell_boxes, strict=True)
        ]

    def _picture_evidence(self, view_cells: np.ndarray, image: Image.Image) -> np.ndarray:
        """One picture's map from its views' cells: the whole picture's, merged with its crops' when multi-scale."""
        return merged_evidence(view_cells, image.size, grid=self.multiscale_grid, fraction=self.multiscale_fraction)
