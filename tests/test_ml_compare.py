"""``python -m ml_training compare``: the paired test that decided which scene model ships, per slice and source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml_training.__main__ import main as ml_training_main
from ml_training.compare import compare
from ml_training.metrics import SIGNIFICANCE, PairedTest, disagreements, mcnemar_one_sided, paired_test

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_version(
    root: Path,
    name: str,
    *,
    threshold: float,
    probabilities: dict[str, float] | None,
    groups: dict[str, str | None] | None = None,
) -> Path:
    """A model directory with the shipped v1's manifest at ``threshold`` and these out-of-fold probabilities; each
    picture its own group unless ``groups`` says otherwise (None values: written before groups were saved)."""
    model_dir = root / name
    model_dir.mkdir()
    manifest = json.loads((REPO_ROOT / "trained_models" / "scene-lite0-v1" / "manifest.json").read_text())
    manifest.update(version=name, threshold=threshold)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    if probabilities is not None:
        rows: list[dict] = [
            {"path": path, "label": path.split("/")[0], "source": path.split("/")[1], "fold": 0, "probability": p}
            for path, p in probabilities.items()
        ]
        for row in rows:
            group = (groups or {}).get(row["path"], row["path"])
            if group is not None:
                row["group"] = group
        (model_dir / "predictions.json").write_text(json.dumps(rows))
    return model_dir


def test_each_version_is_judged_at_its_own_threshold_and_counted_per_slice_and_source(tmp_path: Path) -> None:
    pictures = ["phone/office-cctv/a", "phone/office-cctv/b", "not_phone/office-cctv/c", "phone/sam-dev007/d"]
    probabilities = dict(zip(pictures, [0.6, 0.4, 0.3, 0.4], strict=True))
    baseline = write_version(tmp_path, "old", threshold=0.5, probabilities=probabilities)
    # At 0.35 the candidate finds b and d, and still calls c (0.3) phone-free.
    candidate = write_version(tmp_path, "new", threshold=0.35, probabilities=probabilities)

    counts = {c.group: c for c in compare(baseline, candidate)}

    assert (counts["all"].baseline_right, counts["all"].candidate_right) == (2, 4)
    assert counts["all"].pictures == PairedTest(pictures=4, only_baseline_right=0, only_candidate_right=2)
    assert (counts["scenes"].pictures.pictures, counts["scenes"].pictures.only_candidate_right) == (3, 1)
    assert counts["close-ups and look-alikes"].pictures.only_candidate_right == 1
    assert counts["office-cctv: not_phone"].pictures.only_candidate_right == 0
    # Every picture its own group: the grouped test is the picture test.
    assert counts["all"].grouped == counts["all"].pictures
    assert counts["all"].grouped.p_candidate_better == pytest.approx(0.25)
    assert counts["all"].grouped.p_candidate_worse == 1.0


def test_copies_of_one_frame_count_once_so_they_cannot_make_a_difference_significant(tmp_path: Path) -> None:
    """Six augmented copies of one frame, all found only by the candidate, are one piece of evidence: counted per
    picture they gave p = 1/64 (a 'significant' gain); per group, p = 1/2."""
    copies = [f"phone/office-cctv/frame-copy-{n}" for n in range(6)]
    old = write_version(
        tmp_path, "old", threshold=0.5, probabilities=dict.fromkeys(copies, 0.4), groups=dict.fromkeys(copies, "7")
    )
    new = write_version(
        tmp_path, "new", threshold=0.3, probabilities=dict.fromkeys(copies, 0.4), groups=dict.fromkeys(copies, "7")
    )

    [everything, *_] = compare(old, new)

    assert everything.pictures.p_candidate_better == pytest.approx(1 / 64)
    assert everything.grouped == PairedTest(pictures=1, only_baseline_right=0, only_candidate_right=1)
    assert everything.grouped.p_candidate_better == pytest.approx(0.5)


def test_a_group_counts_for_the_version_right_on_more_of_its_pictures_and_not_at_all_on_a_tie() -> None:
    from ml_training.compare import grouped_test

    rows = [("a", True, False), ("a", True, False), ("a", False, True), ("b", True, False), ("b", False, True)]
    assert grouped_test(rows) == PairedTest(pictures=2, only_baseline_right=1, only_candidate_right=0)


def test_versions_without_groups_need_the_pictures_they_trained_on(tmp_path: Path) -> None:
    from ml_training.compare import picture_groups_from_data
    from tests.synthetic import write_synthetic_folder

    data = write_synthetic_folder(tmp_path / "data", per_label=3)
    paths = sorted(str(path) for path in data.rglob("*.png"))
    probabilities = {path: 0.9 for path in paths}
    ungrouped: dict[str, str | None] = dict.fromkeys(paths)
    old = write_version(tmp_path, "old", threshold=0.5, probabilities=probabilities, groups=ungrouped)
    new = write_version(tmp_path, "new", threshold=0.5, probabilities=probabilities, groups=ungrouped)
    with pytest.raises(ValueError, match="pass the --data-dir"):
        compare(old, new)

    groups = picture_groups_from_data([data])
    assert set(groups) == set(paths)
    assert compare(old, new, picture_groups=groups)[0].grouped.pictures == len(set(groups.values()))


def test_pictures_named_relative_in_predictions_meet_a_data_dir_given_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped versions' predictions.json name pictures as ``../shared/...``; a ``--data-dir`` given as an
    absolute path found none of them and the command said to pass the --data-dir it had been passed."""
    from ml_training.compare import picture_groups_from_data
    from tests.synthetic import write_synthetic_folder

    data = write_synthetic_folder(tmp_path / "data", per_label=3)
    monkeypatch.chdir(tmp_path)
    relative = sorted(str(path.relative_to(tmp_path)) for path in data.rglob("*.png"))
    ungrouped: dict[str, str | None] = dict.fromkeys(relative)
    probabilities = dict.fromkeys(relative, 0.9)
    old = write_version(tmp_path, "old", threshold=0.5, probabilities=probabilities, groups=ungrouped)
    new = write_version(tmp_path, "new", threshold=0.5, probabilities=probabilities, groups=ungrouped)

    groups = picture_groups_from_data([data.resolve()])

    assert compare(old, new, picture_groups=groups)[0].pictures.pictures == len(relative)


