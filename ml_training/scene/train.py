"""``python -m ml_training train``: train, cross-validate and write a scene model version.

The story: read the labelled folders -> decode every picture once -> grouped folds -> render views and cache the
frozen trunk's features -> one head per fold, scoring the pictures it never saw -> calibration, threshold and
unsure band from those out-of-fold scores -> figures per source -> one head on every picture -> write the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.allocator import ensure_allocator_settings
from inference.images import open_image
from inference.scene_network import ScenePhoneNet
from inference.second_opinion import SecondOpinionSpec, settled
from ml_training.scene.config import SceneRecipe, add_recipe_arguments, describe, recipe_from_args
from ml_training.scene.crossval import OutOfFold, assign_folds, is_scene, out_of_fold, picture_groups
from ml_training.scene.data import SceneSample, has_pictures_listed, load_data_dirs, read_box_table, with_box_table
from ml_training.scene.decision import (
    MORE_PICTURES,
    calibrate,
    choose_threshold,
    fit_platt,
    uninformative_calibration,
    unsure_band,
)
from ml_training.scene.engine import train_heads
from ml_training.scene.figures import box_hits, figures_by_slice
from ml_training.scene.model_writer import fold_shift_into_head, write_scene_model
from ml_training.scene.views import FeatureBank, build_bank
from ml_training.second_opinion import member_answers, spec_for

logger = logging.getLogger("ml_training.scene")


def get_args_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The training command's options: where the pictures and the model go, then every recipe knob."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m ml_training train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_argument_group("pictures and output")
    where.add_argument(
        "--data-dir",
        action="append",
        required=True,
        type=Path,
        help="a folder with manifest.csv (file,label[,source,group,phone_boxes]) or phone/ and not_phone/ "
        "sub-folders; repeat for several",
    )
    where.add_argument(
        "--boxes",
        action="append",
        type=Path,
        default=[],
        help="a CSV (folder,file,phone_boxes) of phone boxes for pictures whose folder has none, e.g. "
        "ml_training/annotations/phone-usage-video-boxes.csv; repeat for several",
    )
    where.add_argument("--out", required=True, type=Path, help="model directory to write; its name is the version")
    where.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep the rendered views' trunk features here, so a rerun with the same pictures and views is fast",
    )
    where.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    where.add_argument(
        "--second-opinion",
        type=Path,
        default=None,
        metavar="MODEL_DIR",
        help="a whole-picture model version the new one asks where it says not a phone (inference/second_opinion.py; "
        "it must sit beside --out when served); figures are the pair's",
    )
    add_recipe_arguments(parser)
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SceneRecipe:
    """The recipe, or the parser's error (exit status 2) for a bad option, before anything expensive is built."""
    try:
        recipe = recipe_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    if args.threads < 1:
        parser.error("--threads must be at least 1.")
    for data_dir in args.data_dir:
        if not has_pictures_listed(data_dir):
            parser.error(f"{data_dir} has no manifest.csv and no phone/ and not_phone/ folders.")
    for table in args.boxes:
        if not table.is_file():
            parser.error(f"--boxes {table}: no such file.")
    return recipe


def samples_problem(samples: Sequence[SceneSample]) -> str | None:
    """Why these pictures cannot train a model (None when they can): both labels are needed, or the calibration
    and the threshold have nothing to separate."""
    counts = {
        label: sum(sample.target == target for sample in samples) for label, target in (("phone", 1), ("not-phone", 0))
    }
    missing = [label for label, count in counts.items() if count == 0]
    if missing:
        found = ", ".join(f"{count} {label}" for label, count in counts.items())
        return f"Training needs both phone and not-phone pictures; found {found} picture(s)."
    return None


