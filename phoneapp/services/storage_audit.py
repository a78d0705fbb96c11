"""Finding what storage and the database disagree on: files no upload names, and uploads whose picture is gone.

Deletes leave no orphans by themselves (``upload_deletion``), but older versions did (admin deletes kept the
files), a storage error can leave one, and deleting a user deletes their rows without their files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.files.storage import Storage
from django.utils import timezone

from phoneapp.models import Upload
from phoneapp.services.upload_deletion import file_names_in_use, stored_files_delete, upload_storage, uploads_delete

# The folders upload files are written under (models.upload_image_path, thumbnail_path, heatmap_path).
UPLOAD_FOLDERS = ("uploads", "thumbnails", "heatmaps")


@dataclass
class StorageAudit:
    orphan_files: list[str] = field(default_factory=list)
    uploads_missing_picture: list[int] = field(default_factory=list)


def storage_audit(*, min_age: timedelta = timedelta(hours=1), now: datetime | None = None) -> StorageAudit:
    """List stored files no upload names, and uploads whose picture is not in storage. Changes nothing.

    Files younger than ``min_age`` are left out: an upload being saved writes its files a moment before its row
    is committed, and must not be mistaken for an orphan.
    """
    storage = upload_storage()
    newest = (now or timezone.now()) - min_age
    candidates = [name for name in _walk(storage) if _modified(storage, name) <= newest]
    in_use = file_names_in_use(candidates)
    orphans = sorted(name for name in candidates if name not in in_use)
    missing = [
        upload_id
        for upload_id, image in Upload.objects.order_by("pk").values_list("pk", "image").iterator()
        if not image or not storage.exists(image)
    ]
    return StorageAudit(orphan_files=orphans, uploads_missing_picture=missing)


def storage_clean(*, audit: StorageAudit) -> StorageAudit:
    """Remove what ``audit`` found: the orphan files, and the uploads without a picture (with their other files).

    Returns what could not be removed.
    """
    failed = stored_files_delete(names=audit.orphan_files)
    uploads_delete(uploads=Upload.objects.filter(pk__in=audit.uploads_missing_picture))
    return StorageAudit(orphan_files=failed)


def _walk(storage: Storage, folder: str = "") -> Iterator[str]:
    """Every file under the upload folders, through the storage API (works for local disk and S3 alike)."""
    for top in UPLOAD_FOLDERS if not folder else ():
        yield from _walk(storage, top)
    if not folder:
        return
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:  # nothing was ever written there (S3 answers an empty listing instead)
        return
    for name in files:
        yield f"{folder}/{name}"
    for directory in directories:
        yield from _walk(storage, f"{folder}/{directory}")


def _modified(storage: Storage, name: str) -> datetime:
    try:
        return storage.get_modified_time(name)
    except (NotImplementedError, OSError):
        return timezone.now()  # unknown: treat as new, i.e. never removed
