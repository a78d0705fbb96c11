"""Phone-or-not inference: loading model versions and classifying pictures. Knows nothing of Django."""

from inference.classifier import NOT_PHONE, PHONE, PhoneClassifier, Prediction
from inference.images import ImageError, open_image
from inference.loader import default_models_root, load_classifier, read_active_pointer, resolve_model_dir
from inference.manifest import ModelLoadError, ModelManifest

__all__ = [
    "NOT_PHONE",
    "PHONE",
    "ImageError",
    "ModelLoadError",
    "ModelManifest",
    "PhoneClassifier",
    "Prediction",
    "default_models_root",
    "load_classifier",
    "open_image",
    "read_active_pointer",
    "resolve_model_dir",
]