def predictions_file(
    samples: Sequence[SceneSample],
    folds: Sequence[int],
    probabilities: np.ndarray,
    member_probabilities: dict[int, float] | None = None,
    groups: Sequence[int] | None = None,
) -> list[dict]:
    """Each picture's out-of-fold probability (and, where a second opinion was asked, the member's answer), with
    its fold and its group (:func:`~ml_training.scene.crossval.picture_groups`, what ``compare`` tests by)."""
    rows = []
    for index, (sample, fold, p) in enumerate(zip(samples, folds, probabilities, strict=True)):
        row = {
            "path": sample.recorded_name,
            "label": sample.label,
            "source": sample.source,
            "scene": is_scene(sample),
            "fold": fold,
            **({"group": int(groups[index])} if groups is not None else {}),
            "probability": round(float(p), 6),
        }
        if member_probabilities and index in member_probabilities:
            row["member_probability"] = round(member_probabilities[index], 6)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class SecondOpinion:
    """A whole-picture model to ask (its directory) and how (the manifest entry the version will carry)."""

    spec: SecondOpinionSpec
    member_dir: Path
    # Where its ONNX export is cached (``INFERENCE_CACHE_DIR`` in a retrain); None: the default under ~/.cache.
    cache_dir: Path | None = None


@dataclass(frozen=True)
class SceneTrainResult:
    model_dir: Path
    metrics: dict[str, Any]


def train_scene_model(
    samples: Sequence[SceneSample],
    out_dir: Path,
    *,
    version: str,
    recipe: SceneRecipe,
    cache_dir: Path | None = None,
    initial_head: dict[str, torch.Tensor] | None = None,
    second_opinion: SecondOpinion | None = None,
    calibration_remedy: str = MORE_PICTURES,
) -> SceneTrainResult:
    """Cross-validate, calibrate, train on everything and write a loadable model version to ``out_dir``.

    ``initial_head``: the trained state (head, and tuned trunk blocks if any) the shipped head(s) start from (a warm
    start from the active model, so a retrain adds to what it knows); None starts from a fresh head. The
    cross-validation folds always start fresh, so their figures stay out of fold.
    ``second_opinion``: a whole-picture model the version asks where it says "not a phone"
    (``inference/second_opinion.py``); the figures, the unsure band and the boxes' verdicts are then the pair's,
    with the member's out-of-fold probabilities (``ml_training.second_opinion.member_answers``).
    ``calibration_remedy``: what the warning of an uninformative calibration tells the caller's user to do (the
    retrain's user has other ways to add pictures than this module's command).
    """
    problem = samples_problem(samples)
    if problem:
        raise ValueError(problem)
    started = time.time()
    views = _views(samples=samples, recipe=recipe, cache_dir=cache_dir, started=started)
    scores = _calibrated_out_of_fold(samples=samples, views=views, recipe=recipe, remedy=calibration_remedy)
    probabilities, member_probabilities = _with_second_opinion(
        samples=samples, scores=scores, second_opinion=second_opinion
    )
    band = unsure_band(probabilities, scores.targets, scores.threshold)
    figures = _figures(samples=samples, scores=scores, probabilities=probabilities, recipe=recipe)
    network = _shipped_network(
        samples=samples, bank=views.bank, recipe=recipe, initial_head=initial_head, shift=scores.shift
    )
    metrics = _write(
        out_dir=out_dir,
        version=version,
        recipe=recipe,
        samples=samples,
        views=views,
        scores=scores,
        probabilities=probabilities,
        member_probabilities=member_probabilities,
        band=band,
        figures=figures,
        network=network,
        warm_start=initial_head is not None,
        second_opinion=second_opinion,
        started=started,
    )
    return SceneTrainResult(model_dir=out_dir, metrics=metrics)


@dataclass(frozen=True)
class _Views:
    """The pictures' near-copy groups and folds, and every rendered view's frozen-trunk features: what each later
    step trains, scores or records by."""

    groups: list[int]
    folds: list[int]
    bank: FeatureBank


@dataclass(frozen=True)
class _CalibratedScores:
    """The out-of-fold scores and what was fitted on them: the calibration (``warning`` when it is uninformative),
    the calibrated probabilities (before any second opinion) and the threshold."""

    out_of_fold: OutOfFold
    targets: np.ndarray
    temperature: float
    shift: float
    warning: str | None
    probabilities: np.ndarray
    threshold: float


