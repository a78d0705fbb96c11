"""Finding and loading model versions from a models directory (``trained_models/`` by default).

Layout: ``<root>/<version>/manifest.json`` plus the files it lists, and ``<root>/ACTIVE`` naming the version
used when nobody asks for a specific one (the command-line tool; the web app's database overrides it).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from inference.manifest import ModelLoadError, ModelManifest, read_manifest, verify_files

if TYPE_CHECKING:
    from inference.classifier import PhoneClassifier

ACTIVE_POINTER = "ACTIVE"
MODELS_DIR_ENV = "PHONECHECK_MODELS_DIR"

ClassifierBuilder = Callable[[ModelManifest, Path], "PhoneClassifier"]

# Model kinds by the module that defines them, imported only when a model of that kind is loaded: the serving
# path reads manifests and paths from here without importing torch.
_KIND_MODULES = {
    "imagenet-zero-shot": "inference.classifier",
    "fine-tuned": "inference.finetuned",
}
_BUILDERS: dict[str, ClassifierBuilder] = {}


def register_model_kind(kind: str, builder: ClassifierBuilder) -> None:
    """Teach the loader a new ``kind`` of manifest (used by the fine-tuned model module)."""
    _BUILDERS[kind] = builder


def default_models_root() -> Path:
    """``$PHONECHECK_MODELS_DIR`` or the repository's ``trained_models/``."""
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "trained_models"


def read_active_pointer(root: Path | None = None) -> str:
    """The version named in ``<root>/ACTIVE``."""
    root = root or default_models_root()
    try:
        name = (root / ACTIVE_POINTER).read_text().strip()
    except FileNotFoundError as error:
        raise ModelLoadError(f"No {ACTIVE_POINTER} file in {root}: no model is active.") from error
    if not name:
        raise ModelLoadError(f"{root / ACTIVE_POINTER} is empty.")
    return name


def resolve_model_dir(model: str | os.PathLike[str] | None = None, root: Path | None = None) -> Path:
    """A model directory from a path, a version name under ``root``, or the active version."""
    root = root or default_models_root()
    if model is None:
        return root / read_active_pointer(root)
    candidate = Path(model)
    if candidate.is_dir():
        return candidate
    return root / str(model)


def load_classifier(model_dir: str | os.PathLike[str]) -> PhoneClassifier:
    """Verify every file against the manifest, then build the classifier it describes.

    Raises :class:`ModelLoadError` with a readable reason for a missing, corrupt or unknown model.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelLoadError(f"Model directory {directory} does not exist.")
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    builder = _builder_for(manifest)
    try:
        return builder(manifest, directory)
    except ModelLoadError:
        raise
    except (RuntimeError, KeyError, ValueError, OSError, EOFError) as error:
        raise ModelLoadError(f"Model {manifest.version} could not be loaded: {error}") from error


def _builder_for(manifest: ModelManifest) -> ClassifierBuilder:
    """The class that builds ``manifest.kind``; its module registers it when first imported."""
    if manifest.kind not in _BUILDERS and manifest.kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[manifest.kind])
    try:
        return _BUILDERS[manifest.kind]
    except KeyError as error:
        raise ModelLoadError(f"Model {manifest.version} has unknown kind {manifest.kind!r}.") from error
