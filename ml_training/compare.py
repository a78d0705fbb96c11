"""``python -m ml_training compare BASELINE CANDIDATE``: are a candidate's out-of-fold verdicts better or worse?

Both versions must have been cross-validated on the same pictures (``predictions.json``, written by ``train``).
Each picture is judged by each version at its own threshold. The shared pictures are not independent: the scene
folder holds several augmented copies of each frame, and near-duplicates abound, which is why the folds keep each
*picture group* (:func:`ml_training.scene.crossval.picture_groups`) together. The test here does the same: within
each slice and source, a group counts once, for the version that got more of its pictures right (a sign test on
the groups where they differ: the promotion rule's one-sided exact test, on groups instead of pictures). Counting
pictures (also printed, for reading) made p several times too small. A candidate is worse (or better) where that
direction's p is below ``metrics.SIGNIFICANCE``. This is how ``docs/model.md`` decided that one scene model
replaces another.

Versions up to ``scene-lite0-v10`` have no groups in ``predictions.json`` (training writes them since): pass the
``--data-dir`` (and ``--boxes``) they trained on, and the groups are formed from the pictures as training forms
them. Pictures are matched by path, made absolute from the current folder (links resolved): run it from the
folder training ran in (the project root, for the shipped versions), with the folders spelt either way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from inference.manifest import read_manifest
from ml_training.data import is_close_up_source
from ml_training.metrics import PairedTest, paired_test
from ml_training.scene.crossval import SCENE_SOURCES


@dataclass(frozen=True)
class GroupComparison:
    """One slice of pictures: how often each version is right, and the paired test on its picture groups.

    ``pictures`` counts pictures (for reading); ``grouped`` is the verdict: each picture group where the two differ
    counts once, for the version right on more of its pictures.
    """

    group: str
    baseline_right: int
    candidate_right: int
    pictures: PairedTest
    grouped: PairedTest

    def to_dict(self) -> dict[str, str | int | float]:
        """``compare --json``'s object for this slice: the counts, both totals and both one-sided p values."""
        return {
            "group": self.group,
            "pictures": self.pictures.pictures,
            "baseline_right": self.baseline_right,
            "candidate_right": self.candidate_right,
            "only_baseline_right": self.pictures.only_baseline_right,
            "only_candidate_right": self.pictures.only_candidate_right,
            "picture_groups": self.grouped.pictures,
            "groups_baseline_better": self.grouped.only_baseline_right,
            "groups_candidate_better": self.grouped.only_candidate_right,
            "p_candidate_worse": self.grouped.p_candidate_worse,
            "p_candidate_better": self.grouped.p_candidate_better,
        }

    def line(self) -> str:
        counts, grouped = self.pictures, self.grouped
        return (
            f"{self.group:<34} {counts.pictures:5d}  right {self.baseline_right:5d} -> {self.candidate_right:5d}  "
            f"only baseline {counts.only_baseline_right:4d}  only candidate {counts.only_candidate_right:4d}  "
            f"groups {grouped.only_baseline_right:3d} against {grouped.only_candidate_right:3d}  "
            f"p(worse) {grouped.p_candidate_worse:.3f}  p(better) {grouped.p_candidate_better:.3f}"
        )


@dataclass(frozen=True)
class Verdict:
    """One picture's out-of-fold verdict by one version, and what it is."""

    right: bool
    source: str
    label: str
    scene: bool
    picture_group: str | None  # None: written before predictions.json held groups


def verdicts_right(model_dir: Path) -> dict[str, Verdict]:
    """Per picture path: whether the version was right at its threshold, and the picture's source, label, slice and
    group.

    A picture is a scene when training said so (boxed, or from a scene source); predictions written before the
    ``scene`` field existed are sorted by source alone, which is the same for the shared folders."""
    manifest = read_manifest(model_dir)
    predictions_file = model_dir / "predictions.json"
    if not predictions_file.is_file():
        raise ValueError(f"{model_dir.name} has no predictions.json: only a cross-validated version can be compared.")
    right = {}
    for row in json.loads(predictions_file.read_text()):
        said_phone = row["probability"] >= manifest.threshold
        right[absolute_picture_path(row["path"])] = Verdict(
            right=said_phone == (row["label"] == "phone"),
            source=row["source"],
            label=row["label"],
            scene=bool(row.get("scene", row["source"] in SCENE_SOURCES)),
            picture_group=str(row["group"]) if "group" in row else None,
        )
    return right


