"""Finding model versions and loading one: the single way to get a classifier (:func:`load`).

Layout: ``<root>/<version>/manifest.json`` plus the files it lists, and ``<root>/ACTIVE`` naming the version
used when nobody asks for a specific one (the command-line tool; the web app's database overrides it).

:func:`load` verifies every file, then picks the engine: ONNX Runtime on the version's checked export (made once
by a child process and cached, so a serving process never imports torch), or eager PyTorch. It never fails
because of the fast path: a cached export that is not this version's or does not run is made again, once; if the
export cannot be made, or ONNX Runtime is missing, it falls back to PyTorch and says why in the log.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from inference.base import DEFAULT_MAX_BATCH, BaseClassifier
from inference.contract import ONNXRUNTIME, TORCH, Classifier
from inference.export_cache import (
    EXPORT_KEY_PROPERTY,
    cached_export_path,
    clear_failed_export,
    default_cache_dir,
    discard,
    exporting_alone,
    failed_export,
    record_failed_export,
    touch,
)
from inference.manifest import ModelLoadError, ModelManifest, manifest_checksum, read_manifest, verify_files
from inference.onnx_engine import (
    AccelerationUnavailable,
    OnnxClassifier,
    new_session,
    onnxruntime_available,
)
from inference.runtime import default_threads

logger = logging.getLogger(__name__)

ACTIVE_POINTER = "ACTIVE"
MODELS_DIR_ENV = "PHONECHECK_MODELS_DIR"
ENGINES = (TORCH, ONNXRUNTIME)
# A cold export (torch import, network build, trace, check) takes 5-15 s on this machine; this is a hang.
EXPORT_TIMEOUT_S = 600


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


def engine_for(manifest: ModelManifest, requested: str | None = None) -> str:
    """The engine to run: ``requested`` if given, else the manifest's ``options.engine``, else the fastest installed."""
    name = (requested or manifest.options.get("engine") or "").strip().lower()
    if not name or name == "auto":
        return ONNXRUNTIME if onnxruntime_available() else TORCH
    if name not in ENGINES:
        raise ValueError(f"Unknown inference engine {name!r}; choose one of {', '.join(ENGINES)} or 'auto'.")
    return name


def load(
    model_dir: str | os.PathLike[str],
    *,
    engine: str | None = None,
    threads: int | None = None,
    cache_dir: Path | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    models_root: Path | None = None,
) -> Classifier:
    """The model in ``model_dir``, verified against its manifest, on the engine :func:`engine_for` picks.

    A model whose manifest asks for a second opinion gets the model version it names from ``models_root`` (default:
    the folder ``model_dir`` is in), on the engine asked for (or its own).

    ``threads``: intra-op threads of the engine (default ``$PHONECHECK_TORCH_THREADS`` or 2). ``cache_dir`` holds
    checked exports (default :func:`~inference.export_cache.default_cache_dir`). Raises :class:`ModelLoadError`
    with a readable reason for a missing, corrupt or unknown model; never for the fast path.
    """
    directory = Path(model_dir)
    manifest = verify_model_dir(directory, models_root=models_root)
    threads = threads or default_threads()
    classifier = _load_verified(
        directory, manifest, engine=engine, threads=threads, cache_dir=cache_dir, max_batch=max_batch
    )
    if manifest.second_opinion is not None:
        member_dir = second_opinion_dir(directory, manifest, models_root=models_root)
        classifier.second_opinion = _load_verified(
            member_dir,
            read_manifest(member_dir, to_run=True),
            engine=engine,
            threads=threads,
            cache_dir=cache_dir,
            max_batch=max_batch,
        )
    return classifier


