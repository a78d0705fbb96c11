"""Grouped folds and out-of-fold scores: every picture is scored by a head that never saw its group.

Groups are the declared ones (a scene frame's augmented copies, a video's frames) joined with perceptual-hash
near-duplicates (:mod:`ml_training.splits`), so no fold is tested on a copy of what it trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ml_training.scene.data import SceneSample
from ml_training.scene.engine import TrainSettings, clean_views, score_views, train_heads
from ml_training.scene.views import FeatureBank
from ml_training.splits import assign_parts, group_ids

logger = logging.getLogger(__name__)

SCENE_SOURCES = frozenset({"office-cctv", "webcam-held", "phone-usage-video"})


def is_scene(sample: SceneSample) -> bool:
    """Boxed, or from a source of scenes: trained as a scene (drawn twice an epoch) and reported as one."""
    return sample.has_boxes or sample.base_source in SCENE_SOURCES


def picture_groups(samples: Sequence[SceneSample], images: Sequence[Image.Image]) -> list[int]:
    """A group number per picture: declared groups (augmented copies of one frame) joined with near-duplicates.
    Folds never split one, and ``compare`` counts one as one piece of evidence."""
    return group_ids([sample.as_sample() for sample in samples], images)


def assign_folds(
    samples: Sequence[SceneSample],
    images: Sequence[Image.Image],
    folds: int,
    *,
    seed: int,
    groups: Sequence[int] | None = None,
) -> list[int]:
    """A fold per sample; groups and near-duplicates share one; labels spread evenly within each source.
    ``groups``: :func:`picture_groups` when the caller has them already."""
    groups = list(groups) if groups is not None else picture_groups(samples, images)
    # Balance label and source together: a fold with every webcam phone and no CCTV phone measures little.
    strata = sorted({(sample.source, sample.target) for sample in samples})
    stratum = [strata.index((sample.source, sample.target)) for sample in samples]
    return assign_parts(groups, stratum, [1.0 / folds] * folds, seed=seed)


@dataclass
class OutOfFold:
    """Each picture's score from the fold that held it out: picture logit, cell logits and cell boxes."""

    logits: np.ndarray  # (N,)
    cells: np.ndarray  # (N, G, G)
    boxes: np.ndarray  # (N, 4, G, G)


def out_of_fold(
    bank: FeatureBank,
    samples: Sequence[SceneSample],
    folds: Sequence[int],
    settings: TrainSettings,
) -> OutOfFold:
    """Train each fold's head(s) from scratch on the other folds and score the held-out pictures' clean views. Never
    from a trained checkpoint: one that saw the held-out pictures would make these figures its memory."""
    count = len(samples)
    scene = {index for index, sample in enumerate(samples) if is_scene(sample)}
    grid = bank.features.shape[-1]
    result = OutOfFold(
        np.zeros(count, np.float32),
        np.zeros((count, grid, grid), np.float32),
        np.zeros((count, 4, grid, grid), np.float32),
    )
    for fold in sorted(set(folds)):
        held_out = [index for index in range(count) if folds[index] == fold]
        trained = [index for index in range(count) if folds[index] != fold]
        logger.info("fold %d: training on %d pictures, scoring %d", fold, len(trained), len(held_out))
        network = train_heads(bank, trained, scene, settings)
        logits, cells, boxes = score_views(network, bank, clean_views(bank, held_out))
        result.logits[held_out] = logits.numpy()
        result.cells[held_out] = cells.numpy()
        result.boxes[held_out] = boxes.numpy()
    return result