def _views(*, samples: Sequence[SceneSample], recipe: SceneRecipe, cache_dir: Path | None, started: float) -> _Views:
    """Step 1: decode every picture once, fold by group and cache the frozen trunk's features of every rendered
    view, so the fold heads and the shipped head(s) all train on the same views without rendering them again."""
    logger.info("configuration:\n  %s", "\n  ".join(describe(recipe)))
    images = [open_image(sample.path) for sample in samples]
    groups = picture_groups(samples, images)
    folds = assign_folds(samples, images, recipe.folds, seed=recipe.settings.seed, groups=groups)
    trunk = ScenePhoneNet(trainable_blocks=recipe.settings.trainable_blocks).eval()
    bank = build_bank(samples, images, folds, recipe.views, network=trunk, cache_dir=cache_dir)
    del images
    logger.info("views ready after %.0f s: %d", time.time() - started, len(bank.targets))
    return _Views(groups=groups, folds=folds, bank=bank)


def _calibrated_out_of_fold(
    *, samples: Sequence[SceneSample], views: _Views, recipe: SceneRecipe, remedy: str
) -> _CalibratedScores:
    """Step 2: score every picture by a head that never saw it, and fit the calibration and the threshold on those
    scores, so they hold for pictures the shipped model has not seen."""
    # Every fold starts from a fresh head, even on a warm start: the starting model trained on these pictures (the
    # shared folders, earlier train-split uploads), so a fold warm-started from it has already seen the pictures it
    # is scored on, and the calibration, threshold and figures below would be its memory, not out of fold.
    oof = out_of_fold(views.bank, samples, views.folds, recipe.settings)
    targets = np.array([sample.target for sample in samples])
    sources = [sample.source for sample in samples]
    temperature, shift = fit_platt(oof.logits, targets)
    calibration_warning = uninformative_calibration(temperature, shift, remedy=remedy)
    if calibration_warning:
        logger.warning("calibration: %s", calibration_warning)
    probabilities = calibrate(oof.logits, temperature, shift)
    slices = ["scenes" if is_scene(sample) else "close-ups" for sample in samples]
    threshold = choose_threshold(
        probabilities, targets, sources, slices, max_false_positive_rate=recipe.max_false_positive_rate
    )
    return _CalibratedScores(
        out_of_fold=oof,
        targets=targets,
        temperature=temperature,
        shift=shift,
        warning=calibration_warning,
        probabilities=probabilities,
        threshold=threshold,
    )


def _with_second_opinion(
    *, samples: Sequence[SceneSample], scores: _CalibratedScores, second_opinion: SecondOpinion | None
) -> tuple[np.ndarray, dict[int, float]]:
    """Step 3: the pair's probabilities and the member's answers by picture index (unchanged and empty without a
    second opinion), so the band, the figures and the predictions are those of what will be served."""
    probabilities = scores.probabilities
    member_probabilities: dict[int, float] = {}
    if second_opinion is not None:
        member_probabilities = member_answers(
            [sample.path for sample in samples],
            probabilities.tolist(),
            spec=second_opinion.spec,
            member_dir=second_opinion.member_dir,
            threshold=scores.threshold,
            cache_dir=second_opinion.cache_dir,
        )
        probabilities = np.array(settled(probabilities.tolist(), member_probabilities, second_opinion.spec))
        logger.info("second opinion of %s asked on %d pictures", second_opinion.spec.model, len(member_probabilities))
    return probabilities, member_probabilities


def _figures(
    *, samples: Sequence[SceneSample], scores: _CalibratedScores, probabilities: np.ndarray, recipe: SceneRecipe
) -> dict[str, Any]:
    """Step 4: the out-of-fold figures per slice and source and the boxes' hits, logged and kept in the metrics,
    so a version says how well it did on pictures it had not seen."""
    figures: dict[str, Any] = figures_by_slice(samples, probabilities, scores.threshold)
    figures["boxes"] = box_hits(
        samples,
        scores.out_of_fold.cells,
        scores.out_of_fold.boxes,
        probabilities=probabilities,
        temperature=scores.temperature,
        shift=scores.shift,
        threshold=scores.threshold,
        pooling=recipe.settings.picture_pooling,
    )
    for name, values in figures.items():
        logger.info("%-28s %s", name, json.dumps(values))
    return figures


