"""The ONNX Runtime engine: a model version's checked ONNX export run on NumPy arrays, without torch.

Why torch stays out of serving processes: ``import torch`` (the CUDA build the project pins) costs a process about
500 MB of memory and a second of start-up before any model is built, while ONNX Runtime runs the same graph in
about 3.5x less CPU than eager PyTorch (docs/performance.md). Preprocessing, calibration, verdicts and boxes are
the shared base's (:mod:`inference.base`), so this engine only runs the graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inference.base import DEFAULT_MAX_BATCH, BaseClassifier
from inference.contract import ONNXRUNTIME, Classifier, ModelOutputs
from inference.manifest import ModelManifest


class AccelerationUnavailable(RuntimeError):
    """The fast path cannot be built for this model (engine missing, export failed or disagrees)."""


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


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


class OnnxClassifier(BaseClassifier):
    """A model version served by ONNX Runtime: the same verdicts and boxes as its PyTorch classifier, without torch.

    Kinds whose graph has no cell map (the zero-shot model explains itself with Grad-CAM, which needs gradients)
    are explained by the PyTorch classifier of the same version, loaded on first need.
    """

    engine = ONNXRUNTIME

    def __init__(
        self,
        manifest: ModelManifest,
        model_dir: Path,
        session: Any,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        from_cache: bool = False,
    ) -> None:
        super().__init__(manifest, model_dir, max_batch=max_batch)
        self.session = session
        self.from_cache = from_cache
        self._reference: Classifier | None = None
        self._input_name = session.get_inputs()[0].name
        self.output_names = tuple(output.name for output in session.get_outputs())

    def run(self, batch: np.ndarray) -> ModelOutputs:
        values = self.session.run(list(self.output_names), {self._input_name: np.ascontiguousarray(batch)})
        return ModelOutputs.from_named(dict(zip(self.output_names, values, strict=True)))

    def warm_up(self) -> None:
        """The first run allocates the session's buffers; pay for it at load, not in the first user's request.

        It is also the proof that the graph takes this model's input and gives its outputs: one that does not (a
        graph of another input size) raises :class:`AccelerationUnavailable`, which the loader handles, not
        ONNX Runtime's own error in the middle of a load.
        """
        side = self.manifest.preprocessing.image_size
        try:
            self.run(np.zeros((self.views_per_image, 3, side, side), dtype=np.float32))
        except Exception as error:  # onnxruntime's own exception types, or an output missing
            raise AccelerationUnavailable(f"the exported graph does not run on this model's input: {error}") from error

    def explain_without_cells(self, image: Image.Image) -> np.ndarray:
        if self._reference is None:
            from inference.loader import load  # imports torch; only for kinds whose graph cannot explain itself

            self._reference = load(self.model_dir, engine="torch")
        return np.asarray(self._reference.evidence_map(image))
