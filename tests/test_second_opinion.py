"""A scene model may ask a whole-picture model for a second opinion where it says "not a phone"
(inference/second_opinion.py): the member is asked only there, decides only when sure, leaves the scene model's
boxes in place, is pinned by its manifest's checksum, and ``python -m ml_training second-opinion`` measures the
pair out of fold without flattering it.

A tiny scene model is trained on drawn scenes (tests/test_scene_model.py's recipe, one head, few epochs); the
members are the zero-shot model (a real one, for loading) or a stub with set answers (for the rule).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.drawing import draw_scene_phone
from inference.loader import load
from inference.manifest import (
    ModelLoadError,
    ModelManifest,
    manifest_checksum,
    read_manifest,
    sha256_file,
    write_manifest,
)
from inference.prediction import PHONE
from inference.second_opinion import SecondOpinionSpec, revised_probabilities
from ml_training import second_opinion as composing
from tests.test_scene_model import train_drawn_model

REPO_ROOT = Path(__file__).resolve().parent.parent
ZERO_SHOT = REPO_ROOT / "trained_models" / "imagenet-zero-shot"
# models_root trains a scene model once per test process: the tests stay in one (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("second_opinion")


class StubMember:
    """A member with set answers, recording which pictures it was asked about."""

    def __init__(self, answer: float) -> None:
        self.answer = answer
        self.asked: list[Image.Image] = []

    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]:
        self.asked.extend(images)
        return [self.answer] * len(images)


def drawn_pictures(count: int, seed: int = 3) -> list[Image.Image]:
    import random

    rng = random.Random(seed)
    return [draw_scene_phone(rng, size=224, phone=index % 2 == 0)[0] for index in range(count)]


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding a tiny scene model and the zero-shot model, side by side."""
    root = tmp_path_factory.mktemp("second-opinion")
    scene = train_drawn_model(root, "scene-base", "--heads", "1", epochs=5)
    shutil.copytree(ZERO_SHOT, scene.parent / ZERO_SHOT.name)
    return scene.parent


def with_second_opinion(
    models_root: Path, name: str, spec: SecondOpinionSpec, *, threshold: float | None = None
) -> Path:
    """A copy of the tiny scene model whose manifest asks ``spec``'s member."""
    target = models_root / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(models_root / "scene-base", target)
    base = read_manifest(target)
    data = {**base.to_dict(), "version": name, "second_opinion": spec.to_dict()}
    if threshold is not None:
        data["threshold"] = threshold
    write_manifest(target, ModelManifest.from_dict(data))
    return target


def zero_shot_spec(models_root: Path, **rule: float) -> SecondOpinionSpec:
    member = models_root / ZERO_SHOT.name
    return SecondOpinionSpec(model=member.name, manifest_sha256=manifest_checksum(member), **rule)


def test_the_member_is_asked_only_where_the_scene_model_says_not_a_phone_and_decides_only_when_sure() -> None:
    pictures = drawn_pictures(5)
    spec = SecondOpinionSpec(model="m", manifest_sha256="x", at_least=0.99, consulted_from=0.05)
    scene = [0.01, 0.3, 0.79, 0.8, 0.95]  # below consulted_from, asked, asked, at the threshold, above

    sure = StubMember(0.995)
    assert revised_probabilities(scene, pictures, spec=spec, member=sure, threshold=0.8) == [
        0.01,
        0.995,
        0.995,
        0.8,
        0.95,
    ]
    assert sure.asked == pictures[1:3]
    unsure = StubMember(0.98)
    assert revised_probabilities(scene, pictures, spec=spec, member=unsure, threshold=0.8) == scene
    never = StubMember(1.0)
    assert revised_probabilities([0.0, 0.9], pictures[:2], spec=spec, member=never, threshold=0.8) == [0.0, 0.9]
    assert never.asked == []


def test_a_manifest_reads_its_second_opinion_and_refuses_a_bad_one() -> None:
    plain = {"version": "v", "kind": "scene-detector"}
    assert ModelManifest.from_dict(plain).second_opinion is None
    assert "second_opinion" not in ModelManifest.from_dict(plain).to_dict()
    entry = {"model": "m", "manifest_sha256": "ab", "at_least": 0.995, "consulted_from": 0.02}
    manifest = ModelManifest.from_dict({**plain, "second_opinion": entry})
    assert manifest.second_opinion == SecondOpinionSpec("m", "ab", 0.995, 0.02)
    assert manifest.to_dict()["second_opinion"] == entry
    for bad in ({**entry, "at_least": 1.5}, {**entry, "consulted_from": -0.1}, {"model": "m"}):
        with pytest.raises(ModelLoadError):
            ModelManifest.from_dict({**plain, "second_opinion": bad})


