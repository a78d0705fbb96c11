"""Phone-or-not inference: loading model versions and classifying pictures. Knows nothing of Django.

Names are imported on first use (PEP 562), so ``import inference.images`` in the web process or the serving
path in a worker never pulls in torch; only the PyTorch classifiers import it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NOT_PHONE": "inference.prediction",
    "PHONE": "inference.prediction",
    "Prediction": "inference.prediction",
    "Classifier": "inference.contract",
    "Box": "inference.boxes",
    "ImageError": "inference.images",
    "open_image": "inference.images",
    "default_models_root": "inference.loader",
    "load": "inference.loader",
    "read_active_pointer": "inference.loader",
    "resolve_model_dir": "inference.loader",
    "ModelLoadError": "inference.manifest",
    "ModelManifest": "inference.manifest",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError as error:
        raise AttributeError(f"module 'inference' has no attribute {name!r}") from error
    return getattr(importlib.import_module(module), name)
