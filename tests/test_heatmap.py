""" "Where is the phone": evidence maps find what drove a verdict; the overlay is laid where the model looked."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference import load
from inference.manifest import ModelManifest
from inference.overlay import OVERLAY_MAX_SIDE, heatmap_overlay, heatmap_png, model_input_box
from inference.preprocessing import PreprocessConfig
from inference.torch_engine import TorchClassifier
from inference.torch_evidence import grad_cam, occlusion_evidence
from tests.images import draw_picture

ZERO_SHOT_DIR = Path(__file__).resolve().parent.parent / "trained_models" / "imagenet-zero-shot"


class BrightTopLeftClassifier(TorchClassifier):
    """A stand-in model whose "phone" evidence is the brightness of the top-left quarter of its input."""

    def __init__(self) -> None:
        super().__init__(ModelManifest(version="toy", kind="toy"), Path("."))

    def network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        half = batch.shape[-1] // 2
        return (batch[:, :, :half, :half].mean(dim=(1, 2, 3)) * 10,)


def test_occlusion_finds_the_region_the_model_depends_on() -> None:
    picture = Image.new("RGB", (200, 200), (255, 255, 255))
    evidence = BrightTopLeftClassifier().evidence_map(picture)
    assert evidence.shape == (7, 7)
    row, column = divmod(int(evidence.argmax()), 7)
    assert row <= 2 and column <= 2
    assert evidence[6, 6] == pytest.approx(0.0, abs=1e-5)  # the bottom-right corner never mattered


def test_grad_cam_peaks_where_the_score_reads_the_features() -> None:
    features = torch.rand(1, 4, 5, 5) * 0.1
    features[0, 2, 3, 1] = 5.0

    def score(maps: torch.Tensor) -> torch.Tensor:
        return maps[:, 2].mean(dim=(1, 2))

    cam = grad_cam(features, score)
    assert cam.shape == (1, 5, 5)
    assert divmod(int(cam[0].argmax()), 5) == (3, 1)


def test_zero_shot_classifier_keeps_its_verdicts_and_explains_them_with_grad_cam() -> None:
    classifier = load(ZERO_SHOT_DIR, engine="torch")
    picture = draw_picture(width=320, height=240)
    batch = classifier.preprocess([picture])
    with torch.inference_mode():
        # The split into features + head is exactly the library's own forward pass.
        expected = torch.softmax(classifier.network(batch), dim=1)[:, classifier.phone_classes].sum(dim=1)
        assert torch.sigmoid(classifier.phone_logits(batch)) == pytest.approx(expected.clamp(1e-7, 1 - 1e-7), abs=1e-6)
        # It also works when a caller is in inference mode, as the worker's prediction path is.
        evidence = classifier.evidence_map(picture)
    assert evidence.shape == (7, 7)
    assert np.isfinite(evidence).all()
    png = heatmap_png(classifier, picture)
    overlay = Image.open(io.BytesIO(png))
    assert overlay.mode == "RGBA"
    assert overlay.size == (OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE * 3 // 4)  # the picture's 4:3, small


def test_model_input_box_is_the_centre_crop_the_model_sees() -> None:
    cropped = PreprocessConfig(image_size=224, resize_size=256, center_crop=True)
    assert model_input_box(400, 200, cropped) == (112, 12, 288, 188)
    assert model_input_box(400, 200, PreprocessConfig(center_crop=False)) == (0, 0, 400, 200)


def test_overlay_is_transparent_where_there_is_no_evidence_and_red_where_it_peaks() -> None:
    evidence = torch.zeros(7, 7)
    evidence[1, 5] = 3.0  # top right
    evidence[5, 1] = -4.0  # negative evidence shows as none
    overlay = heatmap_overlay(evidence, image_size=(700, 700), config=PreprocessConfig(center_crop=False))
    pixels = np.asarray(overlay)
    side = OVERLAY_MAX_SIDE
    assert overlay.size == (side, side)  # capped at OVERLAY_MAX_SIDE, aspect kept
    top_right = pixels[round(side * 0.23), round(side * 0.76)]
    assert top_right[3] > 150 and top_right[0] > top_right[2]
    assert pixels[round(side * 0.76), round(side * 0.23), 3] == 0
    assert pixels[2, 2, 3] == 0


def test_overlay_of_a_centre_cropping_model_leaves_the_cut_edges_clear() -> None:
    evidence = torch.ones(7, 7)
    config = PreprocessConfig(image_size=224, resize_size=256, center_crop=True)
    pixels = np.asarray(heatmap_overlay(evidence, image_size=(600, 300), config=config))
    height, width = pixels.shape[:2]
    assert pixels[height // 2, 1, 3] == 0  # left edge, outside the crop
    assert pixels[height // 2, width // 2, 3] > 150


def test_occlusion_patches_grey_out_only_the_region_the_model_sees() -> None:
    """A centre-cropping model: the map is laid over the crop, so the patches must sample the crop too."""
    seen: list[Image.Image] = []

    class Cropping(BrightTopLeftClassifier):
        def __init__(self) -> None:
            config = PreprocessConfig(image_size=224, resize_size=256, center_crop=True)
            TorchClassifier.__init__(self, ModelManifest(version="toy", kind="toy", preprocessing=config), Path("."))

        def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
            seen.extend(images)
            return super().preprocess(images)

    picture = Image.new("RGB", (600, 200), (255, 255, 255))
    occlusion_evidence(Cropping(), picture, grid=3, patch_fraction=0.5)
    left, top, right, bottom = model_input_box(600, 200, Cropping().manifest.preprocessing)
    assert len(seen) == 1 + 9
    for occluded in seen[1:]:
        changed = np.argwhere(np.asarray(occluded).any(axis=2) & (np.asarray(occluded)[..., 0] != 255))
        assert changed.size
        assert changed[:, 1].min() >= left and changed[:, 1].max() < right
        assert changed[:, 0].min() >= top and changed[:, 0].max() < bottom
