"""The model kept loaded in a worker (or web) process, switched when another version becomes active.

Loading takes a fraction of a second and tens of MB; doing it per request was the prototype's main cost.
This module loads a version once per process, checks at most every ``ACTIVE_MODEL_CHECK_SECONDS`` whether
another version became active, and swaps the whole classifier object so a prediction already running keeps
the version it started with.

A newly active version that fails to load (a file changed or lost after activation) does not stop a process that
already holds a model: it keeps classifying with the version it has (each verdict names it), logs the failure, and
tries the new one again every ``RELOAD_RETRY_SECONDS``. Before, uploads alternated between the old version (inside
a check window) and a failed load (at each window's end), and those that kept meeting the failure ended ``failed``
after their retries. Only a process with no model at all raises (the classification task retries, then gives up).
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

# How long a process keeps serving the model it has before trying again a newly active version that failed to load.
RELOAD_RETRY_SECONDS = 30.0


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
        # (pk, checksum) of an active version that failed to load while another was held, and when it failed.
        self._failed: tuple[int, str] | None = None
        self._failed_at = 0.0

    def current(self) -> LoadedModel:
        """The active version's classifier, loading or switching it if the active version changed."""
        with self._lock:
            now = time.monotonic()
            loaded = self._loaded
            if loaded is not None and now - self._checked_at < settings.ACTIVE_MODEL_CHECK_SECONDS:
                return loaded
            active = model_version_active()
            self._checked_at = now
            wanted = (active.pk, active.checksum)
            if loaded is not None and (loaded.version.pk, loaded.version.checksum) == wanted:
                return loaded
            if loaded is not None and self._failed == wanted and now - self._failed_at < RELOAD_RETRY_SECONDS:
                return loaded
            try:
                loaded = self._load(active)
            except ModelLoadError:
                if loaded is None:
                    raise
                self._failed, self._failed_at = wanted, now
                logger.exception(
                    "active model version could not be loaded; still serving the previous one",
                    extra={"model_version": active.name, "serving": loaded.version.name},
                )
                return loaded
            self._loaded, self._failed = loaded, None
            return loaded

    def forget(self) -> None:
        """Drop the loaded model (tests; or to free memory)."""
        with self._lock:
            self._loaded = None
            self._checked_at = 0.0
            self._failed = None

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
