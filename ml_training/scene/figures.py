"""The figures a scene model is judged by, per source and per slice: recall, false positives, AUC, ECE, box hits.

"Box hit": the best box of a phone verdict contains the centre of a true phone box (the issue's rule for
"where is the phone"). Measured on pictures with known phone boxes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inference.boxes import decode_boxes
from ml_training.metrics import binary_metrics
from ml_training.scene.crossval import is_scene
from ml_training.scene.data import SceneSample
from ml_training.scene.decision import calibrate


def box_hits(
    samples: Sequence[SceneSample],
    cells: np.ndarray,
    boxes: np.ndarray,
    *,
    temperature: float,
    shift: float,
    threshold: float,
) -> tuple[int, int]:
    """(hits, phone verdicts) over boxed pictures: how often the best box holds a real phone's centre."""
    hits = verdicts = 0
    for index, sample in enumerate(samples):
        if not sample.has_boxes:
            continue
        found = decode_boxes(
            cells[index],
            boxes[index],
            probability=lambda z: calibrate(z, temperature, shift).tolist(),
            threshold=threshold,
        )
        if not found:
            continue
        verdicts += 1
        x1, y1, x2, y2 = found[0].x1, found[0].y1, found[0].x2, found[0].y2
        if any(x1 <= (a + c) / 2 <= x2 and y1 <= (b + d) / 2 <= y2 for a, b, c, d in sample.boxes):
            hits += 1
    return hits, verdicts


def figures_by_slice(
    samples: Sequence[SceneSample], probabilities: np.ndarray, threshold: float
) -> dict[str, dict[str, Any]]:
    """Metrics for every source, for scenes and close-ups, and overall, at ``threshold``."""
    targets = np.array([sample.target for sample in samples])
    slices: dict[str, np.ndarray] = {"all": np.ones(len(samples), bool)}
    slices["scenes"] = np.array([is_scene(sample) for sample in samples])
    slices["close-ups"] = ~slices["scenes"]
    for source in sorted({sample.source for sample in samples}):
        slices[f"source:{source}"] = np.array([sample.source == source for sample in samples])
    return {
        name: binary_metrics(probabilities[mask], targets[mask], threshold).to_dict()
        for name, mask in slices.items()
        if mask.any()
    }
