"""Exporting a model version to ONNX for the fast CPU path, checked against PyTorch; needs torch.

Measured on the 2-core serving box (``docs/performance.md``): EfficientNet-Lite takes about 3.5x less CPU per
picture in ONNX Runtime than in eager fp32 PyTorch, with the same numbers to 1e-5, so verdicts never change. int8
post-training quantization was measured too and rejected: it changed 4.5% of verdicts (3.5 accuracy points on the
labelled set) for another ~1.5x, beyond the 0.3-point budget.

The export is generic: whatever a kind's :meth:`~inference.torch_engine.TorchClassifier.network_outputs` computes
(ImageNet softmax mass, a pooled head with its cell map, multi-scale crops folded by ``max``, a scene model's cells
and boxes) is traced into one graph with the same output names, so a new model kind is accelerated without code
here. Every export is checked against its PyTorch original on probe pictures (every output, boxes included); one
that fails or disagrees is never used. Checked exports are cached on disk (:mod:`inference.export_cache`), stamped
with their key, which is where serving processes read them from.

``python -m inference.export MODEL_DIR --cache-dir DIR`` makes and caches the export of one model version:
:func:`inference.loader.load` runs it as a child process, so a serving process never imports torch.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.drawing import probe_pictures
from inference.export_cache import (
    EXPORT_KEY_PROPERTY,
    ONNX_OPSET,
    cached_export_path,
    default_cache_dir,
    touch,
    write_atomically,
)
from inference.manifest import ModelLoadError, read_manifest, verify_files
from inference.onnx_engine import AccelerationUnavailable, new_session, onnxruntime_available
from inference.torch_engine import TorchClassifier, build_torch_classifier

# The exported graph must give the PyTorch outputs to within this (observed: ~1e-5), beyond float32's rounding at
# the scale of each output (AGREEMENT_RELATIVE_TOLERANCE of its largest value): a retrain whose calibration barely
# told the labels apart gave cell log-odds of ~3e7, where float32 alone differs by tens, so its export always failed
# the check and workers served it on eager torch, trying the export again at every load.
AGREEMENT_TOLERANCE = 1e-3
AGREEMENT_RELATIVE_TOLERANCE = 1e-5


def export_checked(classifier: TorchClassifier, *, cache_dir: Path | None) -> tuple[bytes | Path, bool]:
    """The classifier's ONNX graph, checked against PyTorch: a cached file's path, or the bytes of a fresh export.

    Returns ``(graph, from_cache)``. Only a classifier whose manifest is the one on disk in its model directory is
    cached (the cache key is computed from the manifest; see :mod:`inference.export_cache`).
    """
    if not onnxruntime_available():
        raise AccelerationUnavailable("onnxruntime is not installed")
    if not isinstance(getattr(classifier, "network", None), nn.Module):
        raise AccelerationUnavailable(f"{type(classifier).__name__} has no torch `network` to export")
    path = cached_export_path(cache_dir, classifier.manifest) if cache_dir and _manifest_on_disk(classifier) else None
    if path is not None and path.is_file():
        touch(path)
        return path, True
    with torch.inference_mode():
        probe = classifier.preprocess(probe_pictures())
        expected = [tensor.numpy() for tensor in classifier.network_outputs(probe)]
    model = export_onnx(classifier, probe)
    actual = new_session(model, threads=1).run(list(classifier.output_names), {"images": probe.numpy()})
    difference = max(_difference(a, e) for a, e in zip(actual, expected, strict=True))
    if not difference <= AGREEMENT_TOLERANCE:
        raise AccelerationUnavailable(
            f"exported graph disagrees with torch by {difference:.2e} beyond float32 rounding (tolerance "
            f"{AGREEMENT_TOLERANCE})"
        )
    if path is None:
        return model, False
    model = stamped(model, key=path.stem)
    write_atomically(path, model)
    return model, False


def stamped(graph: bytes, *, key: str) -> bytes:
    """``graph`` carrying ``key`` (the name it is cached under) in its metadata, for the loader to check."""
    import onnx  # torch's exporter needs it, so wherever an export is made it is installed

    try:
        model = onnx.load_from_string(graph)
        onnx.helper.set_model_props(model, {EXPORT_KEY_PROPERTY: key})
        return bytes(model.SerializeToString())
    except Exception as error:  # a graph onnx cannot read back is no export to cache
        raise AccelerationUnavailable(f"cannot stamp the exported graph: {error}") from error


def _difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest difference between the two beyond ``AGREEMENT_RELATIVE_TOLERANCE`` of the output's scale (its
    largest expected value): a sum of large terms that nearly cancel is rounded at the terms' scale, not its own."""
    if actual.shape != expected.shape:
        return float("inf")
    if not expected.size:
        return 0.0
    scale = float(np.abs(expected).max())
    return float(np.abs(actual - expected).max()) - AGREEMENT_RELATIVE_TOLERANCE * scale


def _manifest_on_disk(classifier: TorchClassifier) -> bool:
    """Whether the classifier was loaded from its model directory as it is now (test doubles are not)."""
    try:
        return read_manifest(classifier.model_dir).to_dict() == classifier.manifest.to_dict()
    except (ModelLoadError, OSError):
        return False


class _ExportedModule(nn.Module):
    """What inference runs, as a module: the kind's ``network_outputs``."""

    def __init__(self, classifier: TorchClassifier) -> None:
        super().__init__()
        self.network = classifier.network
        self._outputs = classifier.network_outputs

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._outputs(batch)


def export_onnx(classifier: TorchClassifier, probe: torch.Tensor) -> bytes:
    """The ONNX graph of what ``classifier`` runs, traced on ``probe``, with a variable batch size."""
    buffer = io.BytesIO()
    module = _ExportedModule(classifier).eval()
    outputs = list(classifier.output_names)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (probe,),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter (dynamo=False) takes a file object too
                dynamo=False,
                input_names=["images"],
                output_names=outputs,
                dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
                opset_version=ONNX_OPSET,
            )
    except Exception as error:  # the exporter raises many unrelated types for an unsupported graph
        raise AccelerationUnavailable(f"ONNX export failed: {error}") from error
    return buffer.getvalue()


def export_model_dir(model_dir: Path, cache_dir: Path) -> Path:
    """Export, check and cache the model in ``model_dir``; the cached file's path."""
    manifest = read_manifest(model_dir, to_run=True)
    verify_files(model_dir, manifest)
    export_checked(build_torch_classifier(manifest, model_dir), cache_dir=cache_dir)
    return cached_export_path(cache_dir, manifest)


def main(argv: Sequence[str] | None = None) -> int:
    """Export, check and cache one model version; prints the cached file's path as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m inference.export", description="Export a model version to ONNX, checked and cached."
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $PHONECHECK_CACHE_DIR or ~/.cache")
    args = parser.parse_args(argv)
    from inference.runtime import configure_torch_threads

    configure_torch_threads(1)
    try:
        export = export_model_dir(args.model_dir, args.cache_dir or default_cache_dir())
    except (ModelLoadError, AccelerationUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"model_version": read_manifest(args.model_dir).version, "export": str(export)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
