"""Turning reviewers' corrections into a new scene-model version, promoted only on trusted evidence.

Used by ``manage.py retrain``. Steps:

1. collect the training pictures: reviewed uploads of the ``train`` split whose label is settled (a review that
   contradicted a confident verdict counts only once a second reviewer agreed), with the reviewers' boxes, plus
   ``--data-dir`` / ``TRAINING_DATA_DIR``; ground-truth and eval pictures are never among them;
2. train a scene-detector candidate (``ml_training.scene.train.train_scene_model``) into a temporary directory,
   warm-started from the active model's head (and tuned trunk blocks) when the active model is a scene model,
   with the same network shape (tuned trunk blocks, global-context layer, picture pooling, heads) unless ``--set
   trainable_blocks=N``, ``--set global_context=1``, ``--set picture_pooling=max`` or ``--set heads=1`` says
   otherwise;
3. score the candidate and the active model on the same trusted pictures -- the ground-truth set and the eval
   split -- per picture, and apply :data:`PROMOTION_RULE`;
4. register the candidate (moved into place with one atomic rename), activate it if the rule allows, and store
   both versions' scores (``VersionScore``) so the dashboard compares versions on the same pictures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.images import ImageError, open_image
from inference.manifest import ModelLoadError, manifest_checksum, read_manifest, sha256_file
from inference.prediction import NOT_PHONE, PHONE
from inference.scene_options import SceneNetworkOptions
from ml_training.metrics import SIGNIFICANCE, PairedTest, paired_test
from ml_training.phash import dhash
from ml_training.scene.data import SceneSample, load_data_dirs
from phoneapp.models import ModelVersion, Upload, VersionScore
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.selectors.training import (
    eval_uploads,
    ground_truth_uploads,
    training_uploads,
    uploads_held_for_second_review_count,
)
from phoneapp.services.errors import DomainError
from phoneapp.services.evaluation import files_phone_probabilities, local_picture_path, pictures_decode
from phoneapp.services.image_validation import SMALLEST_DRAFT
from phoneapp.services.model_versions import (
    classifier_load,
    model_dir_of,
    model_version_register,
    model_versions_lock,
)

logger = logging.getLogger(__name__)

LABELS = (NOT_PHONE, PHONE)
# Below this many readable pictures of a label, the candidate's grouped cross-validation cannot be trusted.
MIN_PICTURES_PER_LABEL = 6
# Ground truth needs this many pictures of each label before any automatic promotion: with fewer, a paired test
# cannot tell a worse model from a lucky one.
MIN_GROUND_TRUTH_PER_LABEL = 10
# A phone box covering less than this fraction of the picture makes it a "scene" (a small phone among things).
SCENE_BOX_AREA = 0.1
SCENE_KIND = "scene-detector"

PROMOTION_RULE = (
    "The candidate becomes active automatically only when (1) the ground-truth set (staff-confirmed labels, never "
    f"trained on) has at least {MIN_GROUND_TRUTH_PER_LABEL} pictures of each label, (2) on the ground-truth set "
    "the candidate is right on at least as many pictures as the active model, and a paired McNemar test on the "
    f"pictures where they disagree does not find it worse (one-sided exact p < {SIGNIFICANCE}), and (3) the same "
    "holds on the eval split (a fixed 20% of reviewed pictures, never trained on); an active version that cannot "
    "be loaded to compare with counts as not shown. Otherwise it is registered inactive with the reason; "
    "--activate is a person's decision to activate it anyway."
)

Log = Callable[[str], None]
ProgressFactory = Callable[[str, int], Callable[[int], None]]


class RetrainError(DomainError):
    """The retrain cannot run or did not produce a model; nothing was registered."""


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


@dataclass(frozen=True)
class TrustedPicture:
    """A picture every version is scored on: its label, the slices it counts in and its content hash.

    It holds the picture's path, not its pixels: the sets grow with every review, and hundreds of phone photos
    decoded at full size would not fit in memory. Each scoring decodes a batch at a time, as the worker would.
    """

    sha256: str
    label: str
    slices: tuple[str, ...]
    path: Path


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
        offered = _collect_samples(request, workdir=workdir)
        samples, unreadable = pictures_decode(offered, advance=_progress(progress, "checking pictures", len(offered)))
        ground_truth = _trusted([(u, u.ground_truth_label) for u in ground_truth_uploads()], workdir)
        evaluation = _trusted([(u, u.reviewed_label) for u in eval_uploads()], workdir)
        samples, left_out = _without_scoring_pictures(samples, [*ground_truth, *evaluation])
        summary = _data_summary(offered, samples, unreadable, ground_truth=ground_truth, evaluation=evaluation)
        summary["folder_pictures_also_scored_left_out"] = left_out.folder_pictures
        summary["uploads_like_scored_left_out"] = left_out.uploads
        _check_enough(summary)
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
        candidate_right = _score(candidate_dir, ground_truth, evaluation, progress, "scoring candidate")
        try:
            active_right = _score_active(active_version, ground_truth, evaluation, progress, log)
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
        candidate_figures = _figures(candidate_right, trusted)
        active_figures = _figures(active_right, trusted) if active_right is not None else None
        report = RetrainReport(
            version=version,
            rule=PROMOTION_RULE,
            data_summary=summary,
            candidate={"model_version": version, **candidate_figures},
            # Active figures exist only when there is an active version (``_score_active``).
            active={"model_version": active_version.name, **active_figures}
            if active_figures and active_version
            else None,
            paired_tests={name: test.to_dict() for name, test in tests.items()},
            promoted=promoted and not request.dry_run,
            decision=_dry_run_decision(decision) if request.dry_run else decision,
            registered=not request.dry_run,
            warm_start=warm_start,
            training_metrics=result.metrics,
        )
        if request.dry_run:
            return report
        final_dir = models_root / version
        # One rename makes the whole directory appear at once: no worker can see a half-written version.
        os.replace(candidate_dir, final_dir)
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
        _store_scores(registered, candidate_figures, trusted)
        if active_version is not None and active_figures is not None:
            _store_scores(active_version, active_figures, trusted)
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


# --- The rule ---------------------------------------------------------------------------------------------------


def decide_promotion(
    *,
    ground_truth_per_label: dict[str, int],
    tests: dict[str, PairedTest],
    has_active: bool,
    force: bool,
    active_unscorable: str | None = None,
    uninformative: str | None = None,
) -> tuple[bool, str]:
    """(promote?, the reason in words) by :data:`PROMOTION_RULE`; ``force`` is ``--activate``;
    ``active_unscorable``: why an active version exists but could not be scored (nothing shows the candidate is
    not worse than it, so it is not promoted); ``uninformative``: why the candidate's calibration shows it cannot
    tell phones apart (its verdicts would all read alike, whatever it scores on a few trusted pictures)."""
    if force:
        warning = f" Warning: {uninformative}." if uninformative else ""
        return True, f"activated because --activate was given (a person's decision; the rule was not applied).{warning}"
    if uninformative:
        return False, (
            f"not promoted: {uninformative}. Registered inactive: activate it yourself only on purpose (the admin's "
            "'Activate this version', or manage.py activate_model NAME)."
        )
    if active_unscorable:
        return False, (
            f"not promoted: {active_unscorable}. Registered inactive: repair or replace the active version, or "
            "activate this one yourself (the admin's 'Activate this version', or manage.py activate_model NAME)."
        )
    missing = {label: MIN_GROUND_TRUTH_PER_LABEL - ground_truth_per_label.get(label, 0) for label in LABELS}
    missing = {label: count for label, count in missing.items() if count > 0}
    if missing:
        needed = " and ".join(f"{count} more {label}" for label, count in missing.items())
        have = ", ".join(f"{ground_truth_per_label.get(label, 0)} {label}" for label in LABELS)
        return False, (
            f"not promoted: too little ground truth to judge (it has {have}; {needed} needed, at least "
            f"{MIN_GROUND_TRUTH_PER_LABEL} of each label). Registered inactive: mark reviewed uploads as ground truth "
            "(admin action or G in the review queue), or activate it yourself (the admin's 'Activate this version', "
            "or manage.py activate_model NAME)."
        )
    if not has_active:
        return True, "promoted: there is no active model to compare with."
    # Right on fewer pictures is worse as measured, even when too few pictures disagree for the test to be
    # significant: with 20 ground-truth pictures, 8 against 2 is p = 0.055, and repeated retrains could slide.
    worse = [
        name
        for name, test in tests.items()
        if test.candidate_worse or test.only_candidate_right < test.only_baseline_right
    ]
    details = "; ".join(
        f"{name}: candidate alone right on {test.only_candidate_right}, active alone on {test.only_baseline_right}, "
        f"p(candidate worse) = {test.p_candidate_worse:.4f}"
        for name, test in tests.items()
    )
    if worse:
        reasons = "; ".join(
            f"on {name} it is right on fewer pictures ({test.only_candidate_right} only it gets right, "
            f"{test.only_baseline_right} only the active model does)"
            if not test.candidate_worse
            else f"on {name} it is significantly worse (p = {test.p_candidate_worse:.4f})"
            for name, test in tests.items()
            if name in worse
        )
        return False, f"not promoted: {reasons} ({details})."
    return True, f"promoted: not worse than the active model on ground truth or eval ({details})."


def _dry_run_decision(decision: str) -> str:
    """A dry run's decision: what the rule says, without the registering it did not do."""
    said = decision.split(" Registered inactive:", 1)[0]
    return f"dry run, nothing registered; the rule says: {said}"