def _shipped_network(
    *,
    samples: Sequence[SceneSample],
    bank: FeatureBank,
    recipe: SceneRecipe,
    initial_head: dict[str, torch.Tensor] | None,
    shift: float,
) -> ScenePhoneNet:
    """Step 5: the head(s) trained on every picture, in the network that is exported, with the calibration's shift
    folded in so serving needs only the temperature."""
    logger.info("training the shipped head(s) on all %d pictures", len(samples))
    scene = {index for index, sample in enumerate(samples) if is_scene(sample)}
    final = train_heads(bank, list(range(len(samples))), scene, recipe.settings, initial_head=initial_head)
    network = ScenePhoneNet(
        trainable_blocks=recipe.settings.trainable_blocks,
        global_context=bool(recipe.settings.global_context),
        picture_pooling=recipe.settings.picture_pooling,
        heads=recipe.settings.heads,
    ).eval()
    network.load_trained_state_dict(final.trained_state_dict())
    fold_shift_into_head(network, shift)
    return network


def _write(
    *,
    out_dir: Path,
    version: str,
    recipe: SceneRecipe,
    samples: Sequence[SceneSample],
    views: _Views,
    scores: _CalibratedScores,
    probabilities: np.ndarray,
    member_probabilities: dict[int, float],
    band: tuple[float, float],
    figures: dict[str, Any],
    network: ScenePhoneNet,
    warm_start: bool,
    second_opinion: SecondOpinion | None,
    started: float,
) -> dict[str, Any]:
    """Step 6: write the version with its predictions, folds and recipe beside it, so it can be served, compared
    and retrained from; returns its metrics."""
    metrics: dict[str, Any] = {"cross_validation": figures, "folds": recipe.folds}
    if scores.warning:
        metrics["calibration_warning"] = scores.warning
    folds = views.folds
    write_scene_model(
        out_dir,
        version=version,
        network=network,
        preprocessing=recipe.views.preprocess(),
        temperature=scores.temperature,
        threshold=scores.threshold,
        band=band,
        metrics=metrics,
        extra_files={
            "predictions.json": predictions_file(samples, folds, probabilities, member_probabilities, views.groups),
            "split.json": {"folds": {sample.recorded_name: fold for sample, fold in zip(samples, folds, strict=True)}},
            "training.json": {
                "recipe": dataclasses.asdict(recipe),
                "pictures": len(samples),
                "boxed_pictures": sum(sample.has_boxes for sample in samples),
                "warm_start": warm_start,
                "calibration": {"temperature": scores.temperature, "shift": scores.shift},
                "seconds": round(time.time() - started),
            },
        },
        options={"engine": "onnxruntime"},
        second_opinion=None if second_opinion is None else second_opinion.spec,
    )
    logger.info("wrote %s in %.0f s", out_dir, time.time() - started)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ml_training train``: check the options, print the configuration, train and write the model."""
    parser = get_args_parser()
    return run(parser, parser.parse_args(argv))


def load_samples(data_dirs: Sequence[Path], box_tables: Sequence[Path]) -> list[SceneSample]:
    """Every picture of ``data_dirs``, with the phone boxes each of ``box_tables`` adds."""
    samples = load_data_dirs(data_dirs)
    for table in box_tables:
        samples = with_box_table(samples, read_box_table(table))
    return samples


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    recipe = check_args(parser, args)
    member = args.second_opinion
    if member is not None and not (member / "manifest.json").is_file():
        parser.error(f"--second-opinion {member}: not a model directory (no manifest.json).")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    samples = load_samples(args.data_dir, args.boxes)
    problem = samples_problem(samples)
    if problem:
        parser.error(f"{problem} (--data-dir {', '.join(str(path) for path in args.data_dir)})")
    second_opinion = None if member is None else SecondOpinion(spec_for(member), member)
    train_scene_model(
        samples, args.out, version=args.out.name, recipe=recipe, cache_dir=args.cache_dir, second_opinion=second_opinion
    )
    return 0


if __name__ == "__main__":
    ensure_allocator_settings()  # eager torch on these VMs: see inference/allocator.py
    raise SystemExit(main())
