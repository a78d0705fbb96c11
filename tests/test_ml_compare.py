"""``python -m ml_training compare``: the paired test that decided which scene model ships, per slice and source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_training.__main__ import main as ml_training_main
from ml_training.compare import compare
from ml_training.metrics import SIGNIFICANCE, PairedTest, disagreements, mcnemar_one_sided, paired_test

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_version(root: Path, name: str, *, threshold: float, probabilities: dict[str, float] | None) -> Path:
    """A model directory with the shipped v1's manifest at ``threshold`` and these out-of-fold probabilities."""
    model_dir = root / name
    model_dir.mkdir()
    manifest = json.loads((REPO_ROOT / "trained_models" / "scene-lite0-v1" / "manifest.json").read_text())
    manifest.update(version=name, threshold=threshold)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    if probabilities is not None:
        rows = [
            {"path": path, "label": path.split("/")[0], "source": path.split("/")[1], "fold": 0, "probability": p}
            for path, p in probabilities.items()
        ]
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
    assert counts["all"].paired == PairedTest(pictures=4, only_baseline_right=0, only_candidate_right=2)
    assert (counts["scenes"].paired.pictures, counts["scenes"].paired.only_candidate_right) == (3, 1)
    assert counts["close-ups and look-alikes"].paired.only_candidate_right == 1
    assert counts["office-cctv: not_phone"].paired.only_candidate_right == 0
    assert counts["all"].paired.p_candidate_better == pytest.approx(0.25)
    assert counts["all"].paired.p_candidate_worse == 1.0


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

    assert counts["scenes"].paired.pictures == 1
    assert counts["close-ups and look-alikes"].paired.pictures == 1


def test_disagreements_are_counted_pairwise_and_need_the_same_pictures() -> None:
    assert disagreements([True, True, False, False], [True, False, True, True]) == (1, 2)
    with pytest.raises(ValueError, match="same pictures"):
        disagreements([True], [True, False])
