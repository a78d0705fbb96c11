"""A faster CPU path for any classifier: its phone-logits network exported to ONNX and run by ONNX Runtime.

Measured on the 2-core serving box (``docs/performance.md``): EfficientNet-Lite0 takes about 3.5x less CPU per
picture in ONNX Runtime than in eager fp32 PyTorch, with the same numbers to 1e-5, so verdicts never change. int8
post-training quantization was measured too and rejected: it changed 4.5% of verdicts (3.5 accuracy points on the
labelled set) for another ~1.5x, beyond the 0.3-point budget.

The export is generic: whatever :meth:`PhoneClassifier.phone_logits` does with the classifier's ``network``
(ImageNet softmax mass, a pooled head, multi-scale crops folded by ``max``) is traced into one graph, so a new
model kind is accelerated without code here. Every accelerated model is checked against its PyTorch original on
probe pictures when it is exported; an export that fails or disagrees leaves the original classifier in place,
with a warning in the log. Checked exports are cached on disk by a key that covers the weights, the manifest, the
classifier's code and the library versions, so a worker restart does not pay for the export (seconds) again.

Which engine runs is chosen by the manifest's ``options.engine`` (``"onnxruntime"`` or ``"torch"``), overridden by
the caller (the Django setting ``INFERENCE_ENGINE``); the default is ONNX Runtime when it is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from torch import nn

from inference.classifier import PhoneClassifier

logger = logging.getLogger(__name__)

TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
ENGINES = (TORCH, ONNXRUNTIME)
CACHE_DIR_ENV = "PHONECHECK_CACHE_DIR"
# Bump when the export recipe changes, so old cached files are not reused.
EXPORT_RECIPE = 1
ONNX_OPSET = 17
# Largest batch handed to the engine at once: per-picture cost is flat from 1 to 16 on this CPU, and bigger
# batches only cost memory (a 256-picture batch of Lite0 activations is over 1 GB).
DEFAULT_MAX_BATCH = 8
# The exported graph must give the PyTorch logits to within this (observed: ~1e-5).
AGREEMENT_TOLERANCE = 1e-3
# Exports kept in the cache directory, most recently used first.
CACHE_KEEP = 8


class AccelerationUnavailable(RuntimeError):
    """The fast path cannot be built for this classifier (engine missing, export failed or disagrees)."""


def default_cache_dir() -> Path:
    """``$PHONECHECK_CACHE_DIR`` or ``$XDG_CACHE_HOME/phonecheck`` (``~/.cache/phonecheck``)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "phonecheck"


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def engine_for(classifier: PhoneClassifier, requested: str | None = None) -> str:
    """The engine to run: ``requested`` if given, else the manifest's ``options.engine``, else the fastest installed."""
    name = (requested or classifier.manifest.options.get("engine") or "").strip().lower()
    if not name or name == "auto":
        return ONNXRUNTIME if onnxruntime_available() else TORCH
    if name not in ENGINES:
        raise ValueError(f"Unknown inference engine {name!r}; choose one of {', '.join(ENGINES)} or 'auto'.")
    return name


class AcceleratedClassifier(PhoneClassifier):
    """A classifier whose phone logits come from a faster engine; everything else is the original's.

    Preprocessing (including multi-scale crops) and the evidence maps (which need gradients) stay with the
    PyTorch ``reference``, so verdicts, overlays and manifests are exactly those of the original model.
    Attributes it does not define (``network``, ``phone_classes``, ...) are read from the reference.
    """

    def __init__(
        self,
        reference: PhoneClassifier,
        runner: Callable[[torch.Tensor], torch.Tensor],
        *,
        engine: str,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        super().__init__(reference.manifest, reference.model_dir)
        self.reference = reference
        self.runner = runner
        self.engine = engine
        self.max_batch = max(1, max_batch)

    def __getattr__(self, name: str) -> Any:
        if name == "reference":  # not set yet (during unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.reference, name)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.reference.preprocess(images)

    def phone_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.runner(batch)

    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]:
        """As the base class, in chunks of ``max_batch`` pictures so a long list never builds one huge batch."""
        probabilities: list[float] = []
        for start in range(0, len(images), self.max_batch):
            probabilities.extend(super().phone_probabilities(images[start : start + self.max_batch]))
        return probabilities

    def evidence_map(self, image: Image.Image) -> torch.Tensor:
        return self.reference.evidence_map(image)