@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_a_sure_member_turns_a_not_phone_verdict_into_a_phone_that_keeps_the_scene_models_best_box(
    models_root: Path, engine: str
) -> None:
    spec = zero_shot_spec(models_root, at_least=0.99, consulted_from=0.0)
    composed = with_second_opinion(models_root, "scene-asks", spec)
    alone = load(models_root / "scene-base", engine=engine)
    classifier = load(composed, engine=engine)
    assert classifier.second_opinion is not None and classifier.second_opinion.version == ZERO_SHOT.name
    classifier.second_opinion = StubMember(0.995)  # type: ignore[assignment]  # set answers for the rule
    pictures = drawn_pictures(8)

    served = classifier.predict(pictures)
    by_scene = alone.predict(pictures)
    threshold = classifier.manifest.threshold
    assert any(verdict.probability < threshold for verdict in by_scene)  # the member has something to say
    for picture, verdict, scene_verdict in zip(pictures, served, by_scene, strict=True):
        if scene_verdict.probability >= threshold:
            assert verdict == dataclasses.replace(scene_verdict, model_version="scene-asks")
            continue
        assert (verdict.label, verdict.probability) == (PHONE, 0.995)
        outputs = alone.outputs([picture])  # type: ignore[attr-defined]
        [scene_boxes] = alone._boxes(outputs)  # type: ignore[attr-defined]
        # Where the scene model looked hardest (up to float noise between a batch of 8 and a batch of 1).
        [box] = verdict.boxes
        assert (box.rounded_corners(), box.score) == (scene_boxes[0].rounded_corners(), scene_boxes[0].score)
    expected = [verdict.probability for verdict in served]  # verdicts round to 6 places
    assert classifier.phone_probabilities(pictures) == pytest.approx(expected, abs=1e-6)
    explained = classifier.predict_and_explain(pictures[1])[0]  # a batch of 1 again: float noise in the last places
    assert explained.label == served[1].label
    assert explained.probability == pytest.approx(served[1].probability, abs=1e-6)
    assert [(box.rounded_corners(), box.score) for box in explained.boxes] == [
        (box.rounded_corners(), box.score) for box in served[1].boxes
    ]


def test_the_real_member_is_loaded_on_the_same_engine_and_its_answer_is_served(models_root: Path) -> None:
    spec = zero_shot_spec(models_root, at_least=1e-6, consulted_from=0.0)  # always sure: its answer is served
    composed = with_second_opinion(models_root, "scene-asks-zero-shot", spec, threshold=0.999999)
    pictures = drawn_pictures(4)
    member = load(models_root / ZERO_SHOT.name, engine="onnxruntime").phone_probabilities(pictures)
    scene_alone = load(models_root / "scene-base", engine="onnxruntime").phone_probabilities(pictures)
    served = load(composed, engine="onnxruntime").phone_probabilities(pictures)
    # Wherever the scene network says "not a phone" (nearly every picture at this threshold) the member answers;
    # a picture the tiny network is certain of keeps its own probability.
    asked = [probability < 0.999999 for probability in scene_alone]
    assert sum(asked) >= 2
    np.testing.assert_allclose(served, np.where(asked, member, scene_alone), atol=1e-6)


def test_a_missing_changed_or_chained_member_is_refused_with_a_reason(models_root: Path) -> None:
    spec = zero_shot_spec(models_root)
    missing = with_second_opinion(models_root, "asks-nobody", SecondOpinionSpec("no-such-model", "ab"))
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load(missing, engine="onnxruntime")
    changed = with_second_opinion(models_root, "asks-changed", SecondOpinionSpec(spec.model, "0" * 64))
    with pytest.raises(ModelLoadError, match="not the version it was measured with"):
        load(changed, engine="onnxruntime")
    asks = with_second_opinion(models_root, "asks-zero-shot", spec)
    chained = with_second_opinion(
        models_root, "asks-one-that-asks", SecondOpinionSpec(asks.name, manifest_checksum(asks))
    )
    with pytest.raises(ModelLoadError, match="must decide alone"):
        load(chained, engine="onnxruntime")


