"""Labelled pictures for the scene model: label, source, the group it may not be split from, and phone boxes.

Two manifest layouts are read: ``phone-scenes`` (columns ``group`` and ``phone_boxes``) and ``phone-images``
(no boxes; frames of one video share a group); a folder without a manifest is read as ``phone/`` and
``not_phone/``. A box table (:func:`read_box_table`) adds boxes to pictures whose folder has none, such as the
video frames of ``phone-images`` (``ml_training/annotations/``). Pictures are never copied: a sample is a path and
its labels.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from inference.prediction import NOT_PHONE, PHONE
from ml_training.data import LABELS, Sample, samples_from_folders, video_group

logger = logging.getLogger(__name__)

BoxCorners = tuple[float, float, float, float]
# A box table's key: the picture's folder name (as given to --data-dir) and its file inside it.
BoxTable = dict[tuple[str, str], tuple[BoxCorners, ...]]


@dataclass(frozen=True)
class SceneSample:
    """One labelled picture; ``boxes`` are the phones in it (normalised x1, y1, x2, y2), empty when unknown."""

    path: str
    label: str
    source: str
    group: str | None = None
    boxes: tuple[BoxCorners, ...] = field(default_factory=tuple)
    # What a trained version's split.json and predictions.json call the picture instead of its path: a reviewed
    # upload is ``upload:<id>``, so a model folder (kept, checksummed, for rollback) names no file of a user's
    # picture and holds no verdict that outlives the upload's deletion under a findable name.
    recorded_as: str = ""

    @property
    def recorded_name(self) -> str:
        return self.recorded_as or self.path

    @property
    def target(self) -> int:
        return int(self.label == PHONE)

    @property
    def has_boxes(self) -> bool:
        return bool(self.boxes)

    @property
    def base_source(self) -> str:
        """The source's own name, without the ``folder:`` prefix a retrain adds (``phone-scenes:office-cctv`` →
        ``office-cctv``): what decides whether a picture is a scene or a paste recipient."""
        return self.source.rpartition(":")[2]

    def as_sample(self) -> Sample:
        """The plain :class:`ml_training.data.Sample` the shared split code groups."""
        return Sample(path=self.path, label=self.label, group=self.group, source=self.source)


def parse_boxes(text: str) -> tuple[BoxCorners, ...]:
    """``"x1 y1 x2 y2;x1 y1 x2 y2"`` to corner tuples, each checked to lie inside the picture."""
    boxes = []
    for part in filter(None, (chunk.strip() for chunk in (text or "").split(";"))):
        values = tuple(float(value) for value in part.split())
        if len(values) != 4:
            raise ValueError(f"A box needs four numbers, got {part!r}.")
        x1, y1, x2, y2 = values
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError(f"Box {part!r} is not inside the picture (normalised x1 < x2, y1 < y2).")
        boxes.append((x1, y1, x2, y2))
    return tuple(boxes)


def read_manifest(manifest_csv: str | os.PathLike[str]) -> list[SceneSample]:
    """Samples from a ``manifest.csv``, paths made relative to its folder; groups prefixed by the folder name."""
    path = Path(manifest_csv)
    prefix = path.parent.name
    samples = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = row["label"]
            if label not in (PHONE, NOT_PHONE):
                raise ValueError(f"{path}: label must be {PHONE} or {NOT_PHONE}, not {label!r} ({row['file']}).")
            group = row.get("group") or video_group(row.get("origin", ""))
            samples.append(
                SceneSample(
                    path=str(path.parent / row["file"]),
                    label=label,
                    source=row.get("source") or prefix,
                    group=f"{prefix}:{group}" if group else None,
                    boxes=parse_boxes(row.get("phone_boxes", "")),
                )
            )
    return samples


def has_pictures_listed(data_dir: str | os.PathLike[str]) -> bool:
    """Whether ``data_dir`` has a ``manifest.csv`` or both ``phone/`` and ``not_phone/`` folders."""
    root = Path(data_dir)
    return (root / "manifest.csv").is_file() or all((root / label).is_dir() for label in LABELS)


def load_data_dirs(data_dirs: Sequence[str | os.PathLike[str]]) -> list[SceneSample]:
    """Every picture of each folder, in the order given: its ``manifest.csv`` if it has one, else the pictures
    under ``phone/`` and ``not_phone/`` (no boxes; the folder's name is their source)."""
    samples: list[SceneSample] = []
    for data_dir in data_dirs:
        root = Path(data_dir)
        manifest = root / "manifest.csv"
        if manifest.is_file():
            samples.extend(read_manifest(manifest))
        elif has_pictures_listed(root):
            samples.extend(
                SceneSample(path=sample.path, label=sample.label, source=root.name)
                for sample in samples_from_folders(root)
            )
        else:
            raise FileNotFoundError(f"{data_dir} has no manifest.csv and no phone/ and not_phone/ folders.")
    return samples


def read_box_table(table_csv: str | os.PathLike[str]) -> BoxTable:
    """Phone boxes for pictures of another folder: columns ``folder``, ``file`` (as in that folder's manifest) and
    ``phone_boxes`` (normalised, as in ``phone-scenes``); other columns (the annotation's provenance) are kept out."""
    path = Path(table_csv)
    table: BoxTable = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                boxes = parse_boxes(row["phone_boxes"])
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}: {row.get('file')}: {error}") from error
            if not boxes:
                raise ValueError(f"{path}: {row['file']} lists no box.")
            table[(row["folder"], row["file"])] = boxes
    return table


def with_box_table(samples: Sequence[SceneSample], table: BoxTable) -> list[SceneSample]:
    """``samples`` with the table's boxes added to the pictures it names (matched by folder name and file).

    A table naming a phone-free picture is refused: a box says a phone is there. Rows for folders not being read
    are skipped (the log counts them), so one table can serve runs on either folder.
    """
    wanted = {PurePath(folder, file).parts: boxes for (folder, file), boxes in table.items()}
    matched: set[tuple[str, ...]] = set()
    boxed = []
    for sample in samples:
        parts = PurePath(sample.path).parts
        key = next((key for key in wanted if parts[-len(key) :] == key), None)
        if key is None:
            boxed.append(sample)
            continue
        if sample.target != 1:
            raise ValueError(f"{sample.path} is labelled {sample.label}, but the box table puts a phone in it.")
        matched.add(key)
        boxed.append(dataclasses.replace(sample, boxes=wanted[key]))
    logger.info(
        "box table: boxes added to %d pictures (%d rows name pictures not read)",
        len(matched),
        len(wanted) - len(matched),
    )
    return boxed
