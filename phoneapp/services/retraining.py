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
   otherwise (what it continues from: :mod:`phoneapp.services.retrain_warm_start`);
3. score the candidate and the active model on the same trusted pictures -- the ground-truth set and the eval
   split -- per picture, and apply :data:`~phoneapp.services.promotion.PROMOTION_RULE`
   (:mod:`phoneapp.services.promotion`);
4. register the candidate (moved into place with one atomic rename), activate it if the rule allows, and store
   both versions' scores (``VersionScore``) so the dashboard compares versions on the same pictures.

One run at a time, in a scratch folder under ``MODELS_DIR``: :mod:`phoneapp.services.retrain_folders`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from ml_training.metrics import PairedTest, paired_test
from phoneapp.models import ModelVersion
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.selectors.training import trusted_labelled_uploads
from phoneapp.services.errors import RetrainError
from phoneapp.services.evaluation import pictures_decode
from phoneapp.services.model_versions import (
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
from phoneapp.services.retrain_folders import new_version_scratch, retraining_alone
from phoneapp.services.retrain_warm_start import active_network_shape, active_second_opinion, active_warm_start
from phoneapp.services.training_data import (
    TrustedPicture,
    training_data_check_enough,
    training_data_summary,
    training_samples_collect,
    training_samples_without_scored,
    trusted_pictures,
)

if TYPE_CHECKING:  # the training modules import torch: loaded only when a retrain runs
    from ml_training.scene.config import SceneRecipe
    from ml_training.scene.data import SceneSample

logger = logging.getLogger(__name__)

# What the calibration warning tells a retrain's user to do. Reviews come slowly; the folders are what helped: our
# first retrain, on 43 reviewed pictures, calibrated flat and was refused (docs/retraining.md).
MORE_PICTURES = (
    "train on more reviewed pictures, or add labelled folders with --data-dir (repeatable) or TRAINING_DATA_DIR"
)


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
    # First: on a machine without torch the retrain fails here, before it takes the lock or copies a picture.
    import ml_training.scene.train  # noqa: F401

    active_version = model_version_active_or_none()
    recipe = _recipe(request, network_shape=active_network_shape(active_version))
    models_root = Path(settings.MODELS_DIR)
    models_root.mkdir(parents=True, exist_ok=True)
    with retraining_alone(models_root), new_version_scratch(models_root) as (version, scratch_dir):
        data = _training_set(request=request, scratch_dir=scratch_dir, progress=progress, log=log)
        candidate_dir = scratch_dir / version
        candidate = _train_candidate(
            data=data,
            candidate_dir=candidate_dir,
            version=version,
            recipe=recipe,
            active=active_version,
            models_root=models_root,
            log=log,
        )
        scores = _score_both(candidate_dir=candidate_dir, active=active_version, data=data, progress=progress, log=log)
        promoted, decision = _decide(request=request, data=data, candidate=candidate, scores=scores)
        figures = _figures(scores=scores, data=data)
        report = _report(
            version=version,
            request=request,
            data=data,
            candidate=candidate,
            scores=scores,
            figures=figures,
            active=active_version,
            promoted=promoted,
            decision=decision,
        )
        if request.dry_run:
            return report
        final_dir = models_root / version
        _move_into_place(candidate_dir=candidate_dir, final_dir=final_dir, prepare_serving=promoted)
    _register(
        final_dir=final_dir,
        report=report,
        data=data,
        candidate=candidate,
        figures=figures,
        active=active_version,
        force_activate=request.force_activate,
    )
    log(f"registered {version} ({'active' if report.promoted else 'not active'})")
    return report


@dataclass(frozen=True)
class _TrainingSet:
    """What one retrain trains and scores on: the training samples, the trusted pictures both models are scored on
    (never among the samples), and the summary that is logged and registered with the version."""

    samples: list[SceneSample]
    ground_truth: list[TrustedPicture]
    evaluation: list[TrustedPicture]
    summary: dict[str, Any]

    def trusted(self) -> dict[str, list[TrustedPicture]]:
        return {"ground_truth": self.ground_truth, "eval": self.evaluation}


@dataclass(frozen=True)
class _Candidate:
    """What training the candidate gave besides its folder: its training metrics, and the version it continued
    from (None: it started fresh)."""

    metrics: dict[str, Any]
    warm_start: str | None


@dataclass(frozen=True)
class _Scores:
    """Per trusted picture, whether each model was right (``active`` None when there is no active version or it
    could not be loaded: ``active_unscorable`` says why), and the paired tests between them."""

    candidate: dict[str, list[bool]]
    active: dict[str, list[bool]] | None
    active_unscorable: str | None
    tests: dict[str, PairedTest]


@dataclass(frozen=True)
class _Figures:
    """Both models' score figures per picture set and slice (:func:`score_figures`); ``active`` None when it was
    not scored."""

    candidate: dict[str, Any]
    active: dict[str, Any] | None


def _training_set(
    *, request: RetrainRequest, scratch_dir: Path, progress: ProgressFactory | None, log: Log
) -> _TrainingSet:
    """Step 1: the pictures to train on and the trusted ones to score on, with scored pictures (and their near
    copies) taken out of training. Raises :class:`RetrainError` when there are too few to train or to decide."""
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
    return _TrainingSet(samples=samples, ground_truth=ground_truth, evaluation=evaluation, summary=summary)


def _train_candidate(
    *,
    data: _TrainingSet,
    candidate_dir: Path,
    version: str,
    recipe: SceneRecipe,
    active: ModelVersion | None,
    models_root: Path,
    log: Log,
) -> _Candidate:
    """Step 2: train the candidate into ``candidate_dir``, warm-started from the active scene model and keeping its
    second opinion when it has them. A training that fails is a :class:`RetrainError`, nothing registered."""
    from ml_training.scene.train import train_scene_model

    initial_head, warm_start = active_warm_start(active, recipe.settings.trainable_blocks, log)
    try:
        result = train_scene_model(
            data.samples,
            candidate_dir,
            version=version,
            recipe=recipe,
            initial_head=initial_head,
            second_opinion=active_second_opinion(active, models_root, log),
            calibration_remedy=MORE_PICTURES,
        )
    except (ValueError, RuntimeError) as error:
        raise RetrainError(f"Training failed: {error}") from error
    return _Candidate(metrics=result.metrics, warm_start=warm_start)


def _score_both(
    *,
    candidate_dir: Path,
    active: ModelVersion | None,
    data: _TrainingSet,
    progress: ProgressFactory | None,
    log: Log,
) -> _Scores:
    """Step 3, measuring: the candidate and the active model on the same trusted pictures, and the paired tests
    between them. An active model that cannot be loaded is recorded as unscorable, not raised: the candidate is
    then registered inactive with that reason."""
    candidate_right = model_dir_score(candidate_dir, data.ground_truth, data.evaluation, progress, "scoring candidate")
    try:
        active_right = active_version_score(active, data.ground_truth, data.evaluation, progress, log)
        unscorable = None
    except ActiveUnscorable as error:
        active_right, unscorable = None, str(error)
    tests = {
        name: paired_test(baseline=active_right[name], candidate=candidate_right[name])
        for name in ("ground_truth", "eval")
        if active_right is not None
    }
    return _Scores(candidate=candidate_right, active=active_right, active_unscorable=unscorable, tests=tests)


def _decide(*, request: RetrainRequest, data: _TrainingSet, candidate: _Candidate, scores: _Scores) -> tuple[bool, str]:
    """Step 3, deciding: :data:`PROMOTION_RULE` on the scores (:func:`decide_promotion`): whether to activate the
    candidate, and the reason."""
    return decide_promotion(
        ground_truth_per_label=data.summary["ground_truth"]["per_label"],
        tests=scores.tests,
        has_active=scores.active is not None,
        force=request.force_activate,
        active_unscorable=scores.active_unscorable,
        uninformative=candidate.metrics.get("calibration_warning"),
    )


def _figures(*, scores: _Scores, data: _TrainingSet) -> _Figures:
    """The figures the report shows and the dashboard stores, for each model that was scored."""
    trusted = data.trusted()
    return _Figures(
        candidate=score_figures(scores.candidate, trusted),
        active=score_figures(scores.active, trusted) if scores.active is not None else None,
    )


def _report(
    *,
    version: str,
    request: RetrainRequest,
    data: _TrainingSet,
    candidate: _Candidate,
    scores: _Scores,
    figures: _Figures,
    active: ModelVersion | None,
    promoted: bool,
    decision: str,
) -> RetrainReport:
    """The run's report; for a dry run, one that says nothing was registered or promoted."""
    return RetrainReport(
        version=version,
        rule=PROMOTION_RULE,
        data_summary=data.summary,
        candidate={"model_version": version, **figures.candidate},
        # Active figures exist only when there is an active version (``active_version_score``).
        active={"model_version": active.name, **figures.active} if figures.active and active else None,
        paired_tests={name: test.to_dict() for name, test in scores.tests.items()},
        promoted=promoted and not request.dry_run,
        decision=dry_run_decision(decision) if request.dry_run else decision,
        registered=not request.dry_run,
        warm_start=candidate.warm_start,
        training_metrics=candidate.metrics,
    )


def _move_into_place(*, candidate_dir: Path, final_dir: Path, prepare_serving: bool) -> None:
    """Step 4, the files: the candidate's folder becomes the version's, ready to serve when it is to be activated."""
    # One rename makes the whole directory appear at once: no worker can see a half-written version.
    os.replace(candidate_dir, final_dir)
    if prepare_serving:  # before the activation, outside its lock: the export takes seconds
        model_serving_prepare(model_dir=final_dir)


def _register(
    *,
    final_dir: Path,
    report: RetrainReport,
    data: _TrainingSet,
    candidate: _Candidate,
    figures: _Figures,
    active: ModelVersion | None,
    force_activate: bool,
) -> None:
    """Step 4, the database, in one transaction: register the version, active when the report promotes it and the
    comparison still holds (:func:`_still_comparable`; else ``report`` is changed to say why not), and store both
    versions' scores."""
    metrics = {
        **candidate.metrics,
        "ground_truth": figures.candidate["ground_truth"],
        "eval": figures.candidate["eval"],
        "active_on_same_pictures": figures.active,
        "paired_tests": report.paired_tests,
        "decision": report.decision,
        "warm_start": candidate.warm_start,
    }
    trusted = data.trusted()
    with transaction.atomic():
        active_now = model_versions_lock()
        if report.promoted and not force_activate and not _still_comparable(active_then=active, active_now=active_now):
            report.promoted = False
            report.decision = (
                "not promoted: the active model version changed while this retrain ran, so it was compared with a "
                f"version that is no longer active; run the retrain again to compare with the current one. "
                f"({report.decision})"
            )
            metrics["decision"] = report.decision
        registered = model_version_register(
            model_dir=final_dir, metrics=metrics, data_summary=data.summary, activate=report.promoted
        )
        version_scores_store(registered, figures.candidate, trusted)
        if active is not None and figures.active is not None:
            version_scores_store(active, figures.active, trusted)


def _still_comparable(*, active_then: ModelVersion | None, active_now: int | None) -> bool:
    """Whether the version active now (its id, read under :func:`model_versions_lock`) is the one the candidate was
    compared with, active when the retrain started. If someone activated another since (a rollback, another
    retrain), the decision was not about it."""
    return active_now == (active_then.pk if active_then is not None else None)


def _settable_names() -> list[str]:
    """The recipe's names ``--set`` takes: all but ``seed``, which ``--seed`` sets (one value for both of the
    recipe's seeds, recorded with the version), so a ``--set seed=...`` is refused rather than overridden."""
    from ml_training.scene.config import flat_names

    return [name for name in flat_names() if name != "seed"]


def _refuse_unsettable(overrides: dict[str, Any]) -> None:
    """Refuse ``--set`` names that set nothing, listing those it takes: the recipe's own refusal listed every
    knob, ``seed`` too, which ``--set`` refuses."""
    if "seed" in overrides:
        raise RetrainError("Set the seed with --seed, not --set seed=...")
    names = _settable_names()
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise RetrainError(
            f"Bad training setting: Unknown training setting(s) {', '.join(unknown)}; --seed sets the seed, "
            f"--set one of: {', '.join(names)}."
        )


def _recipe(request: RetrainRequest, *, network_shape: dict[str, int | str] | None = None) -> SceneRecipe:
    """The scene recipe with the request's overrides (``--set``, ``--epochs``, ``--seed``); bad ones refused.

    ``network_shape``: the active model's (:func:`~phoneapp.services.retrain_warm_start.active_network_shape`), so
    a retrain keeps its tuned trunk blocks and head layers unless told otherwise.
    """
    from ml_training.scene.config import recipe_from_flat

    _refuse_unsettable(request.config_overrides)
    values: dict[str, Any] = {**(network_shape or {}), **request.config_overrides, "seed": request.seed}
    if request.epochs is not None:
        values["epochs"] = request.epochs
    try:
        return recipe_from_flat(values)
    except (TypeError, ValueError) as error:
        raise RetrainError(f"Bad training setting: {error}") from error
