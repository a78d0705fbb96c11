"""The serving path: a model version's checked ONNX export run by ONNX Runtime on NumPy arrays, without torch.

Why torch stays out of serving processes: ``import torch`` (the CUDA build the project pins) costs a process about
500 MB of memory and a second of start-up before any model is built, while ONNX Runtime runs the same graph in
about 3.5x less CPU than eager PyTorch (docs/performance.md). The graph is exported once per model version by
:mod:`inference.acceleration` (which needs torch) in a **separate process**, checked against PyTorch there, and
cached on disk (:mod:`inference.export_cache`); a serving process only ever loads the cached file.

:func:`load_serving_classifier` never fails because of the fast path: if the export cannot be made, or ONNX Runtime
is missing, it falls back to the eager PyTorch classifier and says why in the log.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from inference.evidence import merged_evidence
from inference.export_cache import cached_export_path, default_cache_dir, touch
from inference.manifest import ModelLoadError, ModelManifest, read_manifest, verify_files
from inference.prediction import Prediction, calibrated_probabilities, verdicts
from inference.preprocessing import multiscale_settings, multiscale_views_array

if TYPE_CHECKING:
    from inference.classifier import PhoneClassifier

logger = logging.getLogger(__name__)

TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
ENGINES = (TORCH, ONNXRUNTIME)
LOGITS_OUTPUT = "phone_logits"
EVIDENCE_OUTPUT = "evidence"
# Largest batch handed to the engine at once: per-picture cost is flat from 1 to 16 on this CPU, and bigger
# batches only cost memory (a 256-picture batch of Lite0 activations is over 1 GB).
DEFAULT_MAX_BATCH = 8
# A cold export (torch import, network build, trace, check) takes 5-15 s on this machine; this is a hang.
EXPORT_TIMEOUT_S = 600


class AccelerationUnavailable(RuntimeError):
    """The fast path cannot be built for this model (engine missing, export failed or disagrees)."""


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def engine_for(manifest: ModelManifest, requested: str | None = None) -> str:
    """The engine to run: ``requested`` if given, else the manifest's ``options.engine``, else the fastest installed."""
    name = (requested or manifest.options.get("engine") or "").strip().lower()
    if not name or name == "auto":
        return ONNXRUNTIME if onnxruntime_available() else TORCH
    if name not in ENGINES:
        raise ValueError(f"Unknown inference engine {name!r}; choose one of {', '.join(ENGINES)} or 'auto'.")
    return name


def new_session(model: bytes | str | Path, *, threads: int) -> Any:
    """An ONNX Runtime session for an exported graph, set up for a small machine shared with other services."""
    try:
        import onnxruntime
    except ImportError as error:
        raise AccelerationUnavailable("onnxruntime is not installed") from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: on a box shared with the web server and the database, spinning
    # threads steal the very cores the other processes need (measured: it helps neither latency nor throughput).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    try:
        return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types
        raise AccelerationUnavailable(f"ONNX Runtime could not load the graph: {error}") from error


