"""Turning reviewers' corrections into a new model version, promoted only when it is not worse.

Used by ``manage.py retrain`` (and the ``retrain_model`` task on the training queue). Steps: collect labelled
pictures (reviewed uploads, an optional folder, the base training folder), check they decode, train a candidate
into a temporary directory, measure it and the active model on the same held-out pictures, then register it
(moved into place with one atomic rename) and activate it if the promotion rule allows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from inference.loader import load
from inference.manifest import ModelLoadError
from ml_training.data import LABELS, Sample, load_samples
from phoneapp.models import ModelVersion
from phoneapp.services.errors import DomainError
from phoneapp.services.evaluation import LabelledPictures, decode_labelled, measure_classifier, reviewed_upload_samples
from phoneapp.services.model_versions import model_dir_of, model_version_register

logger = logging.getLogger(__name__)

# Below this many readable pictures of a label, a grouped train/validation/test split cannot be trusted.
MIN_PICTURES_PER_LABEL = 6

PROMOTION_RULE = (
    "The candidate becomes active only if, on the held-out pictures, its accuracy and its F1 are both at least "
    "the active model's (ties promote: a retrain on more reviewed data is preferred when it is not worse)."
)

Log = Callable[[str], None]
ProgressFactory = Callable[[str, int], Callable[[int], None]]


class RetrainError(DomainError):
    """The retrain cannot run or did not produce a model; nothing was registered."""


@dataclass(frozen=True)
class RetrainRequest:
    data_dir: Path | None = None
    epochs: int | None = None
    seed: int = 0
    # Any other ml_training TrainConfig field (e.g. {"image_size": 96}); unknown names are refused.
    config_overrides: dict[str, Any] = field(default_factory=dict)
    force_activate: bool = False
    dry_run: bool = False


@dataclass
class RetrainReport:
    version: str
    data_summary: dict[str, Any]
    candidate: dict[str, Any]
    active: dict[str, Any] | None
    promoted: bool
    decision: str
    registered: bool
    training_metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def retrain(
    *, request: RetrainRequest, log: Log = logger.info, progress: ProgressFactory | None = None
) -> RetrainReport:
    """Run one retrain as described in the module docstring; raises :class:`RetrainError` when it cannot."""
    from ml_training.train import TrainConfig, train_model

    config = _train_config(TrainConfig, request)
    models_root = Path(settings.MODELS_DIR)
    models_root.mkdir(parents=True, exist_ok=True)
    version = timezone.now().strftime("retrain-%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix=f".incoming-{version}-", dir=models_root) as scratch:
        scratch_dir = Path(scratch)
        samples = _collect_samples(request, workdir=scratch_dir / "uploads")
        pictures = decode_labelled(samples, advance=_progress(progress, "checking pictures", len(samples)))
        summary = _data_summary(samples, pictures)
        _check_enough(summary)
        log(f"training data: {json.dumps(summary, sort_keys=True)}")
        candidate_dir = scratch_dir / version
        try:
            result = train_model(pictures.samples, config, candidate_dir, version=version, log=log)
        except (ValueError, RuntimeError) as error:
            raise RetrainError(f"Training failed: {error}") from error
        held_out = _held_out(candidate_dir, pictures)
        log(f"held-out pictures: {len(held_out.samples)}")
        candidate_metrics = _measure(candidate_dir, held_out, progress, "evaluating candidate")
        active_version = ModelVersion.objects.filter(is_active=True).first()
        active_metrics = _measure_active(active_version, held_out, progress, log)
        promoted, decision = _decide(candidate_metrics, active_metrics, force=request.force_activate)
        report = RetrainReport(
            version=version,
            data_summary=summary,
            candidate=candidate_metrics,
            active=active_metrics,
            promoted=promoted and not request.dry_run,
            decision="dry run: nothing registered. " + decision if request.dry_run else decision,
            registered=not request.dry_run,
            training_metrics=result.metrics,
        )
        if request.dry_run:
            return report
        final_dir = models_root / version
        # One rename makes the whole directory appear at once: no worker can see a half-written version.
        os.replace(candidate_dir, final_dir)
    metrics = {
        **{key: candidate_metrics[key] for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "ece")},
        "held_out": candidate_metrics,
        "active_on_held_out": active_metrics,
        "training": result.metrics,
        "decision": report.decision,
    }
    model_version_register(model_dir=final_dir, metrics=metrics, data_summary=summary, activate=promoted)
    log(f"registered {version} ({'active' if promoted else 'not active'})")
    return report


def _train_config(config_class: type, request: RetrainRequest) -> Any:
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(request.config_overrides) - known
    if unknown:
        raise RetrainError(f"Unknown training setting(s): {', '.join(sorted(unknown))}.")
    values: dict[str, Any] = {**request.config_overrides, "seed": request.seed}
    if request.epochs is not None:
        values["epochs"] = request.epochs
    return config_class(**values)


def _collect_samples(request: RetrainRequest, *, workdir: Path) -> list[Sample]:
    workdir.mkdir(parents=True, exist_ok=True)
    samples = reviewed_upload_samples(workdir=workdir)
    folders = [request.data_dir] if request.data_dir else []
    base = settings.TRAINING_DATA_DIR
    if base and Path(base).is_dir() and (not request.data_dir or Path(base).resolve() != request.data_dir.resolve()):
        folders.append(Path(base))
    for folder in folders:
        if not folder.is_dir():
            raise RetrainError(f"--data-dir {folder} is not a folder.")
        try:
            found = load_samples(folder)
        except (FileNotFoundError, KeyError, ValueError) as error:
            raise RetrainError(f"{folder}: {error}") from error
        samples.extend(dataclasses.replace(sample, source=f"{folder.name}:{sample.source}") for sample in found)
    if not samples:
        raise RetrainError("No training data: no upload has a reviewed label, and no --data-dir was given.")
    return samples


def _data_summary(samples: list[Sample], pictures: LabelledPictures) -> dict[str, Any]:
    by_label = Counter(sample.label for sample in pictures.samples)
    by_source: dict[str, dict[str, int]] = {}
    for sample in pictures.samples:
        source = sample.source.split(":", 1)[0] if sample.source != "reviewed-upload" else sample.source
        by_source.setdefault(source, Counter())[sample.label] += 1  # type: ignore[index]
    return {
        "pictures": len(pictures.samples),
        "unreadable_skipped": len(pictures.unreadable),
        "per_label": {label: by_label.get(label, 0) for label in LABELS},
        "per_source": {source: dict(counts) for source, counts in sorted(by_source.items())},
        "offered": len(samples),
    }


def _check_enough(summary: dict[str, Any]) -> None:
    per_label = summary["per_label"]
    present = [label for label, count in per_label.items() if count]
    if len(present) < 2:
        raise RetrainError(
            f"Training needs pictures of both labels; only {', '.join(present) or 'none'} found "
            f"({summary['unreadable_skipped']} unreadable skipped)."
        )
    too_few = {label: count for label, count in per_label.items() if count < MIN_PICTURES_PER_LABEL}
    if too_few:
        raise RetrainError(
            f"Too few readable pictures: {too_few}; at least {MIN_PICTURES_PER_LABEL} of each label are needed "
            f"({summary['unreadable_skipped']} unreadable skipped)."
        )


def _held_out(candidate_dir: Path, pictures: LabelledPictures) -> LabelledPictures:
    """The pictures the candidate's own split kept out of training and validation."""
    split = json.loads((candidate_dir / "split.json").read_text())
    test_paths = {entry["path"] for entry in split["pictures"] if entry["part"] == "test"}
    keep = [i for i, sample in enumerate(pictures.samples) if sample.path in test_paths]
    if not keep:
        raise RetrainError("The held-out part is empty; add more labelled pictures.")
    return LabelledPictures(
        samples=[pictures.samples[i] for i in keep], images=[pictures.images[i] for i in keep], unreadable=[]
    )


