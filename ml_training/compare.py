"""``python -m ml_training compare BASELINE CANDIDATE``: are a candidate's out-of-fold verdicts better or worse?

Both versions must have been cross-validated on the same pictures (``predictions.json``, written by ``train``).
Each picture is judged by each version at its own threshold, and every slice and source gets the paired test the
promotion rule uses (McNemar's exact test on the pictures where exactly one is right): a candidate is worse (or
better) where that direction's one-sided p is below the rule's significance level (``metrics.SIGNIFICANCE``). This is
how ``docs/model.md`` decided that one scene model replaces another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from inference.manifest import read_manifest
from ml_training.metrics import PairedTest, paired_test
from ml_training.scene.crossval import SCENE_SOURCES


@dataclass(frozen=True)
class GroupComparison:
    """One group of pictures: how often each version is right, beside the promotion rule's own paired test.

    The right-totals are only for reading (a test on the disagreements alone hides how accurate both are); the
    verdict is the :class:`PairedTest`'s, the same class the promotion rule judges by.
    """

    group: str
    baseline_right: int
    candidate_right: int
    paired: PairedTest

    def to_dict(self) -> dict[str, str | int | float]:
        """``compare --json``'s object for this group: the counts, both totals and both one-sided p values."""
        return {
            "group": self.group,
            "pictures": self.paired.pictures,
            "baseline_right": self.baseline_right,
            "candidate_right": self.candidate_right,
            "only_baseline_right": self.paired.only_baseline_right,
            "only_candidate_right": self.paired.only_candidate_right,
            "p_candidate_worse": self.paired.p_candidate_worse,
            "p_candidate_better": self.paired.p_candidate_better,
        }

    def line(self) -> str:
        paired = self.paired
        return (
            f"{self.group:<34} {paired.pictures:5d}  right {self.baseline_right:5d} -> {self.candidate_right:5d}  "
            f"only baseline {paired.only_baseline_right:4d}  only candidate {paired.only_candidate_right:4d}  "
            f"p(worse) {paired.p_candidate_worse:.3f}  p(better) {paired.p_candidate_better:.3f}"
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


def compare(baseline_dir: Path, candidate_dir: Path) -> list[GroupComparison]:
    """One comparison per group on the pictures both versions scored ("all" first); refuses versions with no picture
    in common."""
    baseline, candidate = verdicts_right(baseline_dir), verdicts_right(candidate_dir)
    common = sorted(baseline.keys() & candidate.keys())
    if not common:
        raise ValueError(f"{baseline_dir.name} and {candidate_dir.name} scored no picture in common.")
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    for path in common:
        for group in groups_of(baseline[path]):
            pairs.setdefault(group, []).append((baseline[path].right, candidate[path].right))
    comparisons = []
    for group, pair in sorted(pairs.items(), key=lambda item: (item[0] != "all", item[0])):
        baseline_right, candidate_right = [b for b, _ in pair], [c for _, c in pair]
        comparisons.append(
            GroupComparison(
                group=group,
                baseline_right=sum(baseline_right),
                candidate_right=sum(candidate_right),
                paired=paired_test(baseline=baseline_right, candidate=candidate_right),
            )
        )
    return comparisons