class OnnxClassifier:
    """A model version served by ONNX Runtime: the same verdicts as its PyTorch classifier, without torch.

    Preprocessing is the shared NumPy code (:mod:`inference.preprocessing`), including multi-scale crops when the
    manifest asks for them, and verdicts are made by :mod:`inference.prediction`, exactly as the PyTorch classes do.
    ``reference`` is the PyTorch classifier when the caller already has one (it explains verdicts for model kinds
    whose graph has no evidence output); otherwise it is loaded on first need.
    """

    engine = ONNXRUNTIME

    def __init__(
        self,
        manifest: ModelManifest,
        model_dir: Path,
        session: Any,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        reference: PhoneClassifier | None = None,
        from_cache: bool = False,
    ) -> None:
        self.manifest = manifest
        self.model_dir = Path(model_dir)
        self.session = session
        self.max_batch = max(1, max_batch)
        self.from_cache = from_cache
        self._reference = reference
        self._input_name = session.get_inputs()[0].name
        self._outputs = [output.name for output in session.get_outputs()]
        self.multiscale_grid, self.multiscale_fraction = multiscale_settings(manifest.options)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def views_per_image(self) -> int:
        return 1 + self.multiscale_grid**2

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        return multiscale_views_array(
            images, self.manifest.preprocessing, grid=self.multiscale_grid, fraction=self.multiscale_fraction
        )

    def phone_logits(self, batch: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds of "phone" (N,) for a preprocessed batch."""
        (logits,) = self.session.run([LOGITS_OUTPUT], {self._input_name: np.ascontiguousarray(batch)})
        return logits

    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]:
        """Calibrated probabilities, in chunks of ``max_batch`` pictures so a long list never builds one huge batch."""
        probabilities: list[float] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            probabilities.extend(calibrated_probabilities(self.phone_logits(self.preprocess(chunk)), self.manifest))
        return probabilities

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """Verdicts for upright RGB pictures, in the same order."""
        return verdicts(self.phone_probabilities(images), self.manifest)

    def predict_and_explain(self, image: Image.Image) -> tuple[Prediction, np.ndarray | None]:
        """The verdict for one picture and, when the graph has it, its evidence map from the same forward pass.

        The map costs nothing extra here, while computing it later means decoding and running the model again.
        """
        if not self.explains_without_torch:
            return self.predict([image])[0], None
        logits, cells = self.session.run([LOGITS_OUTPUT, EVIDENCE_OUTPUT], {self._input_name: self.preprocess([image])})
        return verdicts(calibrated_probabilities(logits, self.manifest), self.manifest)[0], self._picture_evidence(
            cells, image
        )

    @property
    def explains_without_torch(self) -> bool:
        """Whether heat maps come from the graph itself (fine-tuned models) rather than from PyTorch."""
        return EVIDENCE_OUTPUT in self._outputs

    def evidence_map(self, image: Image.Image) -> np.ndarray:
        """Where the phone evidence is in ``image``: the head's per-cell logits of the whole picture (merged with
        its crops' for a multi-scale model, :mod:`inference.evidence`).

        Model kinds whose graph carries no evidence (the zero-shot model explains itself with Grad-CAM, which needs
        gradients) are explained by the PyTorch classifier, loaded on first use.
        """
        if not self.explains_without_torch:
            return np.asarray(self.reference.evidence_map(image))
        (cells,) = self.session.run([EVIDENCE_OUTPUT], {self._input_name: self.preprocess([image])})
        return self._picture_evidence(cells, image)

    def _picture_evidence(self, view_cells: np.ndarray, image: Image.Image) -> np.ndarray:
        """One picture's map from its views' cells: the whole picture's, merged with its crops' when multi-scale."""
        return merged_evidence(view_cells, image.size, grid=self.multiscale_grid, fraction=self.multiscale_fraction)

    @property
    def reference(self) -> PhoneClassifier:
        """The PyTorch classifier of the same version (imports torch; loaded once, on first need)."""
        if self._reference is None:
            from inference.loader import load_classifier

            self._reference = load_classifier(self.model_dir)
        return self._reference


def load_serving_classifier(
    model_dir: str | os.PathLike[str],
    *,
    engine: str | None = None,
    threads: int = 2,
    cache_dir: Path | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> OnnxClassifier | PhoneClassifier:
    """The model in ``model_dir``, verified against its manifest, on the engine :func:`engine_for` picks.

    On ONNX Runtime the checked export is read from ``cache_dir`` (default :func:`default_cache_dir`); a missing
    one is made by a child process, so this process never imports torch. Raises :class:`ModelLoadError` for a
    missing, corrupt or unknown model; never for the fast path, which falls back to eager PyTorch.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelLoadError(f"Model directory {directory} does not exist.")
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    try:
        name = engine_for(manifest, engine)
    except ValueError as error:
        logger.warning("inference engine not understood, using torch", extra={"error": str(error)})
        name = TORCH
    if name == ONNXRUNTIME:
        started = time.perf_counter()
        try:
            classifier = _from_export(directory, manifest, threads=threads, cache_dir=cache_dir, max_batch=max_batch)
        except AccelerationUnavailable as error:
            logger.warning(
                "fast inference path unavailable, using eager fp32 torch",
                extra={"model_version": manifest.version, "error": str(error)},
            )
        else:
            logger.info(
                "fast inference path ready",
                extra={
                    "model_version": manifest.version,
                    "engine": ONNXRUNTIME,
                    "threads": threads,
                    "cached": classifier.from_cache,
                    "prepare_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return classifier
    return _torch_classifier(directory, threads=threads)


def _from_export(
    directory: Path, manifest: ModelManifest, *, threads: int, cache_dir: Path | None, max_batch: int
) -> OnnxClassifier:
    path = cached_export_path(cache_dir or default_cache_dir(), manifest)
    from_cache = path.is_file()
    if not from_cache:
        export_in_child_process(directory, path.parent)
        if not path.is_file():
            raise AccelerationUnavailable(f"the export process wrote no {path.name} (is {path.parent} writable?)")
    touch(path)
    classifier = OnnxClassifier(
        manifest, directory, new_session(path, threads=threads), max_batch=max_batch, from_cache=from_cache
    )
    # The first run allocates the session's buffers; pay for it now, not in the first user's request.
    side = manifest.preprocessing.image_size
    classifier.phone_logits(np.zeros((classifier.views_per_image, 3, side, side), dtype=np.float32))
    return classifier


def export_in_child_process(model_dir: Path, cache_dir: Path, *, timeout: float = EXPORT_TIMEOUT_S) -> None:
    """Run ``python -m inference.acceleration MODEL_DIR --cache-dir DIR`` and wait for it: torch stays in the child."""
    command = [sys.executable, "-m", "inference.acceleration", str(model_dir), "--cache-dir", str(cache_dir)]
    try:
        finished = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AccelerationUnavailable(f"the export process did not finish: {error}") from error
    if finished.returncode != 0:
        reason = (finished.stderr or finished.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AccelerationUnavailable(f"the export process failed: {reason[0]}")


def _torch_classifier(directory: Path, *, threads: int) -> PhoneClassifier:
    from inference.loader import load_classifier
    from inference.runtime import configure_torch_threads

    configure_torch_threads(threads)
    return load_classifier(directory)
