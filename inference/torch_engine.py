"""The eager PyTorch engine: a model kind's network run on torch tensors, behind the shared classifier base.

Each model kind subclasses :class:`TorchClassifier` in its own module and says what its network computes
(:meth:`~TorchClassifier.network_outputs`): that one method is what the engine runs, what the ONNX exporter
traces (:mod:`inference.export`) and what the training code scores, so an edit to it changes every engine alike.
Kinds are found by name in :data:`KIND_MODULES` and imported on first use: nothing registers itself, so there
is no import circle between the loader and the kinds.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from inference.backbone import imagenet_weights_path
from inference.base import DEFAULT_MAX_BATCH, BaseClassifier
from inference.contract import LOGITS_OUTPUT, TORCH, ModelOutputs
from inference.manifest import ModelLoadError, ModelManifest, sha256_file

N = TypeVar("N", bound="TrainedNetwork")

# Model kind -> "module:class" of its PyTorch classifier.
KIND_MODULES = {
    "imagenet-zero-shot": "inference.zero_shot:ImageNetZeroShotClassifier",
    "fine-tuned": "inference.finetuned:FineTunedClassifier",
    "scene-detector": "inference.scene:SceneClassifier",
}


class TorchClassifier(BaseClassifier):
    """A model kind on eager PyTorch; subclasses build ``network`` and define :meth:`network_outputs`."""

    engine = TORCH
    network: nn.Module
    # Names of network_outputs' tensors, in order (the exported graph's output names).
    output_names: ClassVar[tuple[str, ...]] = (LOGITS_OUTPUT,)

    @abstractmethod
    def network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The network's outputs for a preprocessed batch, named by :attr:`output_names`."""

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.from_numpy(self.preprocess_array(images))

    def phone_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Uncalibrated phone log-odds (N,) for a preprocessed batch (occlusion maps and training use it)."""
        return self.network_outputs(batch)[0]

    def explain_without_cells(self, image: Image.Image) -> np.ndarray:
        """Occlusion: grey out patches and measure the drop in log-odds; works for any network (many passes)."""
        from inference.torch_evidence import occlusion_evidence

        return occlusion_evidence(self, image).numpy()

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> ModelOutputs:
        tensors = self.network_outputs(torch.from_numpy(np.ascontiguousarray(batch)))
        return ModelOutputs.from_named(
            {name: tensor.numpy() for name, tensor in zip(self.output_names, tensors, strict=True)}
        )


def classifier_class(kind: str) -> type[TorchClassifier]:
    """The PyTorch classifier class of a model kind (its module imported now)."""
    try:
        module_name, class_name = KIND_MODULES[kind].split(":")
    except KeyError as error:
        raise ModelLoadError(f"Unknown model kind {kind!r}.") from error
    found: type[TorchClassifier] = getattr(importlib.import_module(module_name), class_name)
    return found


def build_torch_classifier(
    manifest: ModelManifest, model_dir: Path, *, max_batch: int = DEFAULT_MAX_BATCH
) -> TorchClassifier:
    """The eager classifier for a verified model directory; unreadable weights become :class:`ModelLoadError`."""
    try:
        builder = classifier_class(manifest.kind)
    except ModelLoadError as error:
        raise ModelLoadError(f"Model {manifest.version} has unknown kind {manifest.kind!r}.") from error
    try:
        return builder(manifest, model_dir, max_batch=max_batch)
    except ModelLoadError:
        raise
    except (RuntimeError, KeyError, ValueError, OSError, EOFError) as error:
        raise ModelLoadError(f"Model {manifest.version} could not be loaded: {error}") from error


class TrainedNetwork(Protocol):
    """A network whose trained part is saved and loaded as a state dict (fine-tuned and scene networks)."""

    def load_trained_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...

    def eval(self) -> nn.Module: ...


def load_trained_network(network: N, manifest: ModelManifest, model_dir: Path, weights_file: str) -> N:
    """``network`` with the checkpoint the manifest lists, checked against the installed ImageNet base, in eval mode.

    Every failure (missing or damaged file, another base, a checkpoint of another shape) is a ModelLoadError.
    """
    state = load_checkpoint(manifest, model_dir, weights_file)
    check_base_weights(manifest)
    try:
        network.load_trained_state_dict(state)
    except ValueError as error:
        raise ModelLoadError(f"Model {manifest.version}: {error}.") from error
    network.eval()
    return network


def load_checkpoint(manifest: ModelManifest, model_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """A state dict listed in the manifest, read without running any pickled code."""
    if name not in manifest.files:
        raise ModelLoadError(f"Model {manifest.version}: manifest does not list {name}.")
    try:
        state = torch.load(model_dir / name, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a damaged file
        raise ModelLoadError(f"Model {manifest.version}: {name} is not a readable checkpoint ({error}).") from error
    if not isinstance(state, dict):
        raise ModelLoadError(f"Model {manifest.version}: {name} does not hold a state dict.")
    return state


def check_base_weights(manifest: ModelManifest) -> None:
    """Refuse a checkpoint trained on other ImageNet weights than the installed package's (its trunk would differ)."""
    expected = manifest.options.get("base_weights_sha256")
    if expected and sha256_file(imagenet_weights_path(manifest.architecture)) != expected:
        raise ModelLoadError(
            f"Model {manifest.version} was trained on different {manifest.architecture} ImageNet weights than "
            "the installed package provides; reinstall the pinned weights package or retrain."
        )