def test_composing_measures_the_pair_out_of_fold_and_refuses_what_would_flatter_it(
    models_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = models_root / "scene-base"
    member = models_root / ZERO_SHOT.name
    rows = json.loads((base / "predictions.json").read_text())
    threshold = read_manifest(base).threshold
    keys = [composing.picture_key(row["path"]) for row in rows]

    # A member that trained on these pictures without out-of-fold scores: refused.
    monkeypatch.setattr(composing, "member_out_of_fold", lambda _: ({}, set(keys)))
    with pytest.raises(ValueError, match="without out-of-fold scores"):
        composing.compose(
            base, member, models_root / "refused", version="refused", spec_at_least=0.99, spec_consulted_from=0
        )
    # One sure of phones in these scenes: their box figures would change, so it is refused too.
    monkeypatch.setattr(composing, "member_out_of_fold", lambda _: ({key: 0.999 for key in keys}, set(keys)))
    assert any(row["probability"] < threshold for row in rows)
    with pytest.raises(ValueError, match="scene pictures into phones"):
        composing.compose(
            base, member, models_root / "refused", version="refused", spec_at_least=0.99, spec_consulted_from=0
        )
    assert not (models_root / "refused").exists()

    # Out-of-fold answers that never reach at_least: the pair's figures are the base's, and the version loads.
    monkeypatch.setattr(composing, "member_out_of_fold", lambda _: ({key: 0.5 for key in keys}, set(keys)))
    figures = composing.compose(
        base, member, models_root / "composed", version="composed", spec_at_least=0.99, spec_consulted_from=0
    )
    written = read_manifest(models_root / "composed")
    assert written.second_opinion == SecondOpinionSpec(member.name, manifest_checksum(member), 0.99, 0.0)
    assert figures == written.metrics["cross_validation"]
    assert figures["scenes"] == read_manifest(base).metrics["cross_validation"]["scenes"]
    asked = [
        row
        for row in json.loads((models_root / "composed" / "predictions.json").read_text())
        if "member_probability" in row
    ]
    assert 0 < len(asked) == sum(row["probability"] < threshold for row in rows)
    assert load(models_root / "composed", engine="onnxruntime").second_opinion is not None


def test_the_command_writes_a_version_whose_figures_count_the_members_phones(
    models_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml_training.__main__ import main as ml_training_main

    base = models_root / "scene-base-as-close-ups"
    shutil.copytree(models_root / "scene-base", base)
    rows = json.loads((base / "predictions.json").read_text())
    for row in rows:
        row["scene"] = False  # as close-ups: the member may turn them into phones (no box figures to change)
    (base / "predictions.json").write_text(json.dumps(rows))
    manifest = read_manifest(base)
    write_manifest(
        base,
        dataclasses.replace(
            manifest, files={**manifest.files, "predictions.json": sha256_file(base / "predictions.json")}
        ),
    )
    threshold = manifest.threshold
    # The member is sure of the phone-free pictures the base is unsure of: they become false positives.
    answers = {composing.picture_key(row["path"]): 0.999 if row["label"] != "phone" else 0.0 for row in rows}
    monkeypatch.setattr(composing, "member_out_of_fold", lambda _: (answers, set(answers)))

    out = models_root / "composed-by-command"
    assert ml_training_main(["second-opinion", str(base), str(models_root / ZERO_SHOT.name), "--out", str(out)]) == 0

    figures = read_manifest(out).metrics["cross_validation"]
    asked_free = sum(row["label"] != "phone" and 0.01 <= row["probability"] < threshold for row in rows)
    assert asked_free > 0
    flagged_before = sum(row["label"] != "phone" and row["probability"] >= threshold for row in rows)
    assert figures["all"]["confusion"][0][1] == flagged_before + asked_free
    assert "all" in capsys.readouterr().out


def test_training_with_a_second_opinion_writes_a_pair_measured_out_of_fold(tmp_path: Path) -> None:
    member = tmp_path / "models" / ZERO_SHOT.name
    shutil.copytree(ZERO_SHOT, member)
    out = train_drawn_model(tmp_path, "pair", "--heads", "1", "--second-opinion", str(member), epochs=3)

    manifest = read_manifest(out)
    assert manifest.second_opinion == SecondOpinionSpec(member.name, manifest_checksum(member))
    rows = json.loads((out / "predictions.json").read_text())
    asked = [row for row in rows if "member_probability" in row]
    assert asked and all(row["probability"] >= 0.01 for row in asked)
    assert load(out, engine="onnxruntime").second_opinion is not None


def test_training_with_a_second_opinion_that_is_not_a_model_is_refused_before_anything_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml_training.__main__ import main as ml_training_main

    data = tmp_path / "data"
    (data / "phone").mkdir(parents=True)
    (data / "not_phone").mkdir()
    arguments = ["train", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--second-opinion", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        ml_training_main(arguments)
    assert exit_info.value.code == 2
    assert "not a model directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
