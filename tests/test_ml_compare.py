"""``python -m ml_training compare``: the paired test that decided which scene model ships, per slice and source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_training.__main__ import main as ml_training_main
from ml_training.compare import compare
from ml_training.metrics import disagreements, mcnemar_one_sided

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
    assert (counts["all"].only_baseline_right, counts["all"].only_candidate_right) == (0, 2)
    assert (counts["scenes"].pictures, counts["scenes"].only_candidate_right) == (3, 1)
    assert counts["close-ups and look-alikes"].only_candidate_right == 1
    assert counts["office-cctv: not_phone"].only_candidate_right == 0
    assert counts["all"].p_candidate_better == pytest.approx(0.25)
    assert counts["all"].p_candidate_worse == 1.0


def test_the_one_sided_test_is_the_binomial_tail() -> None:
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(3, 0) == pytest.approx(0.125)
    assert mcnemar_one_sided(138, 92) == pytest.approx(0.0015, abs=5e-4)  # session 8's trunk-tuning run


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

    assert counts["scenes"].pictures == 1
    assert counts["close-ups and look-alikes"].pictures == 1


def test_disagreements_are_counted_pairwise_and_need_the_same_pictures() -> None:
    assert disagreements([True, True, False, False], [True, False, True, True]) == (1, 2)
    with pytest.raises(ValueError, match="same pictures"):
        disagreements([True], [True, False])
