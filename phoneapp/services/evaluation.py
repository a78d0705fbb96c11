"""Measuring a model version on labelled pictures, the same way for the retrain and evaluate commands."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from inference.contract import Classifier
from inference.images import ImageError, open_image
from inference.manifest import ModelLoadError
from inference.runtime import predict_files
from ml_training.data import REVIEWED_UPLOAD_SOURCE, Sample, load_samples
from ml_training.metrics import binary_metrics
from phoneapp.models import ModelVersion, Upload
from phoneapp.services.errors import EvaluationRefused, NothingToEvaluate
from phoneapp.services.model_versions import classifier_load, model_dir_of

logger = logging.getLogger(__name__)

BATCH_SIZE = 16
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class LabelledPictures:
    """Labelled pictures found readable (their paths: each measurement decodes a batch at a time, so a large set
    never sits decoded in memory); what could not be read is counted, not silently dropped."""

    samples: list[Sample]
    unreadable: list[str]


class _HasPicturePath(Protocol):
    @property
    def path(self) -> str: ...


SampleT = TypeVar("SampleT", bound=_HasPicturePath)


def pictures_decode(
    samples: Sequence[SampleT], *, advance: ProgressCallback | None = None
) -> tuple[list[SampleT], list[str]]:
    """Decode every sample's picture with the same safe decoder as uploads, and close it: the readable samples and
    the unreadable paths, each logged, so a bad picture is counted, never silently dropped and never fatal."""
    kept: list[SampleT] = []
    unreadable: list[str] = []
    for sample in samples:
        try:
            open_image(sample.path).close()
            kept.append(sample)
        except (ImageError, OSError) as error:
            unreadable.append(sample.path)
            logger.warning("unreadable training picture skipped", extra={"path": sample.path, "error": error})
        if advance is not None:
            advance(1)
    return kept, unreadable


def decode_labelled(samples: Sequence[Sample], *, advance: ProgressCallback | None = None) -> LabelledPictures:
    """The samples whose picture the same safe decoder as uploads reads; unreadable ones skipped and counted."""
    kept, unreadable = pictures_decode(samples, advance=advance)
    return LabelledPictures(samples=kept, unreadable=unreadable)


def files_phone_probabilities(
    classifier: Classifier, paths: Sequence[str | Path], *, advance: ProgressCallback | None = None
) -> list[float]:
    """The classifier's phone probability for each picture file, decoded as the worker decodes an upload (the batch
    API, :func:`inference.runtime.predict_files`, JPEG-drafted to the model's input) a batch at a time, so a large
    set never sits decoded in memory. Raises :class:`ImageError` for a picture that can no longer be read."""
    probabilities: list[float] = []
    for start in range(0, len(paths), BATCH_SIZE):
        results = predict_files(classifier, paths[start : start + BATCH_SIZE])
        for result in results:
            if isinstance(result, ImageError):
                raise result
            probabilities.append(result.probability)
        if advance is not None:
            advance(len(results))
    return probabilities


def measure_classifier(
    classifier: Classifier,
    pictures: LabelledPictures,
    *,
    advance: ProgressCallback | None = None,
    parts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC, ECE and confusion matrix at the model's own threshold.

    ``parts``: the samples are consecutive picture sets of these sizes, in this order (ground truth, then the eval
    split); their figures are added apart under ``per_set``, from the same verdicts, without scoring twice."""
    probabilities = np.array(
        files_phone_probabilities(classifier, [sample.path for sample in pictures.samples], advance=advance),
        dtype=np.float64,
    )
    targets = np.array([sample.target for sample in pictures.samples], dtype=np.int64)
    threshold = classifier.manifest.threshold
    metrics: dict[str, Any] = {
        "model_version": classifier.version,
        **binary_metrics(probabilities, targets, threshold).to_dict(),
    }
    if parts is not None:
        metrics["per_set"] = {}
        start = 0
        for name, size in parts.items():
            chosen = slice(start, start + size)
            start += size
            metrics["per_set"][name] = (
                binary_metrics(probabilities[chosen], targets[chosen], threshold).to_dict() if size else {"count": 0}
            )
    return metrics


