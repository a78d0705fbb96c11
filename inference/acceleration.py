"""Exporting a classifier to ONNX for the fast CPU path, checked against PyTorch; needs torch.

Measured on the 2-core serving box (``docs/performance.md``): EfficientNet-Lite0 takes about 3.5x less CPU per
picture in ONNX Runtime than in eager fp32 PyTorch, with the same numbers to 1e-5, so verdicts never change. int8
post-training quantization was measured too and rejected: it changed 4.5% of verdicts (3.5 accuracy points on the
labelled set) for another ~1.5x, beyond the 0.3-point budget.

The export is generic: whatever :meth:`PhoneClassifier.phone_logits` does with the classifier's ``network``
(ImageNet softmax mass, a pooled head, multi-scale crops folded by ``max``) is traced into one graph, so a new
model kind is accelerated without code here; a kind that also defines ``phone_logits_and_evidence`` gets its
evidence map as a second output, so its heat maps need no torch either. Every export is checked against its
PyTorch original on probe pictures; one that fails or disagrees is never used. Checked exports are cached on disk
(:mod:`inference.export_cache`), which is where serving processes (:mod:`inference.serving`) read them from.

``python -m inference.acceleration MODEL_DIR --cache-dir DIR`` makes and caches the export of one model version:
:func:`inference.serving.load_serving_classifier` runs it as a child process, so the server never imports torch.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from inference.classifier import PhoneClassifier
from inference.export_cache import ONNX_OPSET, cached_export_path, default_cache_dir, touch, write_atomically
from inference.manifest import ModelLoadError, read_manifest
from inference.serving import (
    DEFAULT_MAX_BATCH,
    ENGINES,
    EVIDENCE_OUTPUT,
    LOGITS_OUTPUT,
    ONNXRUNTIME,
    TORCH,
    AccelerationUnavailable,
    OnnxClassifier,
    engine_for,
    new_session,
    onnxruntime_available,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "ENGINES",
    "ONNXRUNTIME",
    "TORCH",
    "AccelerationUnavailable",
    "accelerate",
    "default_cache_dir",
    "export_checked",
    "export_onnx",
    "onnxruntime_available",
    "probe_pictures",
]

logger = logging.getLogger(__name__)

# The exported graph must give the PyTorch logits to within this (observed: ~1e-5).
AGREEMENT_TOLERANCE = 1e-3


def accelerate(
    classifier: PhoneClassifier,
    *,
    engine: str | None = None,
    threads: int = 2,
    cache_dir: Path | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> PhoneClassifier | OnnxClassifier:
    """The classifier on the engine chosen by :func:`engine_for`, or unchanged if that is PyTorch.

    For callers that already hold the PyTorch classifier (benchmarks, evaluation); servers use
    :func:`inference.serving.load_serving_classifier`. Never fails because of the fast path: if it cannot be
    built, or disagrees with the original, the original is returned and the reason logged. ``cache_dir`` keeps
    checked exports across restarts (``None``: in memory only).
    """
    try:
        name = engine_for(classifier.manifest, engine)
    except ValueError as error:
        logger.warning("inference engine not understood, using torch", extra={"error": str(error)})
        return classifier
    if name == TORCH:
        return classifier
    try:
        model, from_cache = export_checked(classifier, cache_dir=cache_dir)
        session = new_session(model, threads=threads)
    except AccelerationUnavailable as error:
        logger.warning(
            "fast inference path unavailable, using eager fp32 torch",
            extra={"model_version": classifier.version, "error": str(error)},
        )
        return classifier
    return OnnxClassifier(
        classifier.manifest,
        classifier.model_dir,
        session,
        max_batch=max_batch,
        reference=classifier,
        from_cache=from_cache,
    )


def export_checked(classifier: PhoneClassifier, *, cache_dir: Path | None) -> tuple[bytes | Path, bool]:
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
        expected = classifier.phone_logits(probe)
    model = export_onnx(classifier, probe)
    (actual,) = new_session(model, threads=1).run([LOGITS_OUTPUT], {"images": probe.numpy()})
    difference = float(np.abs(actual - expected.numpy()).max()) if actual.shape == tuple(expected.shape) else np.inf
    if not difference <= AGREEMENT_TOLERANCE:
        raise AccelerationUnavailable(
            f"exported graph disagrees with torch by {difference:.2e} (tolerance {AGREEMENT_TOLERANCE})"
        )
    if path is None:
        return model, False
    write_atomically(path, model)
    return model, False


def _manifest_on_disk(classifier: PhoneClassifier) -> bool:
    """Whether the classifier was loaded from its model directory as it is now (test doubles are not)."""
    try:
        return read_manifest(classifier.model_dir).to_dict() == classifier.manifest.to_dict()
    except (ModelLoadError, OSError):
        return False


class _ExportedModule(nn.Module):
    """What inference runs, as a module: the phone logits, plus the evidence map when the classifier has one."""

    def __init__(self, classifier: PhoneClassifier) -> None:
        super().__init__()
        self.network = classifier.network  # type: ignore[attr-defined]
        self._with_evidence = getattr(classifier, "phone_logits_and_evidence", None)
        self._phone_logits = classifier.phone_logits

    def forward(self, batch: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self._with_evidence is not None:
            return self._with_evidence(batch)
        return self._phone_logits(batch)


def probe_pictures() -> list[Image.Image]:
    """Two drawn pictures (landscape and portrait) with edges and flat areas, for checking an export."""
    pictures = []
    for width, height, hue in ((320, 240, 40), (200, 300, 160)):
        image = Image.new("RGB", (width, height), (hue, 120, 255 - hue))
        draw = ImageDraw.Draw(image)
        draw.rectangle([width // 5, height // 6, width // 2, height * 5 // 6], fill=(20, 20, 24))
        draw.ellipse([width // 2, height // 4, width * 9 // 10, height * 3 // 4], fill=(240, 230, 200))
        for x in range(0, width, 16):
            draw.line([x, 0, width - x, height], fill=(x % 255, 80, 160), width=2)
        pictures.append(image)
    return pictures


def export_onnx(classifier: PhoneClassifier, probe: torch.Tensor) -> bytes:
    """The ONNX graph of what ``classifier`` runs, traced on ``probe``, with a variable batch size.

    Outputs: ``phone_logits`` (N,), and ``evidence`` (N * views, H, W) for classifiers that expose it.
    """
    buffer = io.BytesIO()
    module = _ExportedModule(classifier).eval()
    outputs = [LOGITS_OUTPUT, EVIDENCE_OUTPUT] if module._with_evidence is not None else [LOGITS_OUTPUT]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (probe,),
                buffer,
                dynamo=False,
                input_names=["images"],
                output_names=outputs,
                dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
                opset_version=ONNX_OPSET,
            )
    except Exception as error:  # the exporter raises many unrelated types for an unsupported graph
        raise AccelerationUnavailable(f"ONNX export failed: {error}") from error
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Export, check and cache one model version; prints the cached file's path as JSON."""
    from inference.loader import load_classifier
    from inference.runtime import configure_torch_threads

    parser = argparse.ArgumentParser(
        prog="python -m inference.acceleration", description="Export a model version to ONNX, checked and cached."
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $PHONECHECK_CACHE_DIR or ~/.cache")
    args = parser.parse_args(argv)
    configure_torch_threads(1)
    cache_dir = args.cache_dir or default_cache_dir()
    try:
        classifier = load_classifier(args.model_dir)
        export_checked(classifier, cache_dir=cache_dir)
    except (ModelLoadError, AccelerationUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    export = cached_export_path(cache_dir, classifier.manifest)
    print(json.dumps({"model_version": classifier.version, "export": str(export)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