def _progress(factory: ProgressFactory | None, label: str, total: int) -> Callable[[int], None] | None:
    return factory(label, total) if factory is not None else None


def _measure(
    model_dir: Path, held_out: LabelledPictures, progress: ProgressFactory | None, label: str
) -> dict[str, Any]:
    classifier = load(model_dir, engine="torch")
    return measure_classifier(classifier, held_out, advance=_progress(progress, label, len(held_out.images)))


def _measure_active(
    active: ModelVersion | None, held_out: LabelledPictures, progress: ProgressFactory | None, log: Log
) -> dict[str, Any] | None:
    if active is None:
        return None
    try:
        return _measure(model_dir_of(active), held_out, progress, f"evaluating active {active.name}")
    except ModelLoadError as error:
        log(f"active model {active.name} cannot be loaded ({error}); comparing against nothing")
        return None


def _decide(candidate: dict[str, Any], active: dict[str, Any] | None, *, force: bool) -> tuple[bool, str]:
    if force:
        return True, "activated because --activate was given."
    if active is None:
        return True, "promoted: there is no usable active model to compare with."
    not_worse = candidate["accuracy"] >= active["accuracy"] and candidate["f1"] >= active["f1"]
    comparison = (
        f"candidate accuracy {candidate['accuracy']:.4f} / F1 {candidate['f1']:.4f} vs active "
        f"{active['model_version']} accuracy {active['accuracy']:.4f} / F1 {active['f1']:.4f}"
    )
    if not_worse:
        return True, f"promoted: {comparison}."
    return False, f"not promoted (worse on held-out pictures): {comparison}."
