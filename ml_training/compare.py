"""``python -m ml_training compare BASELINE CANDIDATE``: are a candidate's out-of-fold verdicts better or worse?

Both versions must have been cross-validated on the same pictures (``predictions.json``, written by ``train``).
Each picture is judged by each version at its own threshold, and every slice and source gets the paired test the
promotion rule uses (McNemar's exact test on the pictures where exactly one is right): a candidate is worse where
its one-sided p is below 0.05. This is how ``docs/model.md`` decided that one scene model replaces another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from inference.manifest import read_manifest
from ml_training.metrics import disagreements, mcnemar_one_sided
from ml_training.scene.crossval import SCENE_SOURCES


@dataclass(frozen=True)
class PairedCounts:
    """One group of pictures: how often each version is right, and the paired test both ways."""

    group: str
    pictures: int
    baseline_right: int
    candidate_right: int
    only_baseline_right: int
    only_candidate_right: int

    @property
    def p_candidate_worse(self) -> float:
        return mcnemar_one_sided(self.only_baseline_right, self.only_candidate_right)

    @property
    def p_candidate_better(self) -> float:
        return mcnemar_one_sided(self.only_candidate_right, self.only_baseline_right)

    def line(self) -> str:
        return (
            f"{self.group:<34} {self.pictures:5d}  right {self.baseline_right:5d} -> {self.candidate_right:5d}  "
            f"only baseline {self.only_baseline_right:4d}  only candidate {self.only_candidate_right:4d}  "
            f"p(worse) {self.p_candidate_worse:.3f}  p(better) {self.p_candidate_better:.3f}"
        )


@dataclass(frozen=True)
class Verdict:
    """One picture's out-of-fold verdict by one version, and what it is."""

    right: bool
    source: str
    label: str
    scene: bool


def verdicts_right(model_dir: Path) -> dict[str, Verdict]:
    """Per picture path: whether the version was right at its threshold, and the picture's source, label and slice.

    A picture is a scene when training said so (boxed, or from a scene source); predictions written before the
    ``scene`` field existed are sorted by source alone, which is the same for the shared folders."""
    manifest = read_manifest(model_dir)
    predictions_file = model_dir / "predictions.json"
    if not predictions_file.is_file():
        raise ValueError(f"{model_dir.name} has no predictions.json: only a cross-validated version can be compared.")
    right = {}
    for row in json.loads(predictions_file.read_text()):
        said_phone = row["probability"] >= manifest.threshold
        right[row["path"]] = Verdict(
            right=said_phone == (row["label"] == "phone"),
            source=row["source"],
            label=row["label"],
            scene=bool(row.get("scene", row["source"] in SCENE_SOURCES)),
        )
    return right


def groups_of(verdict: Verdict) -> Iterable[str]:
    yield "all"
    yield "scenes" if verdict.scene else "close-ups and look-alikes"
    yield f"{verdict.source}: {verdict.label}"


def compare(baseline_dir: Path, candidate_dir: Path) -> list[PairedCounts]:
    """Paired counts per group on the pictures both versions scored; refuses versions with no picture in common."""
    baseline, candidate = verdicts_right(baseline_dir), verdicts_right(candidate_dir)
    common = sorted(baseline.keys() & candidate.keys())
    if not common:
        raise ValueError(f"{baseline_dir.name} and {candidate_dir.name} scored no picture in common.")
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    for path in common:
        for group in groups_of(baseline[path]):
            pairs.setdefault(group, []).append((baseline[path].right, candidate[path].right))
    counts = []
    for group, pair in sorted(pairs.items(), key=lambda item: (item[0] != "all", item[0])):
        baseline_right, candidate_right = [b for b, _ in pair], [c for _, c in pair]
        only_baseline, only_candidate = disagreements(baseline_right, candidate_right)
        counts.append(
            PairedCounts(
                group=group,
                pictures=len(pair),
                baseline_right=sum(baseline_right),
                candidate_right=sum(candidate_right),
                only_baseline_right=only_baseline,
                only_candidate_right=only_candidate,
            )
        )
    return counts
