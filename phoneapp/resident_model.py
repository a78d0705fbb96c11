"""The model kept loaded in a worker (or web) process, switched when another version becomes active.

Loading takes a fraction of a second and tens of MB; doing it per request was the prototype's main cost.
This module loads a version once per process, checks at most every ``ACTIVE_MODEL_CHECK_SECONDS`` whether
another version became active, and swaps the whole classifier object so a prediction already running keeps
the version it started with.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from inference.contract import Classifier
from inference.export_cache import default_cache_dir
from inference.loader import load
from inference.manifest import ModelLoadError, manifest_checksum
from phoneapp.models import ModelVersion
from phoneapp.services.model_versions import model_dir_of, model_version_active

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    classifier: Classifier


class ResidentModel:
    """Holds at most one loaded classifier per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._checked_at = 0.0

    def current(self) -> LoadedModel:
        """The active version's classifier, loading or switching it if the active version changed."""
        with self._lock:
            now = time.monotonic()
            loaded = self._loaded
            if loaded is not None and now - self._checked_at < settings.ACTIVE_MODEL_CHECK_SECONDS:
                return loaded
            active = model_version_active()
            self._checked_at = now
            if loaded is None or (loaded.version.pk, loaded.version.checksum) != (active.pk, active.checksum):
                loaded = self._load(active)
                self._loaded = loaded
            return loaded

    def forget(self) -> None:
        """Drop the loaded model (tests; or to free memory)."""
        with self._lock:
            self._loaded = None
            self._checked_at = 0.0

    @staticmethod
    def _load(version: ModelVersion) -> LoadedModel:
        started = time.perf_counter()
        model_dir = model_dir_of(version)
        classifier = load(
            model_dir,
            engine=settings.INFERENCE_ENGINE or None,
            threads=settings.INFERENCE_THREADS,
            cache_dir=Path(settings.INFERENCE_CACHE_DIR) if settings.INFERENCE_CACHE_DIR else default_cache_dir(),
            models_root=Path(settings.MODELS_DIR),
        )
        if manifest_checksum(model_dir) != version.checksum:
            raise ModelLoadError(f"Model {version.name}: manifest on disk differs from the registered checksum.")
        if classifier.version != version.name:
            raise ModelLoadError(
                f"Model directory of {version.name} holds version {classifier.version}; refusing to mix them up."
            )
        logger.info(
            "model loaded",
            extra={
                "model_version": version.name,
                "engine": classifier.engine,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return LoadedModel(version=version, classifier=classifier)


resident_model = ResidentModel()