def picture_groups_from_data(data_dirs: Sequence[Path], box_tables: Sequence[Path] = ()) -> dict[str, str]:
    """Each picture's group formed as training forms it (declared groups joined with near-duplicates), for
    predictions written before they held groups. Hashes one picture at a time (2,595 pictures: about a minute)."""
    from inference.images import open_image
    from ml_training.phash import dhash
    from ml_training.scene.train import load_samples
    from ml_training.splits import group_ids_of_hashes

    samples = load_samples(data_dirs, box_tables)
    hashes = []
    for sample in samples:
        with open_image(sample.path) as image:
            hashes.append(dhash(image))
    groups = group_ids_of_hashes([sample.as_sample() for sample in samples], hashes)
    return {absolute_picture_path(sample.path): str(group) for sample, group in zip(samples, groups, strict=True)}


def absolute_picture_path(path: str) -> str:
    """One spelling of a picture's path: ``predictions.json`` keeps the path as the folder was given to ``train``
    (``../shared/...``), the ``--data-dir`` here may be given absolute, or through a symbolic link."""
    return os.path.realpath(path)


def slices_of(verdict: Verdict) -> Iterable[str]:
    yield "all"
    if verdict.scene:
        yield "scenes"
    elif is_close_up_source(verdict.source):
        yield "close-ups and look-alikes"
    yield f"{verdict.source}: {verdict.label}"


def grouped_test(rows: Sequence[tuple[str, bool, bool]]) -> PairedTest:
    """The paired test on picture groups: (group, baseline right, candidate right) per picture; a group counts for
    the version right on more of its pictures, and not at all where they tie."""
    net: dict[str, int] = {}
    for picture_group, baseline_right, candidate_right in rows:
        net[picture_group] = net.get(picture_group, 0) + int(candidate_right) - int(baseline_right)
    return PairedTest(
        pictures=len(net),
        only_baseline_right=sum(value < 0 for value in net.values()),
        only_candidate_right=sum(value > 0 for value in net.values()),
    )


def compare(
    baseline_dir: Path, candidate_dir: Path, *, picture_groups: Mapping[str, str] | None = None
) -> list[GroupComparison]:
    """One comparison per slice on the pictures both versions scored ("all" first); refuses versions with no
    picture in common, and pictures whose group is known neither from ``picture_groups`` nor from a
    ``predictions.json``."""
    baseline, candidate = verdicts_right(baseline_dir), verdicts_right(candidate_dir)
    common = sorted(baseline.keys() & candidate.keys())
    if not common:
        raise ValueError(f"{baseline_dir.name} and {candidate_dir.name} scored no picture in common.")
    rows: dict[str, list[tuple[str, bool, bool]]] = {}
    for path in common:
        # Each source numbers its groups its own way: the id carries where it came from, so a "5" formed from the
        # pictures and a "5" of a predictions.json never merge two unrelated groups.
        sources = (
            ("pictures", (picture_groups or {}).get(path)),
            ("baseline", baseline[path].picture_group),
            ("candidate", candidate[path].picture_group),
        )
        known = next((f"{source}:{group}" for source, group in sources if group is not None), None)
        if known is None:
            raise ValueError(
                f"{path}: its picture group is unknown ({baseline_dir.name}'s and {candidate_dir.name}'s "
                "predictions.json predate groups): pass the --data-dir (and --boxes) they trained on, from the folder "
                "they trained in."
            )
        for name in slices_of(baseline[path]):
            rows.setdefault(name, []).append((known, baseline[path].right, candidate[path].right))
    comparisons = []
    for name, slice_rows in sorted(rows.items(), key=lambda item: (item[0] != "all", item[0])):
        baseline_right, candidate_right = [b for _, b, _ in slice_rows], [c for _, _, c in slice_rows]
        comparisons.append(
            GroupComparison(
                group=name,
                baseline_right=sum(baseline_right),
                candidate_right=sum(candidate_right),
                pictures=paired_test(baseline=baseline_right, candidate=candidate_right),
                grouped=grouped_test(slice_rows),
            )
        )
    return comparisons
