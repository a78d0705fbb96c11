"""Finding what storage and the database disagree on: files no upload names, and uploads whose picture is gone.

Deletes leave no orphans by themselves (``upload_deletion``, deleting a user included), but older versions did
(admin deletes and deleted users kept the files) and a storage error can leave one.

Deleting the uploads whose picture is missing takes their reviews with them, so :func:`storage_clean` refuses when
most uploads look missing: that is what an unmounted volume or a wrong ``MEDIA_ROOT`` looks like, not lost files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.files.storage import Storage
from django.utils import timezone

from phoneapp.models import Upload
from phoneapp.services.stored_files import file_names_in_use, stored_files_delete, upload_storage
from phoneapp.services.upload_deletion import uploads_delete

# The folders upload files are written under (models.upload_image_path, thumbnail_path, heatmap_path).
UPLOAD_FOLDERS = ("uploads", "thumbnails", "heatmaps")
# Above this share of uploads without a picture, storage is more likely unreachable than the pictures gone.
MOST_UPLOADS = 0.5


class StorageLooksUnmounted(Exception):
    """Most uploads' pictures are missing: deleting those uploads is refused (see the module docstring)."""


@dataclass
class StorageAudit:
    orphan_files: list[str] = field(default_factory=list)
    uploads_missing_picture: list[int] = field(default_factory=list)
    uploads_checked: int = 0

    @property
    def most_uploads_missing(self) -> bool:
        return len(self.uploads_missing_picture) > MOST_UPLOADS * self.uploads_checked


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
    checked = 0
    missing = []
    for upload_id, image in Upload.objects.order_by("pk").values_list("pk", "image").iterator():
        checked += 1
        if not image or not storage.exists(image):
            missing.append(upload_id)
    return StorageAudit(orphan_files=orphans, uploads_missing_picture=missing, uploads_checked=checked)


def storage_clean(*, audit: StorageAudit, even_if_most_missing: bool = False) -> StorageAudit:
    """Remove what ``audit`` found: the orphan files, and the uploads without a picture (with their other files).

    Raises :class:`StorageLooksUnmounted`, changing nothing, when most uploads look missing, unless
    ``even_if_most_missing``. Returns what could not be removed.
    """
    if audit.most_uploads_missing and not even_if_most_missing:
        raise StorageLooksUnmounted(
            f"{len(audit.uploads_missing_picture)} of {audit.uploads_checked} uploads have no picture in storage: "
            "is the media storage mounted, and MEDIA_ROOT (or the S3 bucket) the right one?"
        )
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
