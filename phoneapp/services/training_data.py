"""What a retrain trains on and what every version is scored on.

Training pictures: reviewed uploads of the ``train`` split whose label is settled, with the reviewers' boxes, plus
``--data-dir`` / ``TRAINING_DATA_DIR`` folders read as ``python -m ml_training`` reads them. Trusted pictures (the
ground-truth set and the eval split) score every version and never train: their files, and pictures that look the
same, are left out of training. Used by :mod:`phoneapp.services.retraining`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from inference.images import ImageError, open_image
from inference.manifest import sha256_file
from inference.prediction import NOT_PHONE, PHONE
from ml_training.data import REVIEWED_UPLOAD_SOURCE
from ml_training.phash import dhash
from ml_training.scene.data import SceneSample, load_data_dirs
from phoneapp.models import Upload
from phoneapp.selectors.training import training_uploads, uploads_held_for_second_review_count
from phoneapp.services.errors import RetrainError
from phoneapp.services.evaluation import local_picture_path
from phoneapp.services.image_validation import SMALLEST_DRAFT

logger = logging.getLogger(__name__)


LABELS = (NOT_PHONE, PHONE)


# Below this many readable pictures of a label, the candidate's grouped cross-validation cannot be trusted.
MIN_PICTURES_PER_LABEL = 6


# A phone box covering less than this fraction of the picture makes it a "scene" (a small phone among things).
SCENE_BOX_AREA = 0.1


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


@dataclass(frozen=True)
class LeftOut:
    """Training pictures left out because they are a scored picture: folder files, and train-split uploads."""

    folder_pictures: int
    uploads: int


# A training picture whose dHash is within this many bits (of 256) of a ground-truth or eval picture's is the same
# picture re-encoded, resized or re-sent (such copies measured 0-4 bits apart). Tighter than the folds' 22
# (ml_training/splits.py): frames of one fixed camera are that close to each other (40% of the office CCTV frames
# have a frame of another group within 22 bits, 18% within 4), and one eval frame must not take its camera's other
# frames out of training.
NEAR_DUPLICATE_BITS = 6


# Decoded this small (a JPEG's draft) for hashing: dHash looks at a 17x16 thumbnail.
HASH_DRAFT = (64, 64)


def training_samples_collect(*, data_dirs: Sequence[Path], workdir: Path) -> list[SceneSample]:
    """Every picture a retrain may train on: reviewed uploads of the train split whose label is settled, with the
    reviewers' boxes (read where storage keeps them, or copied into ``workdir``), then each folder of ``data_dirs``
    and ``TRAINING_DATA_DIR`` once. A folder that is not there stops the run (:class:`RetrainError`)."""
    samples = [
        SceneSample(
            path=str(local_picture_path(upload, workdir)),
            label=upload.reviewed_label,
            source=REVIEWED_UPLOAD_SOURCE,
            group=f"sha256:{upload.sha256}",
            boxes=_upload_boxes(upload),
            recorded_as=f"upload:{upload.pk}",
        )
        for upload in training_uploads()
    ]
    for folder in data_dirs:
        if not folder.is_dir():
            raise RetrainError(f"--data-dir {folder} is not a folder.")
    base = settings.TRAINING_DATA_DIR
    if base and not Path(base).is_dir():
        # Said, not skipped: a volume not mounted under cron would quietly train on far fewer pictures.
        raise RetrainError(f"TRAINING_DATA_DIR {base} is not a folder (not mounted?); nothing was trained.")
    # Each folder once, as given (TRAINING_DATA_DIR also passed as --data-dir is not read twice).
    folders = list({folder.resolve(): folder for folder in [*data_dirs, *([Path(base)] if base else [])]}.values())
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


def _upload_boxes(upload: Upload) -> tuple[tuple[float, float, float, float], ...]:
    if upload.reviewed_label != PHONE or not upload.reviewed_boxes:
        return ()
    return tuple(tuple(item["box"]) for item in upload.reviewed_boxes)


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


def training_samples_without_scored(
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
        is_upload = sample.source == REVIEWED_UPLOAD_SOURCE
        same_bytes = not is_upload and sha256_file(sample.path) in scored_bytes
        found = None if same_bytes or scored_bits is None else _picture_hash(sample.path)
        looks_same = False
        if found is not None and scored_bits is not None:
            looks_same = int(np.not_equal(scored_bits, found).sum(axis=1).min()) <= NEAR_DUPLICATE_BITS
        if same_bytes or looks_same:
            uploads += is_upload
            folder_pictures += not is_upload
            continue
        kept.append(sample)
    return kept, LeftOut(folder_pictures, uploads)


def _picture_hash(path: str | Path) -> np.ndarray | None:
    try:
        with open_image(path, draft_size=HASH_DRAFT) as image:
            return dhash(image)
    except (ImageError, OSError):
        return None


def trusted_pictures(labelled: list[tuple[Upload, str]], workdir: Path) -> list[TrustedPicture]:
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


def training_data_summary(
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
        source = sample.source.split(":", 1)[0] if sample.source != REVIEWED_UPLOAD_SOURCE else sample.source
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


def training_data_check_enough(summary: dict[str, Any]) -> None:
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