def model_version_evaluate(*, version: ModelVersion, data_dir: Path | None = None) -> dict[str, Any]:
    """``version``'s figures (:func:`measure_classifier`, with eager torch: the reference engine) on the labelled
    pictures of ``data_dir`` (phone/ and not_phone/ folders, or a manifest.csv), or without it on the reviewed
    uploads no version trained on (:func:`held_out_upload_sets`). The figures also say which pictures they are
    (``data``) and how many could not be read (``unreadable_skipped``): a bad picture is counted, not silently
    dropped. On the uploads, ``per_set`` adds ground truth's and the eval split's figures apart. Raises
    :class:`EvaluationRefused`, nothing measured, when the data folder cannot be read or the version cannot be
    loaded, and its :class:`NothingToEvaluate` when not one labelled picture is readable."""
    with tempfile.TemporaryDirectory() as workdir:  # pictures copied out of a storage without local paths (S3)
        if data_dir:
            try:
                pictures = decode_labelled(load_samples(data_dir))
            except (FileNotFoundError, KeyError, ValueError) as error:
                raise EvaluationRefused(f"{data_dir}: {error}") from error
            parts = None
        else:
            # Each set apart as well as pooled: the retrain and its rule judge ground truth and the eval split
            # separately, and a pooled figure hid which one a version lost on.
            decoded = {
                name: decode_labelled(samples) for name, samples in held_out_upload_sets(workdir=Path(workdir)).items()
            }
            pictures = LabelledPictures(
                samples=[sample for each in decoded.values() for sample in each.samples],
                unreadable=[path for each in decoded.values() for path in each.unreadable],
            )
            parts = {name: len(each.samples) for name, each in decoded.items()}
        if not pictures.samples:
            raise NothingToEvaluate("No readable labelled pictures: no ground truth or eval-split reviews yet")
        try:
            classifier = classifier_load(model_dir=model_dir_of(version), engine="torch")
        except ModelLoadError as error:
            raise EvaluationRefused(str(error)) from error
        metrics = measure_classifier(classifier, pictures, parts=parts)
    metrics["unreadable_skipped"] = len(pictures.unreadable)
    metrics["data"] = str(data_dir) if data_dir else "ground truth and eval-split uploads"
    return metrics


def held_out_upload_sets(*, workdir: Path) -> dict[str, list[Sample]]:
    """The reviewed uploads no model version trained on, one per picture, per set as the retrain reports them:
    ``ground_truth`` (staff-confirmed label), then ``eval`` (the eval split's settled reviewed label). The train
    split is left out: a retrained version learnt it, so scoring it there would flatter it; labels a second
    reviewer has not agreed are left out as unsettled."""
    from phoneapp.selectors.training import trusted_labelled_uploads

    trusted = trusted_labelled_uploads()
    return {
        name: [
            Sample(
                path=str(local_picture_path(upload, workdir)),
                label=label,
                group=f"sha256:{upload.sha256}",
                source=REVIEWED_UPLOAD_SOURCE,
            )
            for upload, label in trusted[name]
        ]
        for name in ("ground_truth", "eval")
    }


def local_picture_path(upload: Upload, workdir: Path) -> Path:
    """A local file for the upload's picture: the storage's own path when it has one, else a copy (e.g. S3).

    A picture gone from storage (its owner deleted it after it was listed: a retrain copies pictures for minutes)
    gives the path of a missing file, as a storage with paths does, which the reading skips as unreadable; the
    storage's ``FileNotFoundError`` stopped the whole retrain."""
    storage = upload.image.storage
    try:
        return Path(storage.path(upload.image.name))
    except NotImplementedError:
        target = workdir / f"upload-{upload.pk}{Path(upload.image.name).suffix}"
        try:
            with storage.open(upload.image.name, "rb") as source, target.open("wb") as destination:
                shutil.copyfileobj(source, destination)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
            logger.warning("picture gone from storage since it was listed", extra={"upload_id": upload.pk})
        return target
