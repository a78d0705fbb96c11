"""The scene model finds small phones among other things and says where they are, the same on every engine.

A tiny scene model is trained here, through the real training command, on drawn scenes with one small phone at a
known spot (no shared data needed); what it learns from 48 drawn pictures is enough to test the whole path:
targets, training, calibration, the manifest, both engines, the boxes and the command line.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.boxes import Box, decode_boxes, own_evidence
from inference.drawing import draw_scene_phone
from inference.loader import load
from inference.manifest import ModelManifest, read_manifest
from inference.prediction import logistic, verdicts
from inference.scene import SceneClassifier
from inference.scene_network import TRUNK_BLOCKS, TRUNK_PREFIX, ScenePhoneNet
from inference.scene_options import SceneNetworkOptions
from ml_training.__main__ import main as ml_training_main
from ml_training.scene.config import ViewConfig
from ml_training.scene.engine import warm_start_state
from ml_training.scene.targets import IGNORE, cell_targets
from tests.ml_drawing import write_scene_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZE = 224
# Enough for the drawn phones to be found (8 of 8 at 20 epochs, 2026-12-06); fewer keeps the module's setup short.
EPOCHS = 24
# The module's models are trained once per test process: the tests stay in one (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("scene_model")


def train_drawn_model(root: Path, name: str, *extra: str, epochs: int = EPOCHS) -> Path:
    data = write_scene_dataset(root / "drawn-scenes", per_label=24, size=SIZE)
    out = root / "models" / name
    arguments = ["train", "--data-dir", str(data), "--out", str(out), "--folds", "2", "--epochs", str(epochs)]
    arguments += ["--image-size", str(SIZE), "--augmented-views", "1", "--pasted-views", "0", *extra]
    assert ml_training_main(arguments) == 0
    return out


@pytest.fixture(scope="module")
def scene_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped shape on drawn scenes: global context, log-sum-exp pooling and (two, to keep it quick) averaged
    heads."""
    return train_drawn_model(tmp_path_factory.mktemp("scene"), "scene-test", "--heads", "2")


@pytest.fixture(scope="module")
def tuned_scene_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same drawn scenes, with the trunk's last block trained too. Its tests need a moved block, not a good
    model: a high trunk rate and few epochs keep it quick (a tuned step costs several head steps)."""
    root = tmp_path_factory.mktemp("scene-tuned")
    tuned = ["--trainable-blocks", "1", "--trunk-learning-rate-scale", "0.5", "--heads", "1"]
    return train_drawn_model(root, "scene-tuned", *tuned, epochs=3)


@pytest.fixture(scope="module")
def local_scene_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same drawn scenes in scene-lite0-v1's shape: no global-context layer, the best cell as the picture's
    evidence, one head (the defaults are the layer, log-sum-exp pooling and three heads); its tests need the shape,
    not a good model."""
    root = tmp_path_factory.mktemp("scene-local")
    local = ["--global-context", "0", "--picture-pooling", "max", "--heads", "1"]
    return train_drawn_model(root, "scene-local", *local, epochs=5)


def contains_centre(box: Box, truth: tuple[float, float, float, float]) -> bool:
    centre_x, centre_y = (truth[0] + truth[2]) / 2, (truth[1] + truth[3]) / 2
    return box.x1 <= centre_x <= box.x2 and box.y1 <= centre_y <= box.y2


def test_a_small_drawn_phone_gets_a_box_around_it(scene_model: Path) -> None:
    classifier = load(scene_model, engine="torch")
    rng = random.Random(1234)
    scenes = [draw_scene_phone(rng, size=SIZE) for _ in range(8)]
    predictions = classifier.predict([picture for picture, _ in scenes])
    hits = [
        bool(p.boxes) and box is not None and contains_centre(p.boxes[0], box)
        for p, (_, box) in zip(predictions, scenes, strict=True)
    ]
    assert sum(hits) >= 6, [p.to_dict() for p in predictions]
    assert all(p.label == "phone" for p, hit in zip(predictions, hits, strict=True) if hit)


def test_a_not_phone_verdict_carries_no_boxes(scene_model: Path) -> None:
    classifier = load(scene_model, engine="torch")
    rng = random.Random(77)
    predictions = classifier.predict([draw_scene_phone(rng, size=SIZE, phone=False)[0] for _ in range(8)])
    assert sum(p.label == "not_phone" for p in predictions) >= 6
    assert all(p.boxes == () for p in predictions if p.label == "not_phone")