def test_the_one_sided_test_is_the_binomial_tail() -> None:
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(3, 0) == pytest.approx(0.125)
    assert mcnemar_one_sided(138, 92) == pytest.approx(0.0015, abs=5e-4)  # session 8's trunk-tuning run


def test_the_paired_test_counts_only_disagreements_and_tests_both_directions() -> None:
    """The one paired test the promotion rule and ``compare`` share: known disagreements give known p both ways."""
    # Pictures 0-2 only the baseline gets right, 3 only the candidate, 4-9 both, 10-11 neither.
    baseline = [True] * 3 + [False] + [True] * 6 + [False] * 2
    candidate = [False] * 3 + [True] + [True] * 6 + [False] * 2

    test = paired_test(baseline=baseline, candidate=candidate)

    assert test == PairedTest(pictures=12, only_baseline_right=3, only_candidate_right=1)
    assert test.p_candidate_worse == pytest.approx(5 / 16)  # P(at least 3 of 4 fair coin flips)
    assert test.p_candidate_better == pytest.approx(15 / 16)  # P(at least 1 of 4)
    assert not test.candidate_worse
    # Swapping the two models swaps the directions.
    swapped = paired_test(baseline=candidate, candidate=baseline)
    assert (swapped.p_candidate_worse, swapped.p_candidate_better) == (test.p_candidate_better, test.p_candidate_worse)
    # 5 of 5 against the candidate: p = 1/32 < SIGNIFICANCE.
    worse = PairedTest(pictures=5, only_baseline_right=5, only_candidate_right=0)
    assert worse.p_candidate_worse == pytest.approx(1 / 32) and worse.p_candidate_worse < SIGNIFICANCE
    assert worse.candidate_worse


def test_the_paired_test_reports_under_the_keys_stored_retrain_reports_use() -> None:
    """Retrain reports and model versions' metrics already hold these keys (docs/retraining.md); renaming the
    fields must not rename them."""
    assert PairedTest(pictures=5, only_baseline_right=5, only_candidate_right=0).to_dict() == {
        "pictures": 5,
        "candidate_only_right": 0,
        "active_only_right": 5,
        "p_candidate_worse": pytest.approx(1 / 32),
        "candidate_worse": True,
    }


