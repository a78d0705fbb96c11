"""How a scene recipe does on a source it never trained on: each named source held out in turn.

Grouped folds keep copies of one frame together but still train on other frames of the same cameras, rooms and
people, so they measure a source the model has seen. The pictures the product meets come from other sources, so
docs/model.md also reports this: for each ``--held-out`` source, a head trained on every other picture scores that
source's pictures. No calibration or threshold is fitted on a held-out source, so the figures are threshold-free:
ROC-AUC, recall at the best cut that keeps that source's phone-free pictures at or under 3% false positives, and
how often the strongest cell's box holds a phone on its boxed pictures.

    python -m ml_training.experiments.leave_source_out --data-dir ../shared/datasets/phone-scenes \
        --data-dir ../shared/datasets/phone-images --boxes ml_training/annotations/phone-usage-video-boxes.csv \
        --held-out webcam-held --held-out office-cctv --held-out ambergoswami --cache-dir /tmp/loso-cache

The recipe flags are ``python -m ml_training train``'s (e.g. ``--phone-view-loss pooled``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.allocator import ensure_allocator_settings
from inference.boxes import Box
from inference.images import open_image
from inference.scene_network import ScenePhoneNet
from ml_training.metrics import roc_auc
from ml_training.scene.config import SceneRecipe, add_recipe_arguments
from ml_training.scene.crossval import is_scene
from ml_training.scene.data import SceneSample
from ml_training.scene.engine import clean_views, score_views, train_heads
from ml_training.scene.figures import hits_a_phone
from ml_training.scene.train import check_args, load_samples
from ml_training.scene.views import build_bank

logger = logging.getLogger(__name__)

MAX_FALSE_POSITIVE_RATE = 0.03


@dataclass(frozen=True)
class HeldOutScores:
    """One held-out source's pictures (indices into the samples) and what the head trained without it gave."""

    pictures: list[int]
    logits: np.ndarray  # (N,)
    cells: np.ndarray  # (N, G, G)
    boxes: np.ndarray  # (N, 4, G, G)


def source_folds(samples: Sequence[SceneSample], held_out: Sequence[str]) -> list[int]:
    """Fold i for the i-th held-out source, one more fold for everything else (never held out).

    The view bank pastes phones only within a fold, so a held-out source's phones never appear elsewhere.
    """
    return [held_out.index(sample.source) if sample.source in held_out else len(held_out) for sample in samples]


def held_out_scores(
    samples: Sequence[SceneSample], held_out: Sequence[str], recipe: SceneRecipe, *, cache_dir: Path | None = None
) -> dict[str, HeldOutScores]:
    """For each source in ``held_out``: a head trained on every picture of the other sources scores it."""
    missing = sorted(set(held_out) - {sample.source for sample in samples})
    if missing:
        raise ValueError(f"No pictures of source(s) {', '.join(missing)}.")
    images = [open_image(sample.path) for sample in samples]
    trunk = ScenePhoneNet(trainable_blocks=recipe.settings.trainable_blocks).eval()
    bank = build_bank(
        samples, images, source_folds(samples, held_out), recipe.views, network=trunk, cache_dir=cache_dir
    )
    del images
    scene = {index for index, sample in enumerate(samples) if is_scene(sample)}
    scores = {}
    for source in held_out:
        pictures = [index for index, sample in enumerate(samples) if sample.source == source]
        trained = [index for index, sample in enumerate(samples) if sample.source != source]
        logger.info("%s held out: training on %d pictures, scoring %d", source, len(trained), len(pictures))
        network = train_heads(bank, trained, scene, recipe.settings)
        logits, cells, boxes = score_views(network, bank, clean_views(bank, pictures))
        scores[source] = HeldOutScores(pictures, logits.numpy(), cells.numpy(), boxes.numpy())
    return scores


def recall_at_false_positive_rate(
    scores: np.ndarray, targets: np.ndarray, max_rate: float = MAX_FALSE_POSITIVE_RATE
) -> tuple[float, float]:
    """(recall, false-positive rate) at the lowest cut whose false-positive rate is at most ``max_rate``."""
    negatives = np.sort(scores[targets == 0])[::-1]
    allowed = int(np.floor(max_rate * len(negatives)))
    cut = negatives[allowed] if allowed < len(negatives) else -np.inf  # a phone must score above this
    return float(np.mean(scores[targets == 1] > cut)), float(np.mean(negatives > cut))


def source_figures(samples: Sequence[SceneSample], held: HeldOutScores) -> dict[str, Any]:
    """Threshold-free figures for one held-out source (see the module docstring)."""
    targets = np.array([samples[index].target for index in held.pictures])
    figures: dict[str, Any] = {
        "pictures": len(held.pictures),
        "phones": int(targets.sum()),
        "roc_auc": None if (auc := roc_auc(held.logits, targets)) is None else round(auc, 4),
    }
    if 0 < targets.sum() < len(targets):
        recall, false_positive_rate = recall_at_false_positive_rate(held.logits, targets)
        figures.update(recall_at_3pct_fp=round(recall, 4), false_positive_rate=round(false_positive_rate, 4))
    hits = boxed = 0
    for position, index in enumerate(held.pictures):
        sample = samples[index]
        if not sample.has_boxes:
            continue
        best = int(np.argmax(held.cells[position]))
        x1, y1, x2, y2 = (float(value) for value in held.boxes[position].reshape(4, -1)[:, best])
        boxed += 1
        hits += hits_a_phone(Box(x1, y1, x2, y2, 0.0), sample.boxes)
    if boxed:
        figures.update(best_cell_on_a_phone=hits, boxed_phone_pictures=boxed)
    return figures


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml_training.experiments.leave_source_out",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", action="append", required=True, type=Path, help="as for ml_training train")
    parser.add_argument("--boxes", action="append", type=Path, default=[], help="as for ml_training train")
    parser.add_argument("--held-out", action="append", required=True, help="a source to hold out; repeat for several")
    parser.add_argument("--cache-dir", type=Path, default=None, help="as for ml_training train")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    add_recipe_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print one JSON object: each held-out source's figures."""
    parser = get_args_parser()
    args = parser.parse_args(argv)
    recipe = check_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    samples = load_samples(args.data_dir, args.boxes)
    try:
        scores = held_out_scores(samples, args.held_out, recipe, cache_dir=args.cache_dir)
    except ValueError as error:
        parser.error(str(error))
    json.dump({source: source_figures(samples, held) for source, held in scores.items()}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    ensure_allocator_settings()  # eager torch on these VMs: see inference/allocator.py
    raise SystemExit(main())
