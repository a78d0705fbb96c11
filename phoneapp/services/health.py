"""Checking the services an upload needs: the database, the broker (when configured) and the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

from inference.manifest import ModelLoadError, manifest_checksum, read_manifest, verify_files
from phoneapp.models import ModelVersion
from phoneapp.services.model_versions import model_dir_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    database: str
    broker: str
    model: str
    model_version: str | None

    @property
    def healthy(self) -> bool:
        return self.database == "ok" and self.broker in ("ok", "not configured") and self.model == "ok"

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.healthy else "unavailable",
            "database": self.database,
            "broker": self.broker,
            "model": self.model,
            "model_version": self.model_version,
        }


def health_report(*, connection: BaseDatabaseWrapper) -> HealthReport:
    database = _check_database(connection)
    model, version = _check_model() if database == "ok" else ("unknown", None)
    return HealthReport(database=database, broker=_check_broker(), model=model, model_version=version)


def _check_database(connection: BaseDatabaseWrapper) -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("health check: database down")
        return "down"
    return "ok"


def _check_broker() -> str:
    if not settings.CELERY_BROKER_URL:
        return "not configured"
    from phoneapp.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        logger.exception("health check: broker down")
        return "down"
    return "ok"


def _check_model() -> tuple[str, str | None]:
    """``ok`` only if the active version's files are all there and match their checksums (what a worker
    checks before loading it); ``unavailable`` for a missing or corrupt model, without saying which file."""
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return "no active version", None
    model_dir = model_dir_of(version)
    try:
        stamp = _files_stamp(model_dir)
        if _verified_stamps.get(version.pk) != stamp:
            if manifest_checksum(model_dir) != version.checksum:
                raise ModelLoadError("manifest differs from the registered checksum")
            verify_files(model_dir, read_manifest(model_dir))
            _verified_stamps[version.pk] = stamp
    except (ModelLoadError, OSError):
        logger.exception("health check: model unavailable", extra={"model_version": version.name})
        return "unavailable", version.name
    return "ok", version.name


# Hashing model weights on every probe would be wasteful: a version is re-verified only when a file in its
# directory changes size or modification time.
_verified_stamps: dict[int, tuple[tuple[str, int, int], ...]] = {}


def _files_stamp(model_dir: Path) -> tuple[tuple[str, int, int], ...]:
    entries = sorted(path for path in model_dir.rglob("*") if path.is_file())
    return tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in entries)