def accelerate(
    classifier: PhoneClassifier,
    *,
    engine: str | None = None,
    threads: int = 2,
    cache_dir: Path | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> PhoneClassifier:
    """The classifier on the engine chosen by :func:`engine_for`, or unchanged if that is PyTorch.

    Never fails because of the fast path: if it cannot be built, or disagrees with the original, the original
    is returned and the reason logged. ``cache_dir`` keeps exported graphs across restarts (``None``: in memory).
    """
    try:
        name = engine_for(classifier, engine)
    except ValueError as error:
        logger.warning("inference engine not understood, using torch", extra={"error": str(error)})
        return classifier
    if name == TORCH:
        return classifier
    started = time.perf_counter()
    try:
        runner = OnnxRuntimeRunner.for_classifier(classifier, threads=threads, cache_dir=cache_dir)
    except AccelerationUnavailable as error:
        logger.warning(
            "fast inference path unavailable, using eager fp32 torch",
            extra={"model_version": classifier.version, "error": str(error)},
        )
        return classifier
    logger.info(
        "fast inference path ready",
        extra={
            "model_version": classifier.version,
            "engine": name,
            "threads": threads,
            "cached": runner.from_cache,
            "prepare_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return AcceleratedClassifier(classifier, runner, engine=name, max_batch=max_batch)


class _PhoneLogitsModule(nn.Module):
    """The classifier's own ``phone_logits`` as a module, so the exporter traces exactly what inference runs."""

    def __init__(self, classifier: PhoneClassifier) -> None:
        super().__init__()
        self.network = classifier.network  # type: ignore[attr-defined]
        self._phone_logits = classifier.phone_logits

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
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


class OnnxRuntimeRunner:
    """Runs an exported phone-logits graph in an ONNX Runtime session: (N, C, H, W) float32 in, (N,) out."""

    def __init__(self, session: Any, *, from_cache: bool) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.from_cache = from_cache

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().contiguous().numpy()
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits)

    @classmethod
    def for_classifier(cls, classifier: PhoneClassifier, *, threads: int, cache_dir: Path | None) -> OnnxRuntimeRunner:
        """Export (or reuse a cached export of) ``classifier``'s phone logits and check it against PyTorch."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            raise AccelerationUnavailable("onnxruntime is not installed") from error
        if not isinstance(getattr(classifier, "network", None), nn.Module):
            raise AccelerationUnavailable(f"{type(classifier).__name__} has no torch `network` to export")
        with torch.inference_mode():
            probe = classifier.preprocess(probe_pictures())
        path = None if cache_dir is None else Path(cache_dir) / f"{export_key(classifier, probe.shape)}.onnx"
        if path is not None and path.is_file():
            # The key covers everything the graph depends on, and this graph passed the check when it was written.
            runner = cls(_session(str(path), threads=threads), from_cache=True)
            _touch(path)
            runner(probe)  # warm-up: the first run allocates the session's buffers
            return runner
        model = export_onnx(classifier, probe)
        runner = cls(_session(model, threads=threads), from_cache=False)
        with torch.inference_mode():
            expected = classifier.phone_logits(probe)
        actual = runner(probe)
        difference = float((actual - expected).abs().max()) if actual.shape == expected.shape else float("inf")
        if not difference <= AGREEMENT_TOLERANCE:
            raise AccelerationUnavailable(
                f"exported graph disagrees with torch by {difference:.2e} (tolerance {AGREEMENT_TOLERANCE})"
            )
        if path is not None:
            _write_atomically(path, model)
        return runner


def export_key(classifier: PhoneClassifier, input_shape: Sequence[int]) -> str:
    """A name that changes whenever the exported graph could: weights, manifest, classifier code, libraries."""
    digest = hashlib.sha256()
    digest.update(json.dumps(classifier.manifest.to_dict(), sort_keys=True).encode())
    digest.update(f"{EXPORT_RECIPE}|{ONNX_OPSET}|{torch.__version__}|{tuple(input_shape)}".encode())
    for klass in type(classifier).__mro__:
        if klass.__module__.startswith("inference."):
            digest.update(klass.__qualname__.encode())
            digest.update(inspect.getsource(klass).encode())
    for name, tensor in classifier.network.state_dict().items():  # type: ignore[attr-defined]
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{classifier.version}-{digest.hexdigest()[:20]}"


def export_onnx(classifier: PhoneClassifier, probe: torch.Tensor) -> bytes:
    """The ONNX graph of ``classifier.phone_logits`` traced on ``probe``, with a variable batch size."""
    buffer = io.BytesIO()
    module = _PhoneLogitsModule(classifier).eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (probe,),
                buffer,
                dynamo=False,
                input_names=["images"],
                output_names=["phone_logits"],
                dynamic_axes={"images": {0: "batch"}, "phone_logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
            )
    except Exception as error:  # the exporter raises many unrelated types for an unsupported graph
        raise AccelerationUnavailable(f"ONNX export failed: {error}") from error
    return buffer.getvalue()


def _session(model: bytes | str, *, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: on a box shared with the web server and the database, spinning
    # threads steal the very cores the other processes need (measured: it helps neither latency nor throughput).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types
        raise AccelerationUnavailable(f"ONNX Runtime could not load the graph: {error}") from error


def _write_atomically(path: Path, data: bytes) -> None:
    """Several workers may export at once; each writes a private file and renames it into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, path)
        _prune(path.parent, keep=CACHE_KEEP)
    except OSError as error:  # a read-only cache only costs the next start an export
        logger.warning("cannot cache exported model", extra={"path": str(path), "error": str(error)})


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(path)


def _prune(directory: Path, *, keep: int) -> None:
    """Keep the ``keep`` most recently used exports (each ~20 MB); retrained versions would otherwise pile up."""
    exports = sorted(directory.glob("*.onnx"), key=lambda file: file.stat().st_mtime, reverse=True)
    for stale in exports[keep:]:
        stale.unlink(missing_ok=True)
