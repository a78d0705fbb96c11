"""Removing upload files from storage: at once, and again later when the storage refuses.

A file goes when no upload row names it any more: a deleted upload's (``phoneapp/services/upload_deletion.py``), or
one a worker or a request wrote for an upload deleted meanwhile, or for a run that lost a race (a thumbnail, a heat
map). Kept apart from the deletion of rows so the services that write those files can remove them without
importing the deletion's own dependencies (uploads, classification: an import circle).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.core.files.storage import Storage

from phoneapp.models import Upload
from phoneapp.services.dispatch import enqueue
from phoneapp.services.errors import StorageUnavailable
from phoneapp.tasks import stored_files_delete_task

logger = logging.getLogger(__name__)

# Every field of an upload that names a file in storage.
FILE_FIELDS = ("image", "thumbnail", "heatmap")
# Names per query when asking which are in use: keeps the IN lists small.
BATCH_SIZE = 500


def upload_storage() -> Storage:
    """The storage every upload file lives in (local disk, S3, ...): always reached through its API."""
    return Upload._meta.get_field("image").storage


def file_names_in_use(names: Iterable[str]) -> set[str]:
    """Which of ``names`` an upload row still names (as its picture, thumbnail or heat map)."""
    names = list(names)
    in_use: set[str] = set()
    for start in range(0, len(names), BATCH_SIZE):
        batch = names[start : start + BATCH_SIZE]
        for field in FILE_FIELDS:
            in_use.update(Upload.objects.filter(**{f"{field}__in": batch}).values_list(field, flat=True))
    return in_use


def stored_files_delete(*, names: Sequence[str]) -> list[str]:
    """Remove these files from storage; returns the ones that could not be removed (logged, left in place)."""
    storage = upload_storage()
    failed = []
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("stored file could not be deleted", extra={"file_name": name})
            failed.append(name)
    return failed


def stored_files_delete_unused(*, names: Sequence[str]) -> int:
    """Remove those of ``names`` that no upload names (the ``stored_files_delete_task``'s work: files of deleted
    uploads the storage refused to remove at the deletion). Returns how many were removed; raises
    :class:`StorageUnavailable` when some still cannot be, for the task to try again later."""
    unused = sorted(set(names) - file_names_in_use(names))
    failed = stored_files_delete(names=unused)
    if failed:
        raise StorageUnavailable(f"{len(failed)} files of deleted uploads could not be removed from storage.")
    return len(unused)


def stored_files_deletion_given_up(*, names: Sequence[str]) -> None:
    """Say which deleted uploads' files are still stored after every try: pictures their owners deleted, which only
    an operator can remove now."""
    still_stored = [name for name in sorted(set(names) - file_names_in_use(names)) if _maybe_stored(name)]
    if still_stored:
        logger.error(
            "files of deleted uploads are still stored after every try; remove them with "
            "'manage.py clean_orphans --delete'",
            extra={"count": len(still_stored), "file_names": still_stored},
        )


def _maybe_stored(name: str) -> bool:
    try:
        return bool(upload_storage().exists(name))
    except Exception:  # a storage that cannot say: counted as still there, so an operator looks
        return True


def stored_files_discard(*, names: Sequence[str]) -> None:
    """Remove files no upload names any more: a deleted upload's, or one a worker or a request wrote for an upload
    deleted meanwhile (or for a run that lost a race). One the storage refuses now is tried again by
    ``stored_files_delete_task`` and reported if it never goes: a deletion the owner was told is done must not end
    at a passing storage error (an S3 5xx, throttling)."""
    failed = stored_files_delete(names=names)
    if failed:
        enqueue(stored_files_delete_task, kwargs={"names": failed})
