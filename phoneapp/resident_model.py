"""The model kept loaded in a worker (or web) process, switched when another version becomes active.

Loading takes a fraction of a second and tens of MB; doing it per request was the prototype's main cost.
This module loads a version once per process, checks at most every ``ACTIVE_MODEL_CHECK_SECONDS`` whether
another version became active, and swaps the whole classifier object so a prediction already running keeps
the version it started with.

A newly active version that fails to load (a file changed or lost after activation, or anything else going wrong
while it is built) does not stop a process that already holds a model: it keeps classifying with the version it has
(each verdict names it), logs the failure with its traceback, and tries the new one again every
``RELOAD_RETRY_SECONDS``. Before, uploads alternated between the old version (inside a check window) and a failed
load (at each window's end), and those that kept meeting the failure ended ``failed`` after their retries. Only a
process with no model at all raises, always :class:`ModelLoadError` (the classification task retries, then gives up).

A newly active version that must first be converted to ONNX on this machine (seconds of CPU: ~16 s for a scene
model on 2 cores) is loaded in a background thread while the process keeps classifying with the version it has;
it takes over when ready. Converting in line stopped classification for those seconds in every worker process
(soak test, session 41). A version whose export is already cached, the usual case after ``manage.py
activate_model`` or a retrain, loads in line in well under a second, so the next upload already gets it.

The registered checksum and version name are checked on the manifest before anything is built: loading verifies
every weight file and may start the export child, all for a version that would then be refused.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from inference.allocator import release_freed_memory
from inference.contract import Classifier
from inference.manifest import ModelLoadError, manifest_checksum, read_manifest
from phoneapp.models import ModelVersion
from phoneapp.services.model_versions import (
    classifier_export_missing,
    classifier_load,
    model_dir_of,
    model_version_active,
)

logger = logging.getLogger(__name__)

# How long a process keeps serving the model it has before trying again a newly active version that failed to load.
RELOAD_RETRY_SECONDS = 30.0


# A model version as the database states it: its primary key and its manifest's checksum.
VersionKey = tuple[int, str]


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    classifier: Classifier

    @property
    def key(self) -> VersionKey:
        return key_of(self.version)


def key_of(version: ModelVersion) -> VersionKey:
    return (version.pk, version.checksum)


class ResidentModel:
    """Holds at most one loaded classifier per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._checked_at = 0.0
        # An active version that failed to load while another was held, and when it failed.
        self._failed: VersionKey | None = None
        self._failed_at = 0.0
        # Versions being loaded in the background while the held one serves, and the last such load that finished:
        # only current(), which has just read the active version, installs it (or drops it, if that is another).
        self._loading: set[VersionKey] = set()
        self._ready: LoadedModel | None = None
        # Bumped by forget(): a background load started before it hands nothing over after it.
        self._generation = 0

    def current(self) -> LoadedModel:
        """The active version's classifier, loading or switching it if the active version changed."""
        with self._lock:
            now = time.monotonic()
            loaded = self._loaded
            if loaded is not None and now - self._checked_at < settings.ACTIVE_MODEL_CHECK_SECONDS:
                return loaded
            active = model_version_active()
            self._checked_at = now
            wanted = key_of(active)
            ready, self._ready = self._ready, None
            if ready is not None:
                if ready.key == wanted and (loaded is None or loaded.key != wanted):
                    del loaded  # this frame's reference to the previous model, gone before its memory is handed back
                    self._install(ready)
                    return ready
                self._note_dropped(ready, active=active)
                del ready
                release_freed_memory()
            if loaded is not None and loaded.key == wanted:
                return loaded
            if loaded is not None and self._failed == wanted and now - self._failed_at < RELOAD_RETRY_SECONDS:
                return loaded
            if loaded is not None and wanted in self._loading:
                return loaded
            if loaded is not None and classifier_export_missing(model_dir=model_dir_of(active)):
                self._load_in_background(active, serving=loaded)
                return loaded
            try:
                new = self._load(active)
            except Exception as error:  # a damaged version, or a fault in building it: the same for the uploads
                if loaded is None:
                    if isinstance(error, ModelLoadError):
                        raise
                    logger.exception("model version could not be loaded", extra={"model_version": active.name})
                    raise ModelLoadError(f"Model {active.name} could not be loaded: {error}") from error
                self._note_load_failure(active, serving=loaded)
                return loaded
            del loaded  # this frame's reference to the previous model, gone before its memory is handed back
            self._install(new)
            return new

    def _install(self, new: LoadedModel) -> None:
        """Serve ``new`` from now on (the caller holds the lock, and no reference to the previous model): the
        previous model's memory goes back to the system."""
        switched = self._loaded is not None
        self._loaded, self._failed = new, None
        if switched:
            release_freed_memory()

    @staticmethod
    def _note_dropped(ready: LoadedModel, *, active: ModelVersion) -> None:
        """Say why a background load is not installed, when it is not merely a duplicate: another version was
        activated (or the held one again) while it ran. The same version loaded in line meanwhile is not news."""
        if ready.key != key_of(active):
            logger.info(
                "model version loaded in the background is no longer active; dropped",
                extra={"model_version": ready.version.name, "active": active.name},
            )

    def _note_load_failure(self, version: ModelVersion, *, serving: LoadedModel) -> None:
        """Keep serving ``serving`` and try ``version`` again after ``RELOAD_RETRY_SECONDS`` (the caller holds the
        lock, from within an ``except`` block: the traceback is logged)."""
        logger.exception(
            "active model version could not be loaded; still serving the previous one",
            extra={"model_version": version.name, "serving": serving.version.name},
        )
        self._failed, self._failed_at = key_of(version), time.monotonic()

    def _load_in_background(self, version: ModelVersion, *, serving: LoadedModel) -> None:
        """Load ``version`` in a thread while ``serving`` keeps classifying (the caller holds the lock)."""
        self._loading.add(key_of(version))
        logger.info(
            "newly active model version is being prepared in the background; still serving the previous one",
            extra={"model_version": version.name, "serving": serving.version.name},
        )
        threading.Thread(
            target=self._background_load, args=(version, self._generation), name="model-switch", daemon=True
        ).start()

    def _background_load(self, version: ModelVersion, generation: int) -> None:
        """Hand the loaded version to :meth:`current`, which installs it if it is still the active one: another may
        have been activated (or the held one again, a quick rollback) while it loaded, and a version no longer
        active must give no verdict (a live check activating two versions 2.5 s apart saw 18 uploads judged by the
        first when the load installed itself)."""
        new: LoadedModel | None = None
        try:
            new = self._load(version)
        except Exception:
            with self._lock:
                if generation == self._generation and self._loaded is not None:
                    self._note_load_failure(version, serving=self._loaded)
        finally:  # whatever happened: a version left marked as loading would never be switched to in this process
            with self._lock:
                self._loading.discard(key_of(version))
                if new is not None and generation == self._generation:
                    self._ready = new
                    self._checked_at = 0.0  # read the active version at the next prediction, and install it then

    def forget(self) -> None:
        """Drop the loaded model (tests; or to free memory)."""
        with self._lock:
            self._loaded = None
            self._checked_at = 0.0
            self._failed = None
            self._loading.clear()
            self._ready = None
            self._generation += 1

    @staticmethod
    def _load(version: ModelVersion) -> LoadedModel:
        started = time.perf_counter()
        model_dir = model_dir_of(version)
        _check_registered(version, model_dir)
        classifier = classifier_load(model_dir=model_dir)
        _check_registered(version, model_dir)  # the manifest may have been replaced while the model was built
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


