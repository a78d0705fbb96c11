"""Turning reviewers' corrections into a new scene-model version, promoted only on trusted evidence.

Used by ``manage.py retrain``. Steps:

1. collect the training pictures: reviewed uploads of the ``train`` split whose label is settled (a review that
   contradicted a confident verdict counts only once a second reviewer agreed), with the reviewers' boxes, plus
   ``--data-dir`` / ``TRAINING_DATA_DIR``; ground-truth and eval pictures are never among them
   (:mod:`phoneapp.services.training_data`);
2. train a scene-detector candidate (``ml_training.scene.train.train_scene_model``) into a temporary directory,
   warm-started from the active model's head (and tuned trunk blocks) when the active model is a scene model,
   with the same network shape (tuned trunk blocks, global-context layer, picture pooling, heads) unless ``--set
   trainable_blocks=N``, ``--set global_context=1``, ``--set picture_pooling=max`` or ``--set heads=1`` says
   otherwise;
3. score the candidate and the active model on the same trusted pictures -- the ground-truth set and the eval
   split -- per picture, and apply :data:`~phoneapp.services.promotion.PROMOTION_RULE`
   (:mod:`phoneapp.services.promotion`);
4. register the candidate (moved into place with one atomic rename), activate it if the rule allows, and store
   both versions' scores (``VersionScore``) so the dashboard compares versions on the same pictures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.manifest import ModelLoadError, ModelManifest, manifest_checksum, read_manifest
from inference.scene_options import SceneNetworkOptions
from ml_training.metrics import paired_test
from phoneapp.models import ModelVersion
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.selectors.training import trusted_labelled_uploads
from phoneapp.services.errors import RetrainError
from phoneapp.services.evaluation import pictures_decode
from phoneapp.services.model_versions import (
    model_dir_of,
    model_serving_prepare,
    model_version_register,
    model_versions_lock,
)
from phoneapp.services.promotion import (
    PROMOTION_RULE,
    ActiveUnscorable,
    Log,
    ProgressFactory,
    active_version_score,
    decide_promotion,
    dry_run_decision,
    model_dir_score,
    progress_of,
    score_figures,
    version_scores_store,
)
from phoneapp.services.training_data import (
    training_data_check_enough,
    training_data_summary,
    training_samples_collect,
    training_samples_without_scored,
    trusted_pictures,
)

if TYPE_CHECKING:  # the training modules import torch: loaded only when a retrain runs
    from ml_training.scene.config import SceneRecipe
    from ml_training.scene.train import SecondOpinion

logger = logging.getLogger(__name__)

SCENE_KIND = "scene-detector"


@dataclass(frozen=True)
class RetrainRequest:
    # Extra picture folders (``--data-dir``, any number), besides TRAINING_DATA_DIR.
    data_dirs: tuple[Path, ...] = ()
    epochs: int | None = None
    seed: int = 0
    # Any field of the scene recipe's ViewConfig, TrainSettings or SceneRecipe (e.g. {"image_size": 96}).
    config_overrides: dict[str, Any] = field(default_factory=dict)
    force_activate: bool = False
    dry_run: bool = False


@dataclass
class RetrainReport:
    version: str
    rule: str
    data_summary: dict[str, Any]
    candidate: dict[str, Any]
    active: dict[str, Any] | None
    paired_tests: dict[str, Any]
    promoted: bool
    decision: str
    registered: bool
    warm_start: str | None
    training_metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def retrain(
    *, request: RetrainRequest, log: Log = logger.info, progress: ProgressFactory | None = None
) -> RetrainReport:
    """Run one retrain as described in the module docstring; raises :class:`RetrainError` when it cannot, having
    registered nothing. A dry run trains and scores but registers and stores nothing."""
    from ml_training.scene.train import train_scene_model

    active_version = model_version_active_or_none()
    recipe = _recipe(request, network_shape=_network_shape(active_version))
    models_root = Path(settings.MODELS_DIR)
    models_root.mkdir(parents=True, exist_ok=True)
    with _retraining_alone(models_root), _new_version_scratch(models_root) as (version, scratch_dir):
        workdir = scratch_dir / "uploads"
        workdir.mkdir()
        offered = training_samples_collect(data_dirs=request.data_dirs, workdir=workdir)
        samples, unreadable = pictures_decode(offered, advance=progress_of(progress, "checking pictures", len(offered)))
        trusted_uploads = trusted_labelled_uploads()
        ground_truth = trusted_pictures(trusted_uploads["ground_truth"], workdir)
        evaluation = trusted_pictures(trusted_uploads["eval"], workdir)
        samples, left_out = training_samples_without_scored(samples, [*ground_truth, *evaluation])
        summary = training_data_summary(offered, samples, unreadable, ground_truth=ground_truth, evaluation=evaluation)
        summary["folder_pictures_also_scored_left_out"] = left_out.folder_pictures
        summary["uploads_like_scored_left_out"] = left_out.uploads
        training_data_check_enough(summary)
        log(f"training data: {json.dumps(summary, sort_keys=True)}")
        initial_head, warm_start = _warm_start(active_version, recipe.settings.trainable_blocks, log)
        candidate_dir = scratch_dir / version
        try:
            result = train_scene_model(
                samples,
                candidate_dir,
                version=version,
                recipe=recipe,
                initial_head=initial_head,
                second_opinion=_second_opinion(active_version, models_root, log),
            )
        except (ValueError, RuntimeError) as error:
            raise RetrainError(f"Training failed: {error}") from error
        candidate_right = model_dir_score(candidate_dir, ground_truth, evaluation, progress, "scoring candidate")
        try:
            active_right = active_version_score(active_version, ground_truth, evaluation, progress, log)
            unscorable = None
        except ActiveUnscorable as error:
            active_right, unscorable = None, str(error)
        tests = {
            name: paired_test(baseline=active_right[name], candidate=candidate_right[name])
            for name in ("ground_truth", "eval")
            if active_right is not None
        }
        promoted, decision = decide_promotion(
            ground_truth_per_label=summary["ground_truth"]["per_label"],
            tests=tests,
            has_active=active_right is not None,
            force=request.force_activate,
            active_unscorable=unscorable,
            uninformative=result.metrics.get("calibration_warning"),
        )
        trusted = {"ground_truth": ground_truth, "eval": evaluation}
        candidate_figures = score_figures(candidate_right, trusted)
        active_figures = score_figures(active_right, trusted) if active_right is not None else None
        report = RetrainReport(
            version=version,
            rule=PROMOTION_RULE,
            data_summary=summary,
            candidate={"model_version": version, **candidate_figures},
            # Active figures exist only when there is an active version (``active_version_score``).
            active={"model_version": active_version.name, **active_figures}
            if active_figures and active_version
            else None,
            paired_tests={name: test.to_dict() for name, test in tests.items()},
            promoted=promoted and not request.dry_run,
            decision=dry_run_decision(decision) if request.dry_run else decision,
            registered=not request.dry_run,
            warm_start=warm_start,
            training_metrics=result.metrics,
        )
        if request.dry_run:
            return report
        final_dir = models_root / version
        # One rename makes the whole directory appear at once: no worker can see a half-written version.
        os.replace(candidate_dir, final_dir)
        if promoted:  # before the activation, outside its lock: the export takes seconds
            model_serving_prepare(model_dir=final_dir)
    metrics = {
        **result.metrics,
        "ground_truth": candidate_figures["ground_truth"],
        "eval": candidate_figures["eval"],
        "active_on_same_pictures": active_figures,
        "paired_tests": report.paired_tests,
        "decision": report.decision,
        "warm_start": warm_start,
    }
    with transaction.atomic():
        # The decision compared the candidate with the version active when the retrain started; if someone
        # activated another since (a rollback, another retrain), it is not the comparison that was made.
        active_now = model_versions_lock()
        active_then = active_version.pk if active_version is not None else None
        if promoted and not request.force_activate and active_now != active_then:
            promoted = False
            report.promoted = False
            report.decision = (
                "not promoted: the active model version changed while this retrain ran, so it was compared with a "
                f"version that is no longer active; run the retrain again to compare with the current one. ({decision})"
            )
            metrics["decision"] = report.decision
        registered = model_version_register(
            model_dir=final_dir, metrics=metrics, data_summary=summary, activate=promoted
        )
        version_scores_store(registered, candidate_figures, trusted)
        if active_version is not None and active_figures is not None:
            version_scores_store(active_version, active_figures, trusted)
    log(f"registered {version} ({'active' if promoted else 'not active'})")
    return report


RETRAIN_LOCK_NAME = ".retrain.lock"


@contextmanager
def _retraining_alone(models_root: Path) -> Iterator[None]:
    """One retrain at a time per ``MODELS_DIR`` (``flock`` on its ``.retrain.lock``; the kernel releases it when a
    run dies): a cron run that started while the last was still training doubled both runs' time and registered
    two identical candidates. Holding the lock, it removes the scratch folders of runs that were killed
    (``.incoming-*``: with S3 storage they hold copies of users' pictures)."""
    import fcntl

    descriptor = os.open(models_root / RETRAIN_LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise RetrainError(
                f"Another retrain is running on {models_root}; this one did nothing. Run it again when that one ends."
            ) from error
        for leftover in models_root.glob(".incoming-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@contextmanager
def _new_version_scratch(models_root: Path) -> Iterator[tuple[str, Path]]:
    """A name for the new version (``retrain-YYYYMMDD-HHMMSS``, with ``-2``, ``-3``... when taken) and a scratch
    folder reserving it, removed afterwards. A version finished this second keeps its name: this one takes the
    next."""
    stamp = timezone.now().strftime("retrain-%Y%m%d-%H%M%S")
    for attempt in range(1, 100):
        version = stamp if attempt == 1 else f"{stamp}-{attempt}"
        if (models_root / version).exists() or ModelVersion.objects.filter(name=version).exists():
            continue
        scratch = models_root / f".incoming-{version}"
        try:
            scratch.mkdir()
        except FileExistsError:
            continue
        try:
            yield version, scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    raise RetrainError(f"No free version name after {stamp}-99; remove unused model folders.")


def _recipe(request: RetrainRequest, *, network_shape: dict[str, int | str] | None = None) -> SceneRecipe:
    """The scene recipe with the request's overrides (``--set``, ``--epochs``, ``--seed``); bad ones refused.

    ``network_shape``: the active model's (:func:`_network_shape`), so a retrain keeps its tuned trunk blocks and
    head layers unless told otherwise.
    """
    from ml_training.scene.config import recipe_from_flat

    if "seed" in request.config_overrides:
        raise RetrainError("Set the seed with --seed, not --set seed=...")
    values: dict[str, Any] = {**(network_shape or {}), **request.config_overrides, "seed": request.seed}
    if request.epochs is not None:
        values["epochs"] = request.epochs
    try:
        return recipe_from_flat(values)
    except (TypeError, ValueError) as error:
        raise RetrainError(f"Bad training setting: {error}") from error


def _scene_manifest(active: ModelVersion | None) -> ModelManifest | None:
    """The active model's manifest when it is a readable scene model, else None."""
    if active is None:
        return None
    try:
        manifest = read_manifest(model_dir_of(active))
    except ModelLoadError:
        return None
    return manifest if manifest.kind == SCENE_KIND else None


def _network_shape(active: ModelVersion | None) -> dict[str, int | str]:
    """The active scene model's network options as recipe knobs: how many trunk blocks it tuned and whether its
    head has the global-context layer (both 0 for head-only models and other kinds), and how it pools its cells and
    how many heads it averages (a scene model's own, "max" pooling and one head for those written before these were
    options; the recipe's defaults otherwise)."""
    manifest = _scene_manifest(active)
    shape = SceneNetworkOptions.from_manifest_options(manifest.options if manifest is not None else {})
    knobs: dict[str, int | str] = {
        "trainable_blocks": shape.trainable_blocks,
        "global_context": int(shape.global_context),
    }
    if manifest is not None:
        knobs["picture_pooling"] = shape.picture_pooling
        knobs["heads"] = shape.heads
    return knobs


def _second_opinion(active: ModelVersion | None, models_root: Path, log: Log) -> SecondOpinion | None:
    """The active scene model's second opinion (inference/second_opinion.py), kept for the candidate: compared
    without it, a candidate would lose the close-ups the member finds and never be promoted. None when the active
    model asks none, or its member is gone or changed (then the active model cannot load either)."""
    from ml_training.scene.train import SecondOpinion

    manifest = _scene_manifest(active)
    spec = manifest.second_opinion if manifest is not None else None
    if spec is None:
        return None
    member_dir = models_root / spec.model
    try:
        unchanged = manifest_checksum(member_dir) == spec.manifest_sha256
    except OSError:
        unchanged = False
    if not unchanged:
        log(f"second opinion {spec.model} is missing or changed: the candidate decides alone")
        return None
    log(f"the candidate keeps the second opinion of {spec.model} (at least {spec.at_least})")
    cache = Path(settings.INFERENCE_CACHE_DIR) if settings.INFERENCE_CACHE_DIR else None
    return SecondOpinion(spec, member_dir, cache_dir=cache)


def _warm_start(
    active: ModelVersion | None, trainable_blocks: int, log: Log
) -> tuple[dict[str, Any] | None, str | None]:
    """The active scene model's trained weights (head, and tuned trunk blocks if any), to continue from; (None,
    None) when the active model is another kind (the candidate's head then starts fresh).

    When the active model tunes another number of trunk blocks than the candidate (``trainable_blocks``), only its
    head is reused (:func:`ml_training.scene.engine.warm_start_state`); the log says so.

    The shipped ``weights.pt`` has the calibration shift folded into each head's objectness bias
    (model_writer.py); it is added back here so training continues from the raw heads, and the candidate is
    re-calibrated by its own cross-validation.
    """
    if active is None:
        return None, None
    model_dir = model_dir_of(active)
    try:
        manifest = read_manifest(model_dir)
    except ModelLoadError:
        return None, None
    if manifest.kind != SCENE_KIND:
        log(f"active model {active.name} is a {manifest.kind}, not a scene model: the candidate starts fresh")
        return None, None
    import torch

    from ml_training.scene.model_writer import unfold_shift

    try:
        state = torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        # Missing or damaged weights: the candidate starts fresh, and scoring the active model then fails too, so
        # the candidate is registered inactive with that reason (it was a traceback, nothing registered).
        log(f"active model {active.name}'s weights cannot be read ({error}): the candidate starts fresh")
        return None, None
    try:
        shift = float(json.loads((model_dir / "training.json").read_text())["calibration"]["shift"])
    except (OSError, KeyError, TypeError, ValueError):
        shift = 0.0
    state = unfold_shift(state, shift)
    log(f"warm start from {active.name} (calibration shift {shift:+.4f} unfolded)")
    tuned = SceneNetworkOptions.from_manifest_options(manifest.options).trainable_blocks
    if tuned != trainable_blocks:
        log(
            f"{active.name} tunes {tuned} trunk block(s), the candidate {trainable_blocks}: only its head is reused; "
            "the candidate's tuned blocks start from their ImageNet weights"
        )
    return state, active.name