class ActiveUnscorable(Exception):
    """There is an active version, and it cannot be loaded to score the trusted pictures."""


# --- Collecting pictures ----------------------------------------------------------------------------------------


def _recipe(request: RetrainRequest, *, network_shape: dict[str, int | str] | None = None) -> Any:
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


def _upload_boxes(upload: Upload) -> tuple[tuple[float, float, float, float], ...]:
    if upload.reviewed_label != PHONE or not upload.reviewed_boxes:
        return ()
    return tuple(tuple(item["box"]) for item in upload.reviewed_boxes)


def _collect_samples(request: RetrainRequest, *, workdir: Path) -> list[SceneSample]:
    samples = [
        SceneSample(
            path=str(local_picture_path(upload, workdir)),
            label=upload.reviewed_label,
            source="reviewed-upload",
            group=f"sha256:{upload.sha256}",
            boxes=_upload_boxes(upload),
            recorded_as=f"upload:{upload.pk}",
        )
        for upload in training_uploads()
    ]
    for folder in request.data_dirs:
        if not folder.is_dir():
            raise RetrainError(f"--data-dir {folder} is not a folder.")
    base = settings.TRAINING_DATA_DIR
    if base and not Path(base).is_dir():
        # Said, not skipped: a volume not mounted under cron would quietly train on far fewer pictures.
        raise RetrainError(f"TRAINING_DATA_DIR {base} is not a folder (not mounted?); nothing was trained.")
    # Each folder once, as given (TRAINING_DATA_DIR also passed as --data-dir is not read twice).
    folders = list(
        {folder.resolve(): folder for folder in [*request.data_dirs, *([Path(base)] if base else [])]}.values()
    )
    for folder in folders:
        try:
            samples.extend(_folder_samples(folder))
        except (FileNotFoundError, KeyError, ValueError) as error:
            raise RetrainError(f"{folder}: {error}") from error
    if not samples:
        raise RetrainError(
            "No training data: no upload has a settled reviewed label in the train split, and no --data-dir was given."
        )
    return samples