def _check_registered(version: ModelVersion, model_dir: Path) -> None:
    """Refuse a version whose manifest on disk is not the one registered, or names another version: a small file's
    checksum, so a refused version costs no weight verification, no model and no export."""
    try:
        checksum = manifest_checksum(model_dir)
    except OSError as error:
        raise ModelLoadError(f"Model {version.name}: its manifest cannot be read ({error}).") from error
    if checksum != version.checksum:
        raise ModelLoadError(f"Model {version.name}: manifest on disk differs from the registered checksum.")
    named = read_manifest(model_dir).version
    if named != version.name:
        raise ModelLoadError(f"Model directory of {version.name} holds version {named}; refusing to mix them up.")


resident_model = ResidentModel()


def preload_on_first_request() -> None:
    """Without a broker the web process classifies itself, and its first upload waited for the model to load
    (~11 s on 2 cores with the shipped one). Load it in the background when the first request arrives (the page a
    person picks pictures on), so it is usually ready by the time they send one; the lock in
    :meth:`ResidentModel.current` makes an upload that comes sooner wait for this load, not start another.
    Wired by ``wsgi.py``; workers preload in ``celery.py``."""
    from django.core.signals import request_started

    def start_loading(**_: object) -> None:
        request_started.disconnect(dispatch_uid=_PRELOAD_UID)
        threading.Thread(target=_load_quietly, name="model-preload", daemon=True).start()

    request_started.connect(start_loading, weak=False, dispatch_uid=_PRELOAD_UID)


_PRELOAD_UID = "phoneapp.resident_model.preload"


def _load_quietly() -> None:
    """The preload: a failure is logged and left for the first upload to meet (and report) again."""
    from django.db import connection

    try:
        resident_model.current()
    except Exception:
        logger.exception("model could not be preloaded")
    finally:
        connection.close()  # this thread's own connection
