"""Writing an upload's files, and reading its picture back for a model, through Django's storage API (local disk
or S3 alike)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage
from django.db.models.fields.files import FieldFile
from PIL import Image

from inference.images import open_image
from phoneapp.models import Upload
from phoneapp.services.errors import StorageUnavailable

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from inference.contract import Classifier


def stored_picture_for(
    upload: Upload, classifier: Classifier, *, at_least: tuple[int, int] | None = None
) -> Image.Image:
    """Decode the stored picture with the upload pixel limit, JPEG-drafted to the classifier's input size (or to
    ``at_least``, when that is larger: the worker draws the thumbnail from the same decode).

    Raises :class:`inference.images.ImageError` or :class:`OSError` when the stored file is damaged or gone.
    """
    draft_size = classifier.manifest.preprocessing.draft_size
    if at_least is not None:
        draft_size = (max(draft_size[0], at_least[0]), max(draft_size[1], at_least[1]))
    with upload.image.open("rb") as handle:
        return open_image(handle, max_pixels=settings.UPLOAD_MAX_PIXELS, draft_size=draft_size)


def stored_file_write(*, field_file: FieldFile, filename: str, content: File) -> str:
    """Write ``content`` under a new name for ``field_file`` (its ``upload_to`` decides it) and point the field at it.

    Either the whole file is written and named by the field, or nothing is left in storage: a write that fails
    part-way (disk full, quota, storage gone) used to leave a created-but-partial file whose name the caller never
    learnt, so no clean-up could remove it. Raises :class:`StorageUnavailable` then. Returns the stored name.
    """
    field = field_file.field
    # upload_to gives a fresh random name, so a file already under it cannot exist: if it does now, it is ours.
    name = field.generate_filename(field_file.instance, filename)
    storage = field_file.storage
    if isinstance(storage, FileSystemStorage) and not Path(storage.location).is_dir():
        # Saving would make the folder (Django does), and on a volume that is not mounted, or a restore not put
        # back yet, pictures would land on the system disk unseen; /healthz says "missing" for the same reason.
        logger.error("storage folder missing", extra={"file_name": name, "media_root": storage.location})
        raise StorageUnavailable()
    try:
        stored_name = storage.save(name, content, max_length=field.max_length)
    except Exception as error:
        logger.error("storage write failed", extra={"file_name": name, "error": error})
        try:
            storage.delete(name)
        except Exception:
            logger.exception("could not remove the partly written file", extra={"file_name": name})
        raise StorageUnavailable() from error
    setattr(field_file.instance, field.attname, stored_name)
    return stored_name


def stored_picture_missing(*, upload: Upload) -> bool:
    """Whether the upload's picture file is gone from storage (a lost volume, a restore without the media): its
    page then says so instead of drawing a broken image. A storage that cannot answer counts as not missing (the
    picture's own request then reports the outage)."""
    name = upload.image.name
    if not name:
        return True
    try:
        return not upload.image.storage.exists(name)
    except Exception:
        logger.exception("cannot tell whether a picture file exists", extra={"upload_id": upload.pk})
        return False