def export_missing(
    model_dir: str | os.PathLike[str],
    *,
    engine: str | None = None,
    cache_dir: Path | None = None,
    models_root: Path | None = None,
) -> bool:
    """Would :func:`load` (same arguments) first have to make an ONNX export, for the model or its second opinion?

    That costs seconds of CPU (~16 s for a scene model on 2 cores), which a process switching to a newly active
    version spends in the background while it serves its current one. Reads manifests only; one that cannot be
    read says ``False``, and :func:`load` raises the reason."""
    directory = Path(model_dir)
    cache = cache_dir or default_cache_dir()
    try:
        manifest = read_manifest(directory, to_run=True)
        manifests = [manifest]
        if manifest.second_opinion is not None:
            manifests.append(
                read_manifest(second_opinion_dir(directory, manifest, models_root=models_root), to_run=True)
            )
        engines = [engine_for(each, engine) for each in manifests]
    except (ModelLoadError, OSError, ValueError):
        return False
    return any(
        name == ONNXRUNTIME and not cached_export_path(cache, each).is_file()
        for each, name in zip(manifests, engines, strict=True)
    )


def verify_model_dir(directory: Path, *, models_root: Path | None = None) -> ModelManifest:
    """The manifest of the model in ``directory`` once every file it needs checks out, its second opinion's too.

    What :func:`load` checks before loading, and what a health probe or an activation checks without loading.
    Raises :class:`ModelLoadError` with a readable reason.
    """
    if not directory.is_dir():
        raise ModelLoadError(f"Model directory {directory} does not exist.")
    manifest = read_manifest(directory, to_run=True)
    verify_files(directory, manifest)
    if manifest.second_opinion is not None:
        _verify_second_opinion(second_opinion_dir(directory, manifest, models_root=models_root), manifest)
    return manifest


def second_opinion_dir(directory: Path, manifest: ModelManifest, *, models_root: Path | None = None) -> Path:
    """Where the version ``manifest`` asks for a second opinion lives: beside it, unless ``models_root`` says."""
    assert manifest.second_opinion is not None
    return Path(models_root or directory.parent) / manifest.second_opinion.model


def _verify_second_opinion(member_dir: Path, manifest: ModelManifest) -> None:
    """Refused unless the member's manifest is the one pinned (a retrained or recalibrated namesake would change
    the verdicts measured) and its files check out."""
    spec = manifest.second_opinion
    assert spec is not None
    if not member_dir.is_dir():
        raise ModelLoadError(
            f"Model {manifest.version} asks {spec.model} for a second opinion, and {member_dir} does not exist."
        )
    member_manifest = read_manifest(member_dir, to_run=True)
    if member_manifest.second_opinion is not None:
        raise ModelLoadError(f"Model {manifest.version}: its second opinion {spec.model} must decide alone.")
    if manifest_checksum(member_dir) != spec.manifest_sha256:
        raise ModelLoadError(
            f"Model {manifest.version}: {spec.model} is not the version it was measured with (its manifest's "
            f"sha256 should be {spec.manifest_sha256[:12]}…)."
        )
    verify_files(member_dir, member_manifest)