# A training picture whose dHash is within this many bits (of 256) of a ground-truth or eval picture's is the same
# picture re-encoded, resized or re-sent (such copies measured 0-4 bits apart). Tighter than the folds' 22
# (ml_training/splits.py): frames of one fixed camera are that close to each other (40% of the office CCTV frames
# have a frame of another group within 22 bits, 18% within 4), and one eval frame must not take its camera's other
# frames out of training.
NEAR_DUPLICATE_BITS = 6
# Decoded this small (a JPEG's draft) for hashing: dHash looks at a 17x16 thumbnail.
HASH_DRAFT = (64, 64)


@dataclass(frozen=True)
class LeftOut:
    """Training pictures left out because they are a scored picture: folder files, and train-split uploads."""

    folder_pictures: int
    uploads: int


def _picture_hash(path: str | Path) -> Any:
    try:
        with open_image(path, draft_size=HASH_DRAFT) as image:
            return dhash(image)
    except (ImageError, OSError):
        return None


def _without_scoring_pictures(
    samples: list[SceneSample], scoring: Sequence[TrustedPicture]
) -> tuple[list[SceneSample], LeftOut]:
    """The samples minus every picture that is a ground-truth or eval picture: the same bytes (folder files), or
    within ``NEAR_DUPLICATE_BITS`` of one by perceptual hash (a re-encoded, resized or re-sent copy, which the
    review split, a hash of the bytes, may have put in ``train``). A candidate scored on pictures it trained on
    would win its promotion test for nothing (e.g. ground truth seeded by uploading pictures of the training
    folder)."""
    if not scoring:
        return samples, LeftOut(0, 0)
    scored_bytes = {picture.sha256 for picture in scoring}
    scored_hashes = [found for picture in scoring if (found := _picture_hash(picture.path)) is not None]
    scored_bits = np.stack(scored_hashes) if scored_hashes else None
    kept, folder_pictures, uploads = [], 0, 0
    for sample in samples:
        is_upload = sample.source == "reviewed-upload"
        same_bytes = not is_upload and sha256_file(sample.path) in scored_bytes
        found = None if same_bytes or scored_bits is None else _picture_hash(sample.path)
        looks_same = found is not None and int((scored_bits != found).sum(axis=1).min()) <= NEAR_DUPLICATE_BITS
        if same_bytes or looks_same:
            uploads += is_upload
            folder_pictures += not is_upload
            continue
        kept.append(sample)
    return kept, LeftOut(folder_pictures, uploads)


