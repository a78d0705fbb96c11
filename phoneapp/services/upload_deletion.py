"""Deleting uploads: the row and its stored files go together, from every door (page, API, admin, retention).

Files shared by a duplicate (the same picture sent twice by its owner shares one stored picture, thumbnail and
heat map: ``phoneapp/services/uploads.py``) stay until the last upload using them is deleted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from phoneapp.models import Upload
from phoneapp.services.stored_files import FILE_FIELDS, file_names_in_use, stored_files_discard
from phoneapp.services.upload_requests import upload_requests_forget_uploads

logger = logging.getLogger(__name__)

# Rows deleted per transaction: keeps each write short (SQLite has one writer at a time) and the IN lists small.
BATCH_SIZE = 500


def upload_delete(*, upload: Upload) -> None:
    """Delete one upload, and its files once the deletion is committed (see :func:`uploads_delete`)."""
    uploads_delete(uploads=Upload.objects.filter(pk=upload.pk))


def uploads_delete(*, uploads: QuerySet[Upload]) -> int:
    """Delete these uploads; once each deletion is committed, remove their files that no remaining upload uses.

    Files go only after the commit, so a rollback leaves rows and files as they were, and never leaves a row
    without its picture. A file the storage refuses to remove then is logged and tried again by a task for ~37
    minutes (:func:`phoneapp.services.stored_files.stored_files_discard`); one still there after that is logged
    as an error for ``manage.py clean_orphans --delete``.
    Reviewed labels go with their rows, so they leave the evaluation and training sets; API idempotency keys that
    made them forget their pictures' fingerprint (:func:`upload_requests_forget_uploads`). Returns how many uploads
    were deleted.
    """
    # In id order, the order in which every writer of several uploads locks them (services/upload_locks.py): a
    # caller's transaction around the batches (an account's deletion) holds each batch's locks until it ends, and
    # batches cut in the order the database found the rows (not id order once rows were updated) held a newer copy
    # of a picture while waiting for an older one a decision held: a deadlock.
    upload_ids = list(uploads.order_by("pk").values_list("pk", flat=True))
    deleted = 0
    for start in range(0, len(upload_ids), BATCH_SIZE):
        batch = upload_ids[start : start + BATCH_SIZE]
        with transaction.atomic():
            # Locked as read: a thumbnail or heat map named on a row between this read and the delete (a worker's
            # verdict, a heat map drawn on request) would be left on disk by a deletion that never saw its name.
            # Locked, such a write waits for the deletion to commit, finds no row and removes its file itself.
            locked = Upload.objects.select_for_update().filter(pk__in=batch).order_by("pk")
            rows = list(locked.values_list("owner_id", *FILE_FIELDS))
            names = {name for row in rows for name in row[1:] if name}
            count, _ = Upload.objects.filter(pk__in=batch).delete()
            upload_requests_forget_uploads(owner_ids={row[0] for row in rows}, upload_ids=batch)
            deleted += count
            transaction.on_commit(partial(_files_delete_unused, names=names))
    if deleted:
        logger.info("uploads deleted", extra={"count": deleted})
    return deleted


def uploads_delete_all_of(*, owner: AbstractBaseUser, up_to_id: int) -> int:
    """Delete every upload of ``owner`` up to ``up_to_id`` (the newest one the owner was shown when they asked),
    with their files: pictures sent after the confirmation page, from another tab or a script, are not deleted
    unseen. Returns how many were deleted."""
    return uploads_delete(uploads=Upload.objects.filter(owner_id=owner.pk, pk__lte=up_to_id))


def uploads_delete_expired(*, now: datetime | None = None) -> int:
    """Delete every upload older than ``RETENTION_DAYS`` days (through :func:`uploads_delete`); 0 = keep forever.

    Returns how many were deleted.
    """
    days = settings.RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = uploads_delete(uploads=Upload.objects.filter(created__lt=cutoff))
    logger.info("retention: old uploads deleted", extra={"count": deleted, "retention_days": days})
    return deleted


def _files_delete_unused(*, names: set[str]) -> None:
    # Checked after the commit, not before: a duplicate of this picture uploaded meanwhile keeps the file.
    stored_files_discard(names=sorted(names - file_names_in_use(names)))