@pytest.mark.parametrize("model", ["scene_model", "tuned_scene_model", "local_scene_model"])
def test_boxes_survive_the_onnx_export(model: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    model_dir = request.getfixturevalue(model)
    eager = load(model_dir, engine="torch")
    served = load(model_dir, engine="onnxruntime", cache_dir=tmp_path)
    assert served.engine == "onnxruntime"
    rng = random.Random(5)
    pictures = [draw_scene_phone(rng, size=SIZE, phone=index % 2 == 0)[0] for index in range(6)]
    for expected, actual in zip(eager.predict(pictures), served.predict(pictures), strict=True):
        assert actual.label == expected.label
        assert actual.probability == pytest.approx(expected.probability, abs=1e-4)
        assert len(actual.boxes) == len(expected.boxes)
        for a, e in zip(actual.boxes, expected.boxes, strict=True):
            assert [a.x1, a.y1, a.x2, a.y2] == pytest.approx([e.x1, e.y1, e.x2, e.y2], abs=1e-3)


def test_the_command_line_prints_the_boxes(scene_model: Path, tmp_path: Path) -> None:
    picture, _ = draw_scene_phone(random.Random(3), size=SIZE)
    path = tmp_path / "scene.jpg"
    picture.save(path, quality=95)
    finished = subprocess.run(
        [sys.executable, "-m", "inference", "--json", "--engine", "torch", "--model", str(scene_model), str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["model_version"] == "scene-test"
    assert isinstance(result["boxes"], list)
    for found in result["boxes"]:
        assert len(found["box"]) == 4 and 0 <= found["score"] <= 1
    if result["label"] == "phone":
        # The best box scores its own cell, which pooling can only have lifted into the picture's probability.
        assert result["boxes"] and 0 < result["boxes"][0]["score"] <= result["probability"] + 1e-6
    else:
        assert result["boxes"] == []


def test_the_manifest_has_figures_per_source_and_an_unsure_band_around_the_threshold(scene_model: Path) -> None:
    manifest = read_manifest(scene_model)
    assert manifest.kind == "scene-detector"
    figures = manifest.metrics["cross_validation"]
    assert {"all", "scenes", "source:drawn-phone", "source:drawn-not_phone", "boxes"} <= set(figures)
    assert manifest.unsure_band is not None
    low, high = manifest.unsure_band
    assert low <= manifest.threshold <= high
    assert figures["all"]["accuracy"] >= 0.8


def test_a_tuned_model_stores_its_tuned_block_trained_away_from_imagenet(tuned_scene_model: Path) -> None:
    manifest = read_manifest(tuned_scene_model)
    assert manifest.options["trainable_blocks"] == 1
    state = torch.load(tuned_scene_model / "weights.pt", weights_only=True)
    tuned = {name for name in state if name.startswith(TRUNK_PREFIX)}
    assert tuned and all(name.startswith(f"{TRUNK_PREFIX}{TRUNK_BLOCKS - 1}.") for name in tuned)
    network = ScenePhoneNet.from_options(SceneNetworkOptions.from_manifest_options(manifest.options))
    imagenet = network.trained_state_dict()
    weights = [name for name in tuned if name.endswith("conv.weight")]
    assert len(weights) == 3  # expand, depthwise and project convolutions
    for name in weights:
        change = float((state[name] - imagenet[name]).norm() / imagenet[name].norm())
        assert change > 1e-3, (name, change)
    network.load_trained_state_dict(state)  # the round trip: what was saved loads back into the same shape
    assert all(torch.equal(value, state[name]) for name, value in network.trained_state_dict().items())
    served = load(tuned_scene_model, engine="torch")
    assert isinstance(served, SceneClassifier) and served.network.trainable_blocks == 1


def test_a_checkpoint_is_refused_by_a_network_tuning_other_blocks(tuned_scene_model: Path) -> None:
    state = torch.load(tuned_scene_model / "weights.pt", weights_only=True)
    with pytest.raises(ValueError, match=r"tunes trunk blocks \[10\], this network tunes \[\]"):
        ScenePhoneNet(imagenet_weights=False).load_trained_state_dict(state)


def test_a_head_only_warm_start_keeps_the_imagenet_blocks_of_a_tuned_network(local_scene_model: Path) -> None:
    head_only = torch.load(local_scene_model / "weights.pt", weights_only=True)
    network = ScenePhoneNet(trainable_blocks=2)
    imagenet = network.trained_state_dict()
    start = warm_start_state(network, head_only)
    network.load_trained_state_dict(start)
    for name, value in network.trained_state_dict().items():
        expected = imagenet[name] if name.startswith(TRUNK_PREFIX) else head_only[name]
        assert torch.equal(value, expected), name


@pytest.mark.parametrize(("model", "has_layer"), [("scene_model", True), ("local_scene_model", False)])
def test_the_global_context_layer_is_in_the_manifest_and_the_weights(
    model: str, has_layer: bool, request: pytest.FixtureRequest
) -> None:
    model_dir = request.getfixturevalue(model)
    manifest = read_manifest(model_dir)
    assert manifest.options["global_context"] is has_layer
    network = SceneClassifier(manifest, model_dir).network
    assert (network.first_head().global_context is not None) is has_layer
    assert manifest.options["head_width"] == network.first_head().reduce.out_channels


@pytest.mark.parametrize(
    ("model", "pooling", "heads"),
    [("scene_model", "lse", 2), ("local_scene_model", "max", 1), ("tuned_scene_model", "lse", 1)],
)
def test_the_picture_pooling_and_head_count_are_in_the_manifest_the_weights_and_the_served_network(
    model: str, pooling: str, heads: int, request: pytest.FixtureRequest
) -> None:
    model_dir = request.getfixturevalue(model)
    manifest = read_manifest(model_dir)
    assert manifest.options["picture_pooling"] == pooling
    assert manifest.options["heads"] == heads
    state = torch.load(model_dir / "weights.pt", weights_only=True)
    assert any(name.startswith("heads.1.") for name in state) is (heads > 1)
    served = SceneClassifier(manifest, model_dir).network
    assert served.picture_pooling == pooling
    assert len(served.heads) == heads


def test_a_manifest_written_before_pooling_was_an_option_reads_as_the_best_cell() -> None:
    assert SceneNetworkOptions.from_manifest_options({"head_width": 96}).picture_pooling == "max"


@pytest.mark.parametrize("pooling", ["max", "lse"])
def test_pooling_lifts_every_cell_alike_so_the_best_cell_carries_the_pictures_evidence(pooling: str) -> None:
    torch.manual_seed(0)
    network = ScenePhoneNet(imagenet_weights=False, picture_pooling=pooling).eval()
    features = torch.randn(3, 112, 7, 7)
    with torch.no_grad():
        cells, _ = network.first_head()(features)
        picture, evidence, _ = network.from_features(features)
    flat = cells.flatten(1)
    expected = torch.logsumexp(flat, dim=1) if pooling == "lse" else flat.max(dim=1).values
    assert torch.allclose(picture, expected, atol=1e-5)
    assert torch.allclose(evidence.flatten(1).max(dim=1).values, picture, atol=1e-5)
    assert torch.equal(evidence.flatten(1).argmax(dim=1), flat.argmax(dim=1))
    lift = (evidence - cells).flatten(1)
    assert torch.allclose(lift, lift[:, :1].expand_as(lift), atol=1e-5)
    if pooling == "lse":  # log-sum-exp is above the best cell by the weight of all the others
        assert bool((picture > flat.max(dim=1).values).all())
    else:
        assert torch.equal(evidence, cells)


@pytest.mark.parametrize("global_context", [(False, True), (True, False)])
def test_a_warm_start_across_the_global_context_layer_reuses_the_layers_both_have(
    global_context: tuple[bool, bool],
) -> None:
    """A retrain may add the layer to, or drop it from, the active model's head: the shared layers carry over."""
    before, after = global_context
    initial = ScenePhoneNet(imagenet_weights=False, global_context=before).trained_state_dict()
    network = ScenePhoneNet(imagenet_weights=False, global_context=after)
    fresh = network.trained_state_dict()
    state = warm_start_state(network, initial)
    network.load_trained_state_dict(state)
    assert torch.equal(network.first_head().reduce.weight, initial["reduce.weight"])
    if after:
        assert torch.equal(state["global_context.weight"], fresh["global_context.weight"])


def test_the_feature_cache_key_names_the_boundary() -> None:
    from ml_training.scene.data import SceneSample
    from ml_training.scene.views import bank_key

    samples, folds = [SceneSample("a.jpg", "phone", "s")], [0]
    keys = {bank_key(samples, folds, ViewConfig(), boundary) for boundary in (TRUNK_BLOCKS, TRUNK_BLOCKS - 1)}
    assert len(keys) == 2


def test_the_feature_cache_key_changes_with_a_pictures_source_and_its_file(tmp_path: Path) -> None:
    """The source decides which pictures receive pasted phones, and a picture replaced under the same name has
    other pixels: either way the cached views would be another recipe's."""
    import os

    from ml_training.scene.data import SceneSample
    from ml_training.scene.views import bank_key

    picture = tmp_path / "desk.jpg"
    picture.write_bytes(b"first version")
    as_everyday = [SceneSample(str(picture), "not_phone", "imagenet-sample")]
    as_hands = [SceneSample(str(picture), "not_phone", "ambergoswami")]
    before = bank_key(as_everyday, [0], ViewConfig(), TRUNK_BLOCKS)
    assert bank_key(as_hands, [0], ViewConfig(), TRUNK_BLOCKS) != before

    picture.write_bytes(b"another picture, same name")
    os.utime(picture, ns=(1, 1))
    assert bank_key(as_everyday, [0], ViewConfig(), TRUNK_BLOCKS) != before


def test_zoomed_crops_never_cut_an_unboxed_phone_and_keep_a_boxed_one() -> None:
    from PIL import Image

    from ml_training.scene.config import UNBOXED_PHONE_MIN_CROP_AREA
    from ml_training.scene.data import SceneSample
    from ml_training.scene.views import crop_area_floor, random_crop

    zooming = ViewConfig(min_crop_area=0.1)
    boxed = SceneSample("office.jpg", "phone", "office-cctv", boxes=((0.80, 0.80, 0.83, 0.84),))
    empty = SceneSample("empty.jpg", "not_phone", "office-cctv")
    unboxed = SceneSample("hand.jpg", "phone", "ambergoswami")
    assert crop_area_floor(boxed, zooming) == crop_area_floor(empty, zooming) == 0.1
    assert UNBOXED_PHONE_MIN_CROP_AREA == 0.55  # the range every version before the knob was trained with
    assert crop_area_floor(unboxed, zooming) == UNBOXED_PHONE_MIN_CROP_AREA  # a small crop could lose the phone
    assert crop_area_floor(boxed, ViewConfig()) == UNBOXED_PHONE_MIN_CROP_AREA  # the default recipe does not zoom

    image, rng = Image.new("RGB", (400, 400)), random.Random(0)
    areas = []
    for _ in range(200):
        crop, boxes = random_crop(image, boxed.boxes, rng, must_keep_a_box=True, min_area=0.1)
        areas.append(crop.width * crop.height / (400 * 400))
        assert len(boxes) == 1 and all(0.0 <= value <= 1.0 for value in boxes[0])
    assert min(areas) < 0.3  # zoomed in, around the phone in the corner
    assert min(areas) > 0.1 * 0.75 * 0.9  # never below the floor (up to the aspect ratio's clipping and rounding)


def test_spread_pastes_shrink_a_large_phone_to_the_scales_between_and_never_enlarge_a_tiny_one() -> None:
    from PIL import Image

    from ml_training.scene.config import SMALLEST_SPREAD_WIDTH
    from ml_training.scene.views import Donor, pasted_width

    crop = Image.new("RGB", (60, 100))
    webcam_phone = Donor(crop=crop, box_in_crop=(0.15, 0.15, 0.85, 0.85), width=0.30, fold=0)
    cctv_phone = Donor(crop=crop, box_in_crop=(0.15, 0.15, 0.85, 0.85), width=0.03, fold=0)
    rng = random.Random(0)
    by_donor = [pasted_width(webcam_phone, rng, scale="donor") for _ in range(500)]
    spread = [pasted_width(webcam_phone, rng, scale="spread") for _ in range(500)]
    tiny = [pasted_width(cctv_phone, rng, scale="spread") for _ in range(500)]
    assert min(by_donor) >= 0.30 * 0.7 and max(by_donor) <= 0.35  # about the donor's own scale
    assert min(spread) >= SMALLEST_SPREAD_WIDTH and max(spread) <= 0.35
    assert sum(width < 0.10 for width in spread) > 200  # most between CCTV's and the webcam's scale
    assert max(tiny) <= 0.03 * 1.4 + 1e-9  # a tiny phone is never blown up into a blur


@pytest.mark.parametrize("rotation", ["upright", "quarter-turns"])
def test_a_pasted_phone_lies_inside_its_box_however_it_is_turned(rotation: str) -> None:
    from PIL import Image, ImageDraw

    from ml_training.scene.views import Donor, paste

    crop = Image.new("RGB", (60, 100), (90, 90, 90))
    ImageDraw.Draw(crop).rectangle((12, 20, 35, 79), fill=(255, 0, 0))  # a tall phone off the crop's centre
    donor = Donor(crop=crop, box_in_crop=(12 / 60, 20 / 100, 36 / 60, 80 / 100), width=0.3, fold=0)
    scene = Image.new("RGB", (300, 300), (0, 90, 0))
    rng = random.Random(3)
    shapes = set()
    for _ in range(24):
        canvas, (box,) = paste(scene, donor, rng, size=224, scale="donor", rotation=rotation)
        red = np.argwhere((np.asarray(canvas)[..., 0] > 200) & (np.asarray(canvas)[..., 1] < 60))
        (top, left), (bottom, right) = red.min(axis=0) / 224, (red.max(axis=0) + 1) / 224
        assert box == pytest.approx((left, top, right, bottom), abs=2 / 224)
        shapes.add("tall" if box[3] - box[1] > box[2] - box[0] else "wide")
    assert shapes == ({"tall", "wide"} if rotation == "quarter-turns" else {"tall"})


def test_degraded_views_keep_their_size_and_are_sometimes_grey_and_sometimes_dim() -> None:
    from PIL import Image

    from ml_training.scene.views import degraded

    picture = Image.new("RGB", (320, 240), (200, 120, 40))
    rng = random.Random(0)
    views = [np.asarray(degraded(picture, rng, input_size=448), dtype=np.int16) for _ in range(60)]
    assert all(view.shape == (240, 320, 3) for view in views)
    grey = [view for view in views if np.abs(view[..., 0] - view[..., 2]).max() <= 2]
    dim = [view for view in views if view.mean() < 0.7 * np.asarray(picture).mean()]
    assert 5 <= len(grey) <= 30 and 3 <= len(dim) <= 25
    assert any(np.abs(view - np.asarray(picture)).max() <= 2 for view in views)  # some views left as they were


def test_cell_targets_mark_the_phone_centre_positive_its_edges_ignored_and_the_rest_negative() -> None:
    objectness, geometry = cell_targets([(0.40, 0.40, 0.46, 0.52)], 10, is_phone=True)
    assert objectness[4, 4] == 1  # the cell holding the centre (0.43, 0.46)
    assert objectness[0, 0] == 0 and objectness[9, 9] == 0
    assert (objectness == IGNORE).any()
    assert geometry[2, 4, 4] == pytest.approx(np.log(0.06 * 10), abs=1e-5)  # log width in cells
    unboxed, _ = cell_targets([], 10, is_phone=True)
    assert (unboxed == IGNORE).all()  # a phone picture without boxes: no cell is known to be empty
    empty, _ = cell_targets([], 10, is_phone=False)
    assert (empty == 0).all()


def test_the_folder_prefix_a_retrain_adds_does_not_hide_what_a_picture_is() -> None:
    from ml_training.scene.crossval import is_scene
    from ml_training.scene.data import SceneSample
    from ml_training.scene.views import is_paste_recipient

    # manage.py retrain names sources "<folder>:<source>" so its figures say which folder a picture came from.
    office = SceneSample("office.jpg", "not_phone", "phone-scenes:office-cctv")
    assert office.base_source == "office-cctv"
    assert is_scene(office) and is_paste_recipient(office, 0, ViewConfig())  # drawn twice, receives pasted phones
    product = SceneSample("product.jpg", "not_phone", "phone-images:sam-dev007")
    assert not is_scene(product) and not is_paste_recipient(product, 0, ViewConfig())


def test_overlapping_peaks_of_one_phone_give_one_box() -> None:
    cells = np.full((4, 4), -5.0, dtype=np.float32)
    cells[1, 1], cells[1, 3] = 4.0, 3.5
    boxes = np.zeros((4, 4, 4), dtype=np.float32)
    boxes[:, 1, 1] = (0.1, 0.1, 0.9, 0.5)
    boxes[:, 1, 3] = (0.15, 0.1, 0.9, 0.5)  # the same phone seen from a neighbouring peak

    found = decode_boxes(cells, boxes, probability=sigmoid_list, threshold=0.5)
    assert len(found) == 1 and found[0].x1 == pytest.approx(0.1)


def sigmoid_list(z: np.ndarray) -> list[float]:
    """Calibration at temperature 1, as the classifiers apply it."""
    probabilities: list[float] = logistic(z, 1.0).tolist()
    return probabilities


def lse_lifted(own: np.ndarray) -> np.ndarray:
    """What a log-sum-exp-pooled graph outputs for cells whose own log-odds are ``own``: each lifted so the best
    equals the picture's evidence (``ScenePhoneNet.from_features``)."""
    flat = own.astype(np.float64).ravel()
    picture = flat.max() + np.log(np.exp(flat - flat.max()).sum())
    return (own + (picture - flat.max())).astype(np.float32)


def test_own_evidence_undoes_the_pooling_lift_and_leaves_max_pooled_cells_alone() -> None:
    own = np.random.default_rng(0).normal(-3.0, 2.0, size=(7, 7)).astype(np.float32)
    assert own_evidence(lse_lifted(own), "lse") == pytest.approx(own, abs=1e-4)
    assert (own_evidence(own, "max") == own).all()


def test_a_phone_verdict_pooled_from_weak_cells_scores_its_box_by_its_own_cell() -> None:
    """Many cells a little phone-like make a confident picture (pooling adds them up) without one sure place: the
    best box is still given (every phone verdict says where it looked), with its own cell's low probability."""
    own = np.full((8, 8), -6.0, dtype=np.float32)
    own[1:7, 1:7] = -1.0  # thirty-six weak cells (a desk with people at it)
    own[3, 4] = 0.0  # the best of them: probability 0.5
    boxes = np.zeros((4, 8, 8), dtype=np.float32)
    boxes[:, 3, 4] = (0.5, 0.3, 0.6, 0.5)
    cells = lse_lifted(own)
    picture = sigmoid_list(np.array([cells.max()]))[0]
    assert picture > 0.9  # the verdict is a confident phone
    found = decode_boxes(cells, boxes, probability=sigmoid_list, threshold=0.8, pooling="lse")
    assert len(found) == 1  # no other cell is sure enough on its own to be a second phone
    assert [found[0].x1, found[0].y1, found[0].x2, found[0].y2] == pytest.approx([0.5, 0.3, 0.6, 0.5])
    assert found[0].score == pytest.approx(0.5, abs=1e-4)
    # Read as before (the lifted cell), the same box would have claimed the picture's probability.
    assert decode_boxes(cells, boxes, probability=sigmoid_list, threshold=0.8)[0].score > 0.9


def test_further_boxes_need_their_own_probability_over_the_threshold_and_a_non_phone_verdict_has_none() -> None:
    own = np.full((8, 8), -8.0, dtype=np.float32)
    own[1, 1], own[6, 6], own[1, 6] = 5.0, 3.0, 0.5  # two sure phones and a doubtful third place
    boxes = np.zeros((4, 8, 8), dtype=np.float32)
    for row, col in ((1, 1), (6, 6), (1, 6)):
        boxes[:, row, col] = (col / 8, row / 8, (col + 1) / 8, (row + 1) / 8)
    cells = lse_lifted(own)
    found = decode_boxes(cells, boxes, probability=sigmoid_list, threshold=0.8, pooling="lse")
    corners = [coordinate for box in found for coordinate in (box.x1, box.y1)]
    assert corners == pytest.approx([1 / 8, 1 / 8, 6 / 8, 6 / 8])
    assert [box.score for box in found] == pytest.approx(sigmoid_list(np.array([5.0, 3.0])), abs=1e-4)
    manifest = ModelManifest(version="drawn", kind="scene-detector", threshold=0.8)
    [below] = verdicts([0.79], manifest, [found])  # the same boxes, on a picture that is not called phone
    assert below.label == "not_phone" and below.boxes == ()


def test_the_training_configuration_is_saved_with_the_model(scene_model: Path) -> None:
    training = json.loads((scene_model / "training.json").read_text())
    assert training["recipe"]["folds"] == 2
    assert training["recipe"]["views"]["image_size"] == SIZE
    assert training["recipe"]["settings"]["epochs"] == EPOCHS
    assert training["pictures"] == 48 and training["boxed_pictures"] == 24


def test_evaluate_gives_figures_per_source_and_slice_and_the_box_hit_rate(
    scene_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_scene_dataset(tmp_path / "held-out", per_label=6, seed=99, size=SIZE)
    arguments = ["evaluate", "--model", str(scene_model), "--data-dir", str(data), "--engine", "torch", "--json"]
    assert ml_training_main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    figures = result["figures"]
    assert result["model"] == "scene-test" and result["pictures"] == 12
    assert {"all", "scenes", "close-ups", "source:drawn-phone", "source:drawn-not_phone"} <= set(figures)
    assert figures["source:drawn-phone"]["count"] == 6
    boxes = figures["boxes"]
    assert boxes["boxed_pictures"] == 6
    assert boxes["phone_verdicts_on_boxed_pictures"] >= 4
    assert boxes["best_box_hit_rate"] >= 0.75


def test_evaluate_reads_plain_phone_and_not_phone_folders_and_prints_one_line_per_slice(
    scene_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(4)
    for label in ("phone", "not_phone"):
        (tmp_path / "folders" / label).mkdir(parents=True)
        for index in range(3):
            picture, _ = draw_scene_phone(rng, size=SIZE, phone=label == "phone")
            picture.save(tmp_path / "folders" / label / f"{index}.jpg")
    arguments = ["evaluate", "--model", str(scene_model), "--data-dir", str(tmp_path / "folders")]
    assert ml_training_main([*arguments, "--engine", "torch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scene-test on torch (all): 6 pictures")
    assert any(line.strip().startswith("all: n=6 acc=") for line in lines)
    assert any(line.strip().startswith("source:folders: n=6") for line in lines)
    assert not any("boxes:" in line for line in lines)  # no known phone positions, no box figure


def test_asking_a_cross_validated_model_for_its_test_part_is_refused_clearly(
    scene_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_scene_dataset(tmp_path / "data", per_label=1, size=64)
    with pytest.raises(SystemExit) as exited:
        ml_training_main(["evaluate", "--model", str(scene_model), "--data-dir", str(data), "--part", "test"])
    assert exited.value.code == 2
    assert "no train/validation/test split" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--folds", "1"], "folds must be at least 2"),
        (["--image-size", "100"], "image_size must be a multiple of 16"),
        (["--max-false-positive-rate", "2"], "max_false_positive_rate must be between 0 and 1"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--trainable-blocks", "4"], "trainable_blocks must be between 0 and 3"),
        (["--global-context", "2"], "global_context must be between 0 and 1"),
        (["--picture-pooling", "mean"], "picture_pooling must be one of max, lse"),
        (["--boxes", "/nonexistent/boxes.csv"], "no such file"),
    ],
)
def test_bad_training_options_are_refused_before_anything_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    data = write_scene_dataset(tmp_path / "data", per_label=2, size=64)
    with pytest.raises(SystemExit) as exited:
        ml_training_main(["train", "--data-dir", str(data), "--out", str(tmp_path / "out"), *arguments])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_box_hit_rate_counts_a_missed_or_absent_best_box_against_the_model() -> None:
    from ml_training.scene.data import SceneSample
    from ml_training.scene.figures import best_box_hits

    phone = (0.40, 0.40, 0.50, 0.60)  # centre (0.45, 0.50)
    samples = [SceneSample(f"{i}.jpg", "phone", "s", boxes=(phone,)) for i in range(4)]
    samples.append(SceneSample("plain.jpg", "phone", "s"))  # no known position: not counted
    around = Box(0.42, 0.45, 0.48, 0.55, 0.9)
    elsewhere = Box(0.0, 0.0, 0.2, 0.2, 0.8)
    found = [[around, elsewhere], [elsewhere, around], [], [], [around]]
    phone_verdicts = [True, True, True, False, True]  # the third: a phone verdict with no box at all
    figures = best_box_hits(samples, found, phone_verdicts)
    assert figures["best_box_hits"] == 1  # only the best box counts, not a later one
    assert figures["phone_verdicts_on_boxed_pictures"] == 3 and figures["boxed_pictures"] == 4
    assert figures["best_box_hit_rate"] == pytest.approx(1 / 3, abs=1e-4)
    # Scores 0.9 (a hit), 0.8 (a miss), 0.0 (no box, a miss): the best boxes' claims against what they hit.
    assert figures["best_box_score_mean"] == pytest.approx(1.7 / 3, abs=1e-4)
    assert figures["best_box_score_ece"] == pytest.approx((0.1 + 0.8 + 0.0) / 3, abs=1e-4)
