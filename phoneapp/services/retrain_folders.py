"""The folders a retrain keeps under ``MODELS_DIR`` besides the versions: the lock that lets one run at a time, the
scratch folder a run trains in (named after the version it reserves), and the scratch folders killed runs left.

Used by :mod:`phoneapp.services.retraining` and by ``manage.py clean_orphans``, which removes the leftovers
without training anything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.utils import timezone

from phoneapp.models import ModelVersion
from phoneapp.services.errors import RetrainError

RETRAIN_LOCK_NAME = ".retrain.lock"
# A run's scratch folder is this prefix and the version it reserves.
SCRATCH_PREFIX = ".incoming-"


@contextmanager
def retraining_alone(models_root: Path) -> Iterator[None]:
    """One retrain at a time per ``MODELS_DIR`` (``flock`` on its ``.retrain.lock``; the kernel releases it when a
    run dies): a cron run that started while the last was still training doubled both runs' time and registered
    two identical candidates. Holding the lock, it removes the scratch folders of runs that were killed
    (``.incoming-*``: with S3 storage they hold copies of users' pictures)."""
    import fcntl

    descriptor = os.open(models_root / RETRAIN_LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise RetrainError(
                f"Another retrain is running on {models_root}; this one did nothing. Run it again when that one ends."
            ) from error
        for leftover in retrain_scratch_leftovers(models_root=models_root):
            shutil.rmtree(leftover, ignore_errors=True)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def retrain_scratch_leftovers(*, models_root: Path) -> list[Path]:
    """The retrain scratch folders (``.incoming-*``) under ``models_root``: a running retrain's own, or ones killed
    runs left. With S3 storage they hold copies of the pictures a run read, pictures deleted since included."""
    return sorted(models_root.glob(f"{SCRATCH_PREFIX}*"))


def retrain_scratch_leftovers_remove(*, models_root: Path) -> list[Path]:
    """Remove the scratch folders killed retrains left, as the next retrain would when it starts (``manage.py
    clean_orphans --delete``: a retrain may not run again for weeks, and their copies of users' pictures must not
    wait for it). Returns the folders removed. Raises :class:`RetrainError`, removing nothing, while a retrain is
    running: one of them is its own."""
    leftovers = retrain_scratch_leftovers(models_root=models_root)
    with retraining_alone(models_root):  # removes them, holding the lock a running retrain holds
        pass
    return [path for path in leftovers if not path.exists()]


@contextmanager
def new_version_scratch(models_root: Path) -> Iterator[tuple[str, Path]]:
    """A name for the new version (``retrain-YYYYMMDD-HHMMSS``, with ``-2``, ``-3``... when taken) and a scratch
    folder reserving it, removed afterwards. A version finished this second keeps its name: this one takes the
    next."""
    stamp = timezone.now().strftime("retrain-%Y%m%d-%H%M%S")
    for attempt in range(1, 100):
        version = stamp if attempt == 1 else f"{stamp}-{attempt}"
        if (models_root / version).exists() or ModelVersion.objects.filter(name=version).exists():
            continue
        scratch = models_root / f"{SCRATCH_PREFIX}{version}"
        try:
            scratch.mkdir()
        except FileExistsError:
            continue
        try:
            yield version, scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    raise RetrainError(f"No free version name after {stamp}-99; remove unused model folders.")
