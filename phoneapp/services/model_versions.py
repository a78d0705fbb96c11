"""The registry of model versions: which exist, which one is active, registering and activating them."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from inference.contract import Classifier
from inference.export_cache import default_cache_dir
from inference.loader import export_missing, load, read_active_pointer, verify_model_dir
from inference.manifest import MANIFEST_NAME, ModelLoadError, manifest_checksum, read_manifest
from phoneapp.models import ModelVersion
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.services.errors import NoActiveModel
from phoneapp.serving_threads import serving_threads_default

logger = logging.getLogger(__name__)


def model_dir_of(version: ModelVersion) -> Path:
    """Absolute directory of a version; stored paths are relative to ``settings.MODELS_DIR``."""
    path = Path(version.path)
    return path if path.is_absolute() else Path(settings.MODELS_DIR) / path


def classifier_load(*, model_dir: Path, engine: str | None = None) -> Classifier:
    """The model in ``model_dir`` with this deployment's settings: engine (``engine`` overrides
    ``INFERENCE_ENGINE``; measurements ask for ``torch``), ``INFERENCE_THREADS`` (unset: this process's share of
    the cores, ``phoneapp/serving_threads.py``), ``INFERENCE_CACHE_DIR`` and
    ``MODELS_DIR`` (where a second opinion is found). Every process loads through here: the retrain's second
    opinion once wrote exports to ``~/.cache`` because its own call left the cache setting out."""
    return load(
        model_dir,
        engine=engine or settings.INFERENCE_ENGINE or None,
        threads=settings.INFERENCE_THREADS or serving_threads_default(),
        cache_dir=_inference_cache_dir(),
        models_root=Path(settings.MODELS_DIR),
    )


def classifier_export_missing(*, model_dir: Path) -> bool:
    """Would :func:`classifier_load` first have to convert the model in ``model_dir`` to ONNX (seconds of CPU)?"""
    return export_missing(
        model_dir,
        engine=settings.INFERENCE_ENGINE or None,
        cache_dir=_inference_cache_dir(),
        models_root=Path(settings.MODELS_DIR),
    )


def _inference_cache_dir() -> Path:
    return Path(settings.INFERENCE_CACHE_DIR) if settings.INFERENCE_CACHE_DIR else default_cache_dir()


def model_serving_prepare(*, model_dir: Path) -> None:
    """Load the model in ``model_dir`` as workers will, so that its checked ONNX export is in this machine's cache
    (``INFERENCE_CACHE_DIR``) before workers are pointed at it, and they take it at their next prediction.
    Otherwise each worker process converts it in the background (~16 s for a scene model on a busy 2-core machine)
    and serves the previous version meanwhile (``phoneapp/resident_model.py``). Called by ``manage.py
    activate_model`` and the retrain before they activate; workers on another machine, with their own cache, still
    convert it themselves. A failure is logged, not raised: the export only saves time, and a worker that cannot
    export serves with torch."""
    started = time.perf_counter()
    try:
        classifier = classifier_load(model_dir=model_dir)
    except Exception:
        logger.warning("could not prepare the model for serving", exc_info=True, extra={"model_dir": str(model_dir)})
        return
    logger.info(
        "model prepared for serving",
        extra={
            "model_dir": str(model_dir),
            "engine": classifier.engine,
            "prepare_ms": round((time.perf_counter() - started) * 1000),
        },
    )


def model_version_register(
    *,
    model_dir: Path,
    metrics: dict[str, Any] | None = None,
    data_summary: dict[str, Any] | None = None,
    activate: bool = False,
) -> ModelVersion:
    """Record the model in ``model_dir`` (its manifest names it) and optionally make it the active one."""
    manifest = read_manifest(model_dir)
    models_root = Path(settings.MODELS_DIR).resolve()
    resolved = model_dir.resolve()
    stored_path = str(resolved.relative_to(models_root)) if resolved.is_relative_to(models_root) else str(resolved)
    version = ModelVersion.objects.create(
        name=manifest.version,
        path=stored_path,
        checksum=manifest_checksum(model_dir),
        metrics=metrics if metrics is not None else manifest.metrics,
        data_summary=data_summary or {},
    )
    logger.info("model version registered", extra={"model_version": version.name, "path": stored_path})
    if activate:
        version = model_version_activate(version=version)
    return version


def model_version_verify(*, version: ModelVersion) -> None:
    """What a worker checks before loading ``version``, without loading it: its manifest is the one registered and
    every file it needs, its second opinion's included, is there and intact. Raises :class:`ModelLoadError`."""
    model_dir = model_dir_of(version)
    verify_model_dir(model_dir, models_root=Path(settings.MODELS_DIR))
    if manifest_checksum(model_dir) != version.checksum:
        raise ModelLoadError(f"Model {version.name}: manifest on disk differs from the registered checksum.")


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the only active model; workers switch to it at their next prediction (in the background
    where it must first be converted on their machine: phoneapp/resident_model.py).

    Every version row is locked first (a few rows): two activations at once then take turns instead of both
    switching and one failing on the one-active-version constraint (``select_for_update().update()`` locks
    nothing: the UPDATE is a query of its own)."""
    model_versions_lock()
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    logger.info("model version activated", extra={"model_version": version.name})
    return version


def model_version_activate_if_loadable(
    *, version: ModelVersion, prepare_export: bool, on_export_start: Callable[[], None] | None = None
) -> ModelVersion:
    """A person's activation (the admin's "Activate this version", ``manage.py activate_model``), one flow for both:
    :func:`model_version_activate` once :func:`model_version_verify` passed, so workers are never pointed at files
    they could not load. Raises :class:`ModelLoadError`, the active version unchanged.

    With ``prepare_export`` the version's ONNX export is first made in this machine's cache
    (:func:`model_serving_prepare`, seconds of CPU: for a shell, not a web request), after the files are verified
    (a version that cannot load is refused before the export) and before they are verified again (they may change
    during it). ``on_export_start`` is called just before an export is made, so a shell can say why it waits; not
    when this machine's cache already has it (or the engine needs none), when the load takes a moment: a shell
    said "Preparing ... ONNX export" on every activation, though the export is made once per machine."""
    model_version_verify(version=version)
    if prepare_export:
        if on_export_start is not None and classifier_export_missing(model_dir=model_dir_of(version)):
            on_export_start()
        model_serving_prepare(model_dir=model_dir_of(version))
        model_version_verify(version=version)
    return model_version_activate(version=version)


def model_versions_lock() -> int | None:
    """Lock every version row until the current transaction ends; returns the active version's id at that moment
    (callers that decided against an active version check it is still the one)."""
    rows = list(ModelVersion.objects.select_for_update().order_by("pk").values_list("pk", "is_active"))
    return next((pk for pk, active in rows if active), None)


def _natural_order(path: Path) -> list[int | str]:
    """Numbers in a version's folder name compare as numbers: scene-lite0-v9 is registered before -v10, so the
    registration times (the admin's newest-first list) follow the versions."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.parent.name)]


def model_versions_sync_from_disk() -> list[ModelVersion]:
    """Register every model directory under ``MODELS_DIR`` not yet known, and activate the shipped default.

    The default (named in ``MODELS_DIR/ACTIVE``) is activated when nothing is active yet, or when it was
    registered just now, i.e. a deploy shipped a new default model. Versions activated by people are kept.
    """
    root = Path(settings.MODELS_DIR)
    known = set(ModelVersion.objects.values_list("name", flat=True))
    registered: list[ModelVersion] = []
    for manifest_path in sorted(root.glob(f"*/{MANIFEST_NAME}"), key=_natural_order):
        try:
            manifest = read_manifest(manifest_path.parent)
        except ModelLoadError as error:
            logger.warning("skipping unreadable model directory", extra={"path": str(manifest_path), "error": error})
            continue
        if manifest.version in known:
            continue
        try:
            registered.append(model_version_register(model_dir=manifest_path.parent))
        except IntegrityError:  # another process registered it at the same moment
            continue
        known.add(manifest.version)
    try:
        default_name = read_active_pointer(root)
    except ModelLoadError:
        return registered
    nothing_active = model_version_active_or_none() is None
    newly_shipped = any(version.name == default_name for version in registered)
    if nothing_active or newly_shipped:
        default = ModelVersion.objects.filter(name=default_name).first()
        if default is not None:
            model_version_activate(version=default)
    return registered


def model_version_active() -> ModelVersion:
    """The active version; registers the shipped models first on a fresh database."""
    version = model_version_active_or_none()
    if version is None:
        model_versions_sync_from_disk()
        version = model_version_active_or_none()
    if version is None:
        raise NoActiveModel("No model version is active; run `python manage.py retrain` or activate one.")
    return version