def _folder_samples(folder: Path) -> list[SceneSample]:
    """A folder's pictures, read as ``python -m ml_training`` reads them (:func:`load_data_dirs`: a ``manifest.csv``
    with phone boxes when it has them, or ``phone/`` + ``not_phone/``), each source named with its folder
    (``phone-scenes:office-cctv``) so the report tells folders apart. The retrain had its own reader, which gave a
    plain folder's pictures the sources ``phone`` and ``not_phone``: its figures per source were per label."""
    return [
        dataclasses.replace(sample, source=_folder_source(folder.name, sample.source))
        for sample in load_data_dirs([folder])
    ]


def _folder_source(folder_name: str, source: str) -> str:
    return folder_name if source in ("", folder_name) else f"{folder_name}:{source}"


def _trusted(labelled: list[tuple[Upload, str]], workdir: Path) -> list[TrustedPicture]:
    pictures = []
    for upload, label in labelled:
        path = local_picture_path(upload, workdir)
        try:
            open_image(path, draft_size=SMALLEST_DRAFT)  # readable? (each scoring decodes it again)
        except (ImageError, OSError) as error:
            logger.warning("unreadable trusted picture skipped", extra={"upload_id": upload.pk, "error": error})
            continue
        slices = ["all", f"label:{label}"]
        boxes = upload.reviewed_boxes or []
        if label == PHONE and boxes:
            largest = max((b["box"][2] - b["box"][0]) * (b["box"][3] - b["box"][1]) for b in boxes)
            slices.append("scenes" if largest < SCENE_BOX_AREA else "close-ups")
        pictures.append(TrustedPicture(sha256=upload.sha256, label=label, slices=tuple(slices), path=path))
    return pictures


def _data_summary(
    offered: list[SceneSample],
    samples: list[SceneSample],
    unreadable: list[str],
    *,
    ground_truth: list[TrustedPicture],
    evaluation: list[TrustedPicture],
) -> dict[str, Any]:
    by_label = Counter(sample.label for sample in samples)
    by_source: dict[str, Counter[str]] = {}
    for sample in samples:
        source = sample.source.split(":", 1)[0] if sample.source != "reviewed-upload" else sample.source
        by_source.setdefault(source, Counter())[sample.label] += 1
    return {
        "pictures": len(samples),
        "boxed_pictures": sum(sample.has_boxes for sample in samples),
        "unreadable_skipped": len(unreadable),
        "per_label": {label: by_label.get(label, 0) for label in LABELS},
        "per_source": {source: dict(counts) for source, counts in sorted(by_source.items())},
        "offered": len(offered),
        "held_for_second_review": uploads_held_for_second_review_count(),
        "ground_truth": _set_summary(ground_truth),
        "eval": _set_summary(evaluation),
    }


def _set_summary(pictures: list[TrustedPicture]) -> dict[str, Any]:
    counts = Counter(picture.label for picture in pictures)
    return {"pictures": len(pictures), "per_label": {label: counts.get(label, 0) for label in LABELS}}


def _check_enough(summary: dict[str, Any]) -> None:
    per_label = summary["per_label"]
    too_few = {label: count for label, count in per_label.items() if count < MIN_PICTURES_PER_LABEL}
    if too_few:
        counts = ", ".join(f"{count} {label}" for label, count in too_few.items())
        raise RetrainError(
            f"Too few readable pictures to train on: {counts}; at least {MIN_PICTURES_PER_LABEL} of each label are "
            f"needed ({summary['unreadable_skipped']} unreadable skipped). Training takes settled reviews of "
            "train-split uploads (ground-truth and eval pictures never train) and the pictures of --data-dir / "
            "TRAINING_DATA_DIR."
        )


