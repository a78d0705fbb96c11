"""Creating uploads: validate every file, store file and row together, then hand them to classification."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.classification import classification_enqueue
from phoneapp.services.errors import InvalidUpload
from phoneapp.services.image_validation import ValidatedImage, validate_image_file

logger = logging.getLogger(__name__)


def uploads_create(*, owner: AbstractBaseUser, files: Sequence[UploadedFile]) -> list[Upload]:
    """Store every file as a pending upload of ``owner`` and queue each for classification.

    All files are validated before anything is written, so one bad file refuses the whole request and leaves
    no trace. The rows and files are committed before any task is sent: a worker never sees an upload that is
    not in the database, and an upload is never lost because the broker was down (it stays ``pending`` and the
    periodic sweep sends it again).
    """
    if not files:
        raise InvalidUpload("No picture was sent: attach one or more files in the 'image' field.")
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise InvalidUpload(f"Too many files: at most {settings.UPLOAD_MAX_FILES} per upload.")
    validated = [(file, validate_image_file(file)) for file in files]
    uploads: list[Upload] = []
    try:
        with transaction.atomic():
            for file, image in validated:
                uploads.append(_store(owner=owner, file=file, image=image))
            upload_ids = [upload.pk for upload in uploads]
            transaction.on_commit(partial(classification_enqueue, upload_ids=upload_ids))
    except Exception:
        # The rows rolled back; remove their files too, so storage never holds a file without a row.
        for upload in uploads:
            _delete_files(upload)
        raise
    for upload in uploads:
        logger.info(
            "upload stored",
            extra={"upload_id": upload.pk, "owner_id": owner.pk, "size_bytes": upload.size_bytes},
        )
    return uploads


def _store(*, owner: AbstractBaseUser, file: UploadedFile, image: ValidatedImage) -> Upload:
    upload = Upload(
        owner=owner,
        original_name=image.original_name,
        sha256=image.sha256,
        size_bytes=image.size_bytes,
        width=image.width,
        height=image.height,
        content_type=image.content_type,
        status=UploadStatus.PENDING,
    )
    file.seek(0)
    try:
        upload.image.save(f"upload{image.extension}", file, save=False)
        upload.thumbnail.save("thumbnail.jpg", ContentFile(image.thumbnail_jpeg), save=False)
        upload.save()
    except Exception:
        _delete_files(upload)
        raise
    return upload


def _delete_files(upload: Upload) -> None:
    for field in (upload.image, upload.thumbnail):
        if field.name:
            field.storage.delete(field.name)
