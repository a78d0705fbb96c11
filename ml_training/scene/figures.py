"""The figures a scene model is judged by, per source and per slice: recall, false positives, AUC, ECE, box hits.

"Box hit": the best box of a phone verdict contains the centre of a true phone box (the issue's rule for
"where is the phone"). Measured on pictures with known phone boxes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inference.boxes import Box, decode_boxes
from ml_training.data import is_close_up_source
from ml_training.metrics import binary_metrics, expected_calibration_error
from ml_training.scene.crossval import is_scene
from ml_training.scene.data import BoxCorners, SceneSample
from ml_training.scene.decision import calibrate


def hits_a_phone(box: Box, truths: Sequence[BoxCorners]) -> bool:
    """The issue's rule for "where is the phone": ``box`` contains the centre of one of the true phone boxes."""
    return any(box.x1 <= (a + c) / 2 <= box.x2 and box.y1 <= (b + d) / 2 <= box.y2 for a, b, c, d in truths)


def best_box_hits(
    samples: Sequence[SceneSample], found: Sequence[Sequence[Box]], phone: Sequence[bool] | None = None
) -> dict[str, Any]:
    """How often a phone verdict's best box hits a real phone, over the pictures with known phone boxes.

    ``found``: each picture's boxes, best first. ``phone``: each picture's verdict (default: it has boxes); a
    phone verdict without a box (a model that does not localise) counts as a miss.
    """
    verdicts_of = phone if phone is not None else [bool(boxes) for boxes in found]
    hit_flags: list[bool] = []
    scores: list[float] = []
    for sample, boxes, is_phone in zip(samples, found, verdicts_of, strict=True):
        if not sample.has_boxes or not is_phone:
            continue
        hit_flags.append(bool(boxes) and hits_a_phone(boxes[0], sample.boxes))
        scores.append(boxes[0].score if boxes else 0.0)
    hits, verdicts = sum(hit_flags), len(hit_flags)
    return {
        "best_box_hits": hits,
        "phone_verdicts_on_boxed_pictures": verdicts,
        "boxed_pictures": sum(sample.has_boxes for sample in samples),
        "best_box_hit_rate": round(hits / verdicts, 4) if verdicts else None,
        # Does a best box's score mean what it says ("this box holds a phone")? Its ECE against the hits.
        "best_box_score_mean": round(float(np.mean(scores)), 4) if verdicts else None,
        "best_box_score_ece": round(expected_calibration_error(np.array(scores), np.array(hit_flags, int)), 4)
        if verdicts
        else None,
    }


def box_hits(
    samples: Sequence[SceneSample],
    cells: np.ndarray,
    boxes: np.ndarray,
    *,
    probabilities: np.ndarray,
    temperature: float,
    shift: float,
    threshold: float,
    pooling: str,
) -> dict[str, Any]:
    """:func:`best_box_hits` for out-of-fold cell outputs, decoded as serving decodes them.

    ``probabilities``: the pictures' calibrated out-of-fold probabilities (their verdicts); ``pooling``: how the
    network pools its cells (the boxes' scores are the cells' own, :func:`inference.boxes.own_evidence`).
    """
    found = [
        decode_boxes(
            cells[index],
            boxes[index],
            probability=lambda z: calibrate(z, temperature, shift).tolist(),
            threshold=threshold,
            pooling=pooling,
        )
        if sample.has_boxes
        else []
        for index, sample in enumerate(samples)
    ]
    return best_box_hits(samples, found, [bool(probability >= threshold) for probability in probabilities])


def figures_by_slice(
    samples: Sequence[SceneSample], probabilities: np.ndarray, threshold: float
) -> dict[str, dict[str, Any]]:
    """Metrics for every source, for scenes and close-ups, and overall, at ``threshold``."""
    return figures_by_column(
        targets=[sample.target for sample in samples],
        scenes=[is_scene(sample) for sample in samples],
        sources=[sample.source for sample in samples],
        probabilities=probabilities,
        threshold=threshold,
    )


def figures_by_column(
    *,
    targets: Sequence[int],
    scenes: Sequence[bool],
    sources: Sequence[str],
    probabilities: np.ndarray,
    threshold: float,
) -> dict[str, dict[str, Any]]:
    """:func:`figures_by_slice` from the pictures' columns (as a ``predictions.json`` keeps them)."""
    labels = np.asarray(targets)
    slices: dict[str, np.ndarray] = {"all": np.ones(len(labels), bool)}
    slices["scenes"] = np.asarray(scenes, bool)
    slices["close-ups"] = ~slices["scenes"] & np.array([is_close_up_source(source) for source in sources], bool)
    for source in sorted(set(sources)):
        slices[f"source:{source}"] = np.array([name == source for name in sources])
    return {
        name: binary_metrics(probabilities[mask], labels[mask], threshold).to_dict()
        for name, mask in slices.items()
        if mask.any()
    }