# --- Warm start and scoring -------------------------------------------------------------------------------------


def _scene_manifest(active: ModelVersion | None) -> Any:
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


def _second_opinion(active: ModelVersion | None, models_root: Path, log: Log) -> Any:
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


def _progress(factory: ProgressFactory | None, label: str, total: int) -> Callable[[int], None] | None:
    return factory(label, total) if factory is not None else None


def _right_answers(
    model_dir: Path, pictures: list[TrustedPicture], advance: Callable[[int], None] | None
) -> list[bool]:
    classifier = classifier_load(model_dir=model_dir, engine="torch")
    threshold = classifier.manifest.threshold
    probabilities = files_phone_probabilities(classifier, [picture.path for picture in pictures], advance=advance)
    return [
        (probability >= threshold) == (picture.label == PHONE)
        for picture, probability in zip(pictures, probabilities, strict=True)
    ]


def _score(
    model_dir: Path,
    ground_truth: list[TrustedPicture],
    evaluation: list[TrustedPicture],
    progress: ProgressFactory | None,
    label: str,
) -> dict[str, list[bool]]:
    both = ground_truth + evaluation
    right = _right_answers(model_dir, both, _progress(progress, label, len(both)))
    return {"ground_truth": right[: len(ground_truth)], "eval": right[len(ground_truth) :]}


def _score_active(
    active: ModelVersion | None,
    ground_truth: list[TrustedPicture],
    evaluation: list[TrustedPicture],
    progress: ProgressFactory | None,
    log: Log,
) -> dict[str, list[bool]] | None:
    """The active version's right/wrong per trusted picture; None when there is no active version. Raises
    :class:`ActiveUnscorable` when there is one that cannot be loaded."""
    if active is None:
        return None
    try:
        return _score(model_dir_of(active), ground_truth, evaluation, progress, f"scoring active {active.name}")
    except ModelLoadError as error:
        log(f"active model {active.name} cannot be loaded ({error}): the candidate cannot be compared with it")
        raise ActiveUnscorable(
            f"the active model {active.name} could not be loaded to compare with ({error})"
        ) from error


def _digest(pictures: Sequence[TrustedPicture]) -> str:
    return hashlib.sha256("\n".join(sorted(picture.sha256 for picture in pictures)).encode()).hexdigest()


def _figures(right: dict[str, list[bool]], trusted: dict[str, list[TrustedPicture]]) -> dict[str, Any]:
    """Per picture set and slice: count, correct, accuracy, false positives and negatives, the pictures' digest."""
    figures: dict[str, Any] = {}
    for set_name, pictures in trusted.items():
        by_slice: dict[str, list[tuple[TrustedPicture, bool]]] = {}
        for picture, is_right in zip(pictures, right[set_name], strict=True):
            for name in picture.slices:
                by_slice.setdefault(name, []).append((picture, is_right))
        by_slice.setdefault("all", [])
        figures[set_name] = {
            name: {
                "count": len(rows),
                "correct": sum(is_right for _, is_right in rows),
                "accuracy": round(sum(is_right for _, is_right in rows) / len(rows), 4) if rows else None,
                "false_positives": sum(not r and p.label == NOT_PHONE for p, r in rows),
                "false_negatives": sum(not r and p.label == PHONE for p, r in rows),
                "pictures_digest": _digest([p for p, _ in rows]),
            }
            for name, rows in sorted(by_slice.items())
        }
    return figures


def _store_scores(version: ModelVersion, figures: dict[str, Any], trusted: dict[str, list[TrustedPicture]]) -> None:
    now = timezone.now()
    VersionScore.objects.bulk_create(
        VersionScore(
            version=version,
            picture_set=set_name,
            slice=slice_name,
            count=row["count"],
            correct=row["correct"],
            accuracy=row["accuracy"] if row["accuracy"] is not None else 0.0,
            false_positives=row["false_positives"],
            false_negatives=row["false_negatives"],
            pictures_digest=row["pictures_digest"],
            created=now,
        )
        for set_name in trusted
        for slice_name, row in figures[set_name].items()
        if row["count"]
    )
