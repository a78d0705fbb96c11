"""Checking what an upload needs: the database, the broker and a live worker (when configured), the model, and
storage with room to write."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db.backends.base.base import BaseDatabaseWrapper

from inference.loader import second_opinion_dir
from inference.manifest import ModelLoadError, read_manifest
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.services.dispatch import broker_configured
from phoneapp.services.model_versions import model_dir_of, model_version_verify
from phoneapp.services.worker_presence import queue_depth, workers_alive

logger = logging.getLogger(__name__)

# The parts whose failure this process has logged and whose recovery it has not. A load balancer probes every few
# seconds: an outage is logged (ERROR, with its traceback where an exception caused it) when this process first
# sees it and once more when it ends (INFO), not once per probe (the probes in between log at DEBUG). Django's own
# "Service Unavailable: /healthz" line is dropped for the same reason (log_format.UnhealthyProbesNotLogged).
_failures_logged: set[str] = set()
# States that say nothing about a part's health: it was not looked at in this probe.
_NOT_LOOKED_AT = frozenset({"not checked", "unknown"})


def _cause_log(part: str, state: str, **extra: str) -> None:
    """From a check's ``except`` block: log the exception behind ``part``'s failure the first time (ERROR with the
    traceback), DEBUG while it lasts; :func:`_outages_log` then knows it is said."""
    if part in _failures_logged:
        logger.debug("health check: %s still %s", part, state, extra=extra)
        return
    _failures_logged.add(part)
    logger.exception("health check: %s %s", part, state, extra=extra)


def _outages_log(report: HealthReport) -> None:
    """Log each failing part once when it starts (an ERROR; those without an exception, such as a missing media
    folder or no live worker, are said here) and once when a probe finds it working again."""
    failing = set(report.failing)
    for part, state in report.parts.items():
        if part in failing and part not in _failures_logged:
            _failures_logged.add(part)
            logger.error("health check: %s %s", part, state)
        elif part not in failing and part in _failures_logged and state not in _NOT_LOOKED_AT:
            _failures_logged.discard(part)
            logger.info("health check: %s ok again", part)


@dataclass(frozen=True)
class HealthReport:
    """One word per part (``ok``, ``down``, ``unavailable``, ``unwritable``, ``low``, ``not configured``, ...),
    never an error text, host or path. ``failing`` names the parts that make the deployment unhealthy."""

    database: str
    broker: str
    model: str
    model_version: str | None
    worker: str = "not checked"
    workers_alive: int | None = None
    storage: str = "not checked"
    free_space_mb: int | None = None
    queue_depth: dict[str, int] | None = None

    @property
    def parts(self) -> dict[str, str]:
        """Each part's state word by the part's name (the names ``failing`` lists)."""
        return {
            "database": self.database,
            "broker": self.broker,
            "model": self.model,
            "worker": self.worker,
            "storage": self.storage,
        }

    @property
    def failing(self) -> list[str]:
        failing = []
        if self.database != "ok":
            failing.append("database")
        if self.broker not in ("ok", "not configured", "not checked"):
            failing.append("broker")
        # "unknown": the database that names the active version is down, and is named itself.
        if self.model not in ("ok", "unknown", "not checked"):
            failing.append("model")
        if self.worker not in ("ok", "not configured", "not checked", "unknown"):
            failing.append("worker")
        if self.storage not in ("ok", "not checked"):
            failing.append("storage")
        return failing

    @property
    def healthy(self) -> bool:
        return not self.failing

    def as_dict(self, *, figures: bool) -> dict[str, object]:
        """The state words; with ``figures`` also the active version, live workers, free space and (deep probe)
        queue depth, which the edge shows to staff only."""
        report: dict[str, object] = {
            "status": "ok" if self.healthy else "unavailable",
            "failing": self.failing,
            **self.parts,
        }
        if not figures:
            return report
        report |= {
            "model_version": self.model_version,
            "workers_alive": self.workers_alive,
            "free_space_mb": self.free_space_mb,
        }
        if self.queue_depth is not None:
            report["queue_depth"] = self.queue_depth
        return report


def health_report(*, connection: BaseDatabaseWrapper, deep: bool = False, web_only: bool = False) -> HealthReport:
    """Can this deployment take and classify uploads? The quick form checks the database, the broker, the model's
    files, the workers' heartbeats and local storage (its folder, free space and a probe file written and deleted);
    ``deep`` also writes the probe file through any other storage API (S3) and reads the queue depth. A successful
    write is trusted for :data:`WRITE_PROBE_INTERVAL_SECONDS`.

    ``web_only``: can this web process take uploads (the database and storage, and the model when there is no
    broker, since the web process then classifies; the rest "not checked")? What a load balancer should poll:
    with the broker or every worker down, uploads are still taken and wait as pending, so taking the web processes
    out of service then would refuse them for nothing.

    Each failing part is logged when this process first finds it and when it works again (:func:`_outages_log`)."""
    report = _report(connection=connection, deep=deep, web_only=web_only)
    _outages_log(report)
    return report


def _report(*, connection: BaseDatabaseWrapper, deep: bool, web_only: bool) -> HealthReport:
    database = _check_database(connection)
    if web_only:
        storage, free_mb = _check_storage(deep=deep)
        in_process = not broker_configured() and database == "ok"
        model, version = _check_model() if in_process else ("not checked", None)
        return HealthReport(
            database=database,
            broker="not checked",
            model=model,
            model_version=version,
            storage=storage,
            free_space_mb=free_mb,
        )
    model, version = _check_model() if database == "ok" else ("unknown", None)
    broker = _check_broker()
    worker, alive = (
        _check_worker()
        if broker == "ok"
        else (("not configured", None) if broker == "not configured" else ("unknown", None))
    )
    storage, free_mb = _check_storage(deep=deep)
    return HealthReport(
        database=database,
        broker=broker,
        model=model,
        model_version=version,
        worker=worker,
        workers_alive=alive,
        storage=storage,
        free_space_mb=free_mb,
        queue_depth=queue_depth() if deep and broker == "ok" else None,
    )


def _check_worker() -> tuple[str, int | None]:
    """``ok`` when at least one worker's heartbeat is fresh (phoneapp/services/worker_presence.py), ``down``
    when none is; ``unknown`` on a broker that is not Redis (no heartbeats there)."""
    alive = workers_alive()
    if alive is None:
        return "unknown", None
    return ("ok" if alive else "down"), len(alive)


def _check_storage(*, deep: bool) -> tuple[str, int | None]:
    """``missing`` when the local ``MEDIA_ROOT`` folder does not exist, ``unwritable`` when a picture could not be
    stored now, ``low`` when the media volume has less than ``HEALTH_MIN_FREE_MB`` left; the free space itself in MB
    (local storage only)."""
    from django.core.files.storage import FileSystemStorage, default_storage

    free_mb: int | None = None
    local = isinstance(default_storage, FileSystemStorage)
    if local:
        root = Path(settings.MEDIA_ROOT)
        if not root.is_dir():
            # Said as such (it read "unwritable"), and not made here: a MEDIA_ROOT on a volume that is not mounted
            # would be made on the system disk, and pictures would fill it unseen. The deploy makes it (README).
            return "missing", None
        try:
            usage = shutil.disk_usage(root)
        except OSError:
            return "unwritable", None
        free_mb = usage.free // (1024 * 1024)
    if (local or deep) and not _written_lately(default_storage):
        # A real write: os.access says nothing about a read-only mount, a full disk, or root's rights.
        try:
            name = default_storage.save(f"healthz/{uuid.uuid4().hex}.probe", ContentFile(b"ok"))
            default_storage.delete(name)
        except Exception:
            _cause_log("storage", "unwritable")
            return "unwritable", free_mb
        _storage_written_at[_storage_key(default_storage)] = _clock()
    if free_mb is not None and free_mb < settings.HEALTH_MIN_FREE_MB:
        return "low", free_mb
    return "ok", free_mb


# ``/healthz`` is public: without a limit, anyone could make each web process write (and, on S3, pay for) a file
# per request. A successful write is trusted for this long per storage; a failed one is tried again at every probe,
# so a recovery is seen at once, and a volume that turns read-only is seen within this many seconds.
WRITE_PROBE_INTERVAL_SECONDS = 5.0
# When each storage (by :func:`_storage_key`) last took a probe file in this process, on the monotonic clock.
_storage_written_at: dict[str, float] = {}
_clock = time.monotonic


def _storage_key(storage: object) -> str:
    """A storage by its class and its folder or bucket: settings that move ``MEDIA_ROOT`` get a probe of their own."""
    where = getattr(storage, "location", None) or getattr(storage, "bucket_name", None) or ""
    return f"{storage.__class__.__qualname__}:{where}"


def _written_lately(storage: object) -> bool:
    written_at = _storage_written_at.get(_storage_key(storage))
    return written_at is not None and _clock() - written_at < WRITE_PROBE_INTERVAL_SECONDS


def _check_database(connection: BaseDatabaseWrapper) -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        _cause_log("database", "down")
        return "down"
    return "ok"


def _check_broker() -> str:
    if not broker_configured():
        return "not configured"
    from phoneapp.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        _cause_log("broker", "down")
        return "down"
    return "ok"


def _check_model() -> tuple[str, str | None]:
    """``ok`` only if the active version's files, and its second opinion's, are all there and match their
    checksums (what a worker checks before loading it); ``unavailable`` for a missing or corrupt model, without
    saying which file."""
    version = model_version_active_or_none()
    if version is None:
        return "no active version", None
    try:
        stamp = _model_stamp(model_dir_of(version))
        if _verified_stamps.get(version.pk) != stamp:
            model_version_verify(version=version)
            _verified_stamps[version.pk] = stamp
    except (ModelLoadError, OSError):
        _cause_log("model", "unavailable", model_version=version.name)
        return "unavailable", version.name
    return "ok", version.name


# Hashing model weights on every probe would be wasteful: a version is re-verified only when a file in its
# directory changes size or modification time.
_verified_stamps: dict[int, tuple[tuple[str, int, int], ...]] = {}


def _model_stamp(model_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """The files of a model directory and of the second opinion its manifest names, if any."""
    manifest = read_manifest(model_dir)
    stamp = _files_stamp(model_dir)
    if manifest.second_opinion is not None:
        stamp += _files_stamp(second_opinion_dir(model_dir, manifest, models_root=Path(settings.MODELS_DIR)))
    return stamp


def _files_stamp(model_dir: Path) -> tuple[tuple[str, int, int], ...]:
    entries = sorted(path for path in model_dir.rglob("*") if path.is_file())
    return tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in entries)