def _load_verified(
    directory: Path,
    manifest: ModelManifest,
    *,
    engine: str | None,
    threads: int,
    cache_dir: Path | None,
    max_batch: int,
) -> BaseClassifier:
    """The classifier of a model directory whose files were verified, on the engine :func:`engine_for` picks."""
    try:
        name = engine_for(manifest, engine)
    except ValueError as error:
        logger.warning("inference engine not understood, using torch", extra={"error": str(error)})
        name = TORCH
    if name == ONNXRUNTIME:
        started = time.perf_counter()
        try:
            classifier = _from_export(directory, manifest, threads=threads, cache_dir=cache_dir, max_batch=max_batch)
        except AccelerationUnavailable as error:
            logger.warning(
                "fast inference path unavailable, using eager fp32 torch",
                extra={"model_version": manifest.version, "error": str(error)},
            )
        else:
            logger.info(
                "fast inference path ready",
                extra={
                    "model_version": manifest.version,
                    "engine": ONNXRUNTIME,
                    "threads": threads,
                    "cached": classifier.from_cache,
                    "prepare_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return classifier
    from inference.runtime import configure_torch_threads
    from inference.torch_engine import build_torch_classifier

    configure_torch_threads(threads)
    return build_torch_classifier(manifest, directory, max_batch=max_batch)


def _from_export(
    directory: Path, manifest: ModelManifest, *, threads: int, cache_dir: Path | None, max_batch: int
) -> OnnxClassifier:
    """The classifier on the version's cached export, made first if missing.

    A cached file that is not this version's export (another model's copied under its name, one cut short) or does
    not run is deleted and exported again, once: kept, it would send every later start to eager torch for good.
    """
    cache = cache_dir or default_cache_dir()
    path = cached_export_path(cache, manifest)
    opened = _open_cached(path, directory, manifest, threads=threads, max_batch=max_batch, discard_unusable=False)
    if opened is not None:  # the usual start: no lock, so processes starting together do not wait in line
        return opened
    failure_before = failed_export(path)
    with exporting_alone(path):  # the other processes of the machine wait for this one's export, then find it
        opened = _open_cached(path, directory, manifest, threads=threads, max_batch=max_batch, discard_unusable=True)
        if opened is not None:  # made by another process while this one waited
            return opened
        failure = failed_export(path)
        if failure is not None and failure != failure_before:
            raise AccelerationUnavailable(f"another process's export failed while this one waited: {failure[1]}")
        # Made and opened under the lock: an export that is written but will not open is a failure the waiting
        # processes must learn of too, or each would discard it and export again in turn.
        try:
            export_to_cache(directory, path.parent)
            if not path.is_file():
                raise AccelerationUnavailable(f"the export process wrote no {path.name} (is {path.parent} writable?)")
            classifier = _open_export(path, directory, manifest, threads=threads, max_batch=max_batch, from_cache=False)
        except AccelerationUnavailable as error:
            record_failed_export(path, str(error))
            raise
        clear_failed_export(path)
    touch(path)
    return classifier


def _open_cached(
    path: Path, directory: Path, manifest: ModelManifest, *, threads: int, max_batch: int, discard_unusable: bool
) -> OnnxClassifier | None:
    """The classifier on the cached export at ``path``, or None when there is none or it is unusable (deleted, when
    ``discard_unusable``: only under the export lock, so no process deletes a file another has just written)."""
    if not path.is_file():
        return None
    try:
        classifier = _open_export(path, directory, manifest, threads=threads, max_batch=max_batch, from_cache=True)
    except AccelerationUnavailable as error:
        if discard_unusable:
            logger.warning(
                "cached export unusable, exporting again",
                extra={"model_version": manifest.version, "path": str(path), "error": str(error)},
            )
            discard(path)
        return None
    touch(path)
    return classifier


def _open_export(
    path: Path, directory: Path, manifest: ModelManifest, *, threads: int, max_batch: int, from_cache: bool
) -> OnnxClassifier:
    """The classifier on the export at ``path`` once it proves to be what its name says (the key stamped in it by
    :func:`inference.export.stamped`) and runs on this version's input; else :class:`AccelerationUnavailable`."""
    session = new_session(path, threads=threads)
    stamp = session.get_modelmeta().custom_metadata_map.get(EXPORT_KEY_PROPERTY)
    if stamp != path.stem:
        raise AccelerationUnavailable(f"{path.name} is not the export it is filed as (its stamp: {stamp or 'none'})")
    classifier = OnnxClassifier(manifest, directory, session, max_batch=max_batch, from_cache=from_cache)
    classifier.warm_up()
    return classifier


def export_to_cache(model_dir: Path, cache_dir: Path) -> None:
    """Make the checked export: here if this process already imported torch, else in a child process."""
    if "torch" in sys.modules:
        from inference.export import export_model_dir

        try:
            export_model_dir(model_dir, cache_dir)
        except ModelLoadError as error:
            raise AccelerationUnavailable(str(error)) from error
        return
    export_in_child_process(model_dir, cache_dir)


def export_in_child_process(model_dir: Path, cache_dir: Path, *, timeout: float = EXPORT_TIMEOUT_S) -> None:
    """Run ``python -m inference.export MODEL_DIR --cache-dir DIR`` and wait for it: torch stays in the child."""
    command = [sys.executable, "-m", "inference.export", str(model_dir), "--cache-dir", str(cache_dir)]
    try:
        finished = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AccelerationUnavailable(f"the export process did not finish: {error}") from error
    if finished.returncode != 0:
        reason = (finished.stderr or finished.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AccelerationUnavailable(f"the export process failed: {reason[0]}")
