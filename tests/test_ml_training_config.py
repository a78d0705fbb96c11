"""The scene trainer's recipe and command line: bad values refused at once, every knob explained, one sigmoid.

No training here (seconds): the recipe is checked when it is built, ``--help`` is generated from its fields, and
training's calibration is the very function serving applies.
"""

from __future__ import annotations

import dataclasses
import runpy
import sys

import numpy as np
import pytest

from inference.manifest import ModelManifest
from inference.prediction import calibrated_probabilities
from ml_training.__main__ import main as ml_training_main
from ml_training.scene.config import (
    SceneRecipe,
    TrainSettings,
    ViewConfig,
    describe,
    flat_names,
    recipe_from_flat,
)
from ml_training.scene.decision import calibrate


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ViewConfig(image_size=100), "image_size must be a multiple of 16"),
        (lambda: ViewConfig(image_size=32), r"image_size must be a multiple of 16 .* and at least 64"),
        (lambda: ViewConfig(pasted_views=-1), "pasted_views must be at least 0"),
        (lambda: ViewConfig(imagenet_paste_fraction=1.5), "imagenet_paste_fraction must be between 0 and 1"),
        (lambda: TrainSettings(learning_rate=0.0), "learning_rate must be between 0 and 1"),
        (lambda: TrainSettings(epochs=2.5), "epochs must be a whole number"),  # type: ignore[arg-type]  # on purpose
        (lambda: TrainSettings(batch_size=True), "batch_size must be a whole number"),
        (lambda: TrainSettings(picture_pooling="mean"), "picture_pooling must be one of max, lse"),
        (lambda: TrainSettings(picture_pooling=1), "picture_pooling must be str"),  # type: ignore[arg-type]  # on purpose
        (lambda: SceneRecipe(folds=1), "folds must be at least 2"),
        (lambda: SceneRecipe(max_false_positive_rate=0.0), "max_false_positive_rate must be between 0 and 1"),
        (lambda: SceneRecipe(views={"image_size": 224}), "views must be a ViewConfig"),  # type: ignore[arg-type]  # on purpose
    ],
)
def test_a_bad_recipe_value_is_refused_when_built_naming_the_knob(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_whole_number_for_a_fractional_knob_is_accepted_as_a_float() -> None:
    assert TrainSettings(learning_rate=1, weight_decay=0).learning_rate == 1.0
    assert isinstance(TrainSettings(weight_decay=0).weight_decay, float)


def test_flat_settings_change_the_right_group_and_unknown_names_are_refused() -> None:
    recipe = recipe_from_flat({"image_size": 224, "epochs": 3, "folds": 5, "seed": 7})
    assert recipe.views.image_size == 224 and recipe.settings.epochs == 3 and recipe.folds == 5
    assert recipe.views.seed == 7 and recipe.settings.seed == 7  # one seed for views and training draws
    assert recipe.views.pasted_views == ViewConfig().pasted_views  # the rest stays as it was
    with pytest.raises(ValueError, match=r"Unknown training setting.*imagesize"):
        recipe_from_flat({"imagesize": 224})
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        recipe_from_flat({"epochs": 0})


def test_help_explains_every_knob_with_its_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough that argparse never wraps a help text (textwrap also breaks lines after hyphens: "quarter-turns").
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit) as exited:
        ml_training_main(["train", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for cls in (ViewConfig, TrainSettings, SceneRecipe):
        for item in dataclasses.fields(cls):
            if "help" not in item.metadata:
                continue
            assert "--" + item.name.replace("_", "-") in text
            assert " ".join(item.metadata["help"].split()) in text, item.name
    assert "(default: 448)" in text and "(default: 0.03)" in text


def test_the_printed_configuration_names_every_knob_and_its_value() -> None:
    lines = describe(recipe_from_flat({"epochs": 3}))
    assert len(lines) == len(flat_names()) + 1  # seed is listed in both groups it sets
    assert any(line.startswith("settings.epochs") and "= 3 " in line and "# passes" in line for line in lines)
    assert any(line.startswith("views.image_size") for line in lines)
    assert any(line.startswith("max_false_positive_rate") for line in lines)


def test_training_calibrates_with_the_sigmoid_serving_applies() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 6, 500).astype(np.float32)
    temperature, shift = 1.37, 2.25
    manifest = ModelManifest.from_dict({"version": "x", "kind": "scene-detector", "temperature": temperature})
    # Serving sees the head's logits with the shift folded into its bias (a float32 subtraction in the graph).
    served = np.array(calibrated_probabilities(logits - np.float32(shift), manifest), dtype=np.float32)
    trained = calibrate(logits, temperature, shift)
    assert trained.dtype == np.float32
    assert np.array_equal(trained, served)  # bit for bit: a threshold chosen in training splits served scores alike


def test_the_training_command_sets_the_allocator_variables_before_anything_runs(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr("inference.allocator.ensure_allocator_settings", lambda: calls.append("re-exec"))
    monkeypatch.setattr(sys, "argv", ["python -m ml_training", "--help"])
    monkeypatch.delitem(sys.modules, "ml_training.__main__")  # run it afresh, as ``python -m`` does
    with pytest.raises(SystemExit):
        runpy.run_module("ml_training", run_name="__main__", alter_sys=False)
    assert calls == ["re-exec"]


def test_bad_training_options_are_refused_before_any_picture_is_read(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        ml_training_main(["train", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "has no manifest.csv and no phone/ and not_phone/ folders" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folders", [(), ("phone",)], ids=["empty folders", "phones only"])
def test_a_folder_without_both_labels_is_refused_with_what_it_holds(tmp_path, capsys, folders: tuple[str, ...]) -> None:
    """Empty folders ended in 'Expected 0 views, rendered 0' after a traceback; phones alone trained to the end
    with a degenerate calibration."""
    from PIL import Image

    data = tmp_path / "data"
    for label in ("phone", "not_phone"):
        (data / label).mkdir(parents=True)
    for label in folders:
        for index in range(3):
            Image.new("RGB", (64, 48), (index * 40, 90, 30)).save(data / label / f"{index}.png")
    with pytest.raises(SystemExit) as exited:
        ml_training_main(["train", "--data-dir", str(data), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "needs both phone and not-phone pictures" in error
    assert f"found {len(folders) * 3} phone, 0 not-phone" in error
    assert not (tmp_path / "out").exists()


def test_with_nothing_phone_free_to_keep_out_the_threshold_finds_every_phone() -> None:
    from ml_training.scene.decision import choose_threshold

    scores = np.array([0.15, 0.3, 0.9])
    threshold = choose_threshold(scores, np.ones(3), ["s"] * 3, ["scenes"] * 3, max_false_positive_rate=0.03)
    assert (scores >= threshold).all()