def test_a_version_without_out_of_fold_predictions_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write_version(tmp_path, "old", threshold=0.5, probabilities={"phone/x/a": 0.9})
    candidate = write_version(tmp_path, "new", threshold=0.5, probabilities=None)
    with pytest.raises(SystemExit) as exited:
        ml_training_main(["compare", str(baseline), str(candidate)])
    assert exited.value.code == 2
    assert "new has no predictions.json" in capsys.readouterr().err


def test_the_command_prints_one_line_per_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = write_version(tmp_path, "old", threshold=0.5, probabilities={"phone/x/a": 0.9, "not_phone/x/b": 0.7})
    candidate = write_version(tmp_path, "new", threshold=0.8, probabilities={"phone/x/a": 0.9, "not_phone/x/b": 0.7})
    assert ml_training_main(["compare", str(baseline), str(candidate), "--json"]) == 0
    groups = {row["group"]: row for row in json.loads(capsys.readouterr().out)}
    assert groups["all"]["only_candidate_right"] == 1
    assert set(groups["all"]) == {
        "group",
        "pictures",
        "baseline_right",
        "candidate_right",
        "only_baseline_right",
        "only_candidate_right",
        "picture_groups",
        "groups_baseline_better",
        "groups_candidate_better",
        "p_candidate_worse",
        "p_candidate_better",
    }
    assert set(groups) == {"all", "close-ups and look-alikes", "x: phone", "x: not_phone"}


def test_a_picture_training_called_a_scene_counts_as_one_whatever_its_source(tmp_path: Path) -> None:
    """Boxed pictures from any folder train as scenes (``crossval.is_scene``); compare must slice them the same."""
    probabilities = {"phone/my-boxed-set/a": 0.9, "phone/sam-dev007/b": 0.9}
    baseline = write_version(tmp_path, "old", threshold=0.5, probabilities=probabilities)
    candidate = write_version(tmp_path, "new", threshold=0.5, probabilities=probabilities)
    for model_dir in (baseline, candidate):
        rows = json.loads((model_dir / "predictions.json").read_text())
        for row in rows:
            row["scene"] = row["source"] == "my-boxed-set"
        (model_dir / "predictions.json").write_text(json.dumps(rows))

    counts = {c.group: c for c in compare(baseline, candidate)}

    assert counts["scenes"].pictures.pictures == 1
    assert counts["close-ups and look-alikes"].pictures.pictures == 1


def test_an_owners_reviewed_upload_without_boxes_is_no_close_up(tmp_path: Path) -> None:
    """A reviewer labels an upload phone or not, not scene or close-up: a retrain's CCTV frames uploaded and reviewed
    once counted as "close-ups". They count in "all" and under their own source only, here and in the figures."""
    from ml_training.scene.figures import figures_by_column

    probabilities = {"phone/reviewed-upload/a": 0.9, "phone/sam-dev007/b": 0.9}
    baseline = write_version(tmp_path, "old", threshold=0.5, probabilities=probabilities)
    candidate = write_version(tmp_path, "new", threshold=0.5, probabilities=probabilities)

    counts = {c.group: c for c in compare(baseline, candidate)}

    assert counts["all"].pictures.pictures == 2
    assert counts["close-ups and look-alikes"].pictures.pictures == 1
    assert counts["reviewed-upload: phone"].pictures.pictures == 1
    figures = figures_by_column(
        targets=[1, 0, 1],
        scenes=[False, False, False],
        sources=["reviewed-upload", "reviewed-upload", "sam-dev007"],
        probabilities=np.array([0.9, 0.2, 0.9]),
        threshold=0.5,
    )
    assert figures["all"]["count"] == 3
    assert figures["close-ups"]["count"] == 1
    assert figures["source:reviewed-upload"]["count"] == 2


def test_disagreements_are_counted_pairwise_and_need_the_same_pictures() -> None:
    assert disagreements([True, True, False, False], [True, False, True, True]) == (1, 2)
    with pytest.raises(ValueError, match="same pictures"):
        disagreements([True], [True, False])
