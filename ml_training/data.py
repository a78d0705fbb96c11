"""Labelled pictures as :class:`Sample` lists, from folders, a ``manifest.csv`` or (path, label) pairs.

Pictures are never copied anywhere: a sample is a path, a label and what it may not be separated from.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from inference.prediction import NOT_PHONE, PHONE

LABELS = (NOT_PHONE, PHONE)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


# The source of an owner's reviewed upload in a retrain or an evaluation. A reviewer says whether it shows a phone,
# not whether it is a scene or a close-up, so without boxes its kind is unknown: it counts under its own source and
# in "all", never as a close-up (a retrain's "close-ups" once counted CCTV frames uploaded and reviewed).
REVIEWED_UPLOAD_SOURCE = "reviewed-upload"


def is_close_up_source(source: str) -> bool:
    """Whether an unboxed picture of ``source`` is a close-up or look-alike in the figures: every shared folder's
    source that is not a scene source, but not an owner's upload (:data:`REVIEWED_UPLOAD_SOURCE`)."""
    return source != REVIEWED_UPLOAD_SOURCE


@dataclass(frozen=True)
class Sample:
    """One labelled picture.

    ``group`` names pictures that must land in the same split part (frames of one video, one upload's
    re-submissions); perceptual-hash grouping is added on top by :mod:`ml_training.splits`. ``source`` is only
    for reporting (metrics per source).
    """

    path: str
    label: str
    group: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"Label must be one of {LABELS}, not {self.label!r} ({self.path}).")

    @property
    def target(self) -> int:
        """1 for phone, 0 for not_phone."""
        return int(self.label == PHONE)


def samples_from_pairs(pairs: Iterable[tuple[str | os.PathLike[str], str]], *, source: str = "") -> list[Sample]:
    """Samples from (path, label) pairs, e.g. reviewed uploads handed over by the retrain command."""
    return [Sample(path=str(path), label=str(label), source=source) for path, label in pairs]


def samples_from_folders(data_dir: str | os.PathLike[str]) -> list[Sample]:
    """Every picture under ``phone/`` and ``not_phone/`` (recursively), sorted by path for reproducibility."""
    root = Path(data_dir)
    samples = []
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            raise FileNotFoundError(f"{root} has no {label}/ folder.")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append(Sample(path=str(path), label=label, source=label))
    return samples


def video_group(origin: str) -> str | None:
    """Frames named ``<video>_f<frame>.jpg`` belong to one video and must not be split apart."""
    stem = Path(origin).stem
    if "_f" not in stem:
        return None
    return "video:" + stem.rsplit("_f", 1)[0]


def samples_from_manifest(manifest_csv: str | os.PathLike[str]) -> list[Sample]:
    """Samples listed in a ``manifest.csv`` (columns file, label, source, origin), paths relative to it."""
    path = Path(manifest_csv)
    samples = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            origin = row.get("origin", "")
            samples.append(
                Sample(
                    path=str(path.parent / row["file"]),
                    label=row["label"],
                    group=video_group(origin),
                    source=row.get("source", ""),
                )
            )
    return samples


def load_samples(data_dir: str | os.PathLike[str]) -> list[Sample]:
    """``manifest.csv`` in ``data_dir`` if there is one (it knows sources and video groups), else the folders."""
    manifest = Path(data_dir) / "manifest.csv"
    if manifest.is_file():
        return samples_from_manifest(manifest)
    return samples_from_folders(data_dir)
