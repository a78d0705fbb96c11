"""Writing a scene model version: head weights with the calibration shift folded in, manifest last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inference.backbone import imagenet_weights_path
from inference.manifest import ModelManifest, sha256_file
from inference.preprocessing import PreprocessConfig
from inference.scene_network import OBJECTNESS_BIAS, TRUNK_PREFIX, ScenePhoneNet
from inference.second_opinion import SecondOpinionSpec
from ml_training.checkpoint import write_json_file, write_model_manifest, write_state_dict

KIND = "scene-detector"
WEIGHTS_FILE = "weights.pt"


def fold_shift_into_head(network: ScenePhoneNet, shift: float) -> None:
    """Subtract ``shift`` from every cell's logit (and so from the best cell's): Platt's bias, inside the graph.

    With several heads each one's bias moves by ``shift``: the network averages their cells, so the average moves
    by exactly ``shift`` too.
    """
    for head in network.scene_heads():
        bias = head.objectness.bias
        assert bias is not None  # a Conv2d built with its default bias=True
        with torch.no_grad():
            bias -= shift


def unfold_shift(state: dict[str, torch.Tensor], shift: float) -> dict[str, torch.Tensor]:
    """A shipped checkpoint's raw head weights: :func:`fold_shift_into_head` undone on every head's bias, so
    training continues from the head as it was trained, not as calibrated."""
    return {
        name: value + shift if name.endswith(OBJECTNESS_BIAS) and not name.startswith(TRUNK_PREFIX) else value
        for name, value in state.items()
    }


def write_scene_model(
    out_dir: Path,
    *,
    version: str,
    network: ScenePhoneNet,
    preprocessing: PreprocessConfig,
    temperature: float,
    threshold: float,
    band: tuple[float, float],
    metrics: dict[str, Any],
    extra_files: dict[str, Any],
    options: dict[str, Any],
    second_opinion: SecondOpinionSpec | None = None,
) -> Path:
    """A loadable model directory: weights and JSON files first, the manifest naming their checksums last."""
    files = {WEIGHTS_FILE: write_state_dict(out_dir, WEIGHTS_FILE, network.trained_state_dict())}
    for name, data in extra_files.items():
        files[name] = write_json_file(out_dir, name, data)
    manifest = ModelManifest(
        version=version,
        kind=KIND,
        architecture="efficientnet-lite0",
        preprocessing=preprocessing,
        threshold=threshold,
        temperature=temperature,
        files=files,
        unsure_band=band,
        metrics=metrics,
        options={
            **options,
            **network.options().as_manifest_options(),
            "base_weights_sha256": sha256_file(imagenet_weights_path("efficientnet-lite0")),
        },
        second_opinion=second_opinion,
    )
    write_model_manifest(out_dir, manifest)
    return out_dir
