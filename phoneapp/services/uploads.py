"""Creating uploads: validate every file, store file and row together, then hand them to classification."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from phoneapp.models import Upload, UploadRequest, UploadStatus
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.services.classification import classification_enqueue
from phoneapp.services.dispatch import broker_configured
from phoneapp.services.errors import InvalidUpload, OwnerGone, RefusedFile, UploadTooLarge
from phoneapp.services.image_validation import ValidatedImage, validate_image_file
from phoneapp.services.stored_pictures import stored_file_write

logger = logging.getLogger(__name__)


def _validated_all(files: Sequence[UploadedFile]) -> list[tuple[UploadedFile, ValidatedImage]]:
    """Every file checked before anything is written, each one even after a refusal, so that the answer names
    every file refused and says the rest were not kept either: a person who chose ten pictures and one text file
    read only about the text file, and took the pictures for saved."""
    validated: list[tuple[UploadedFile, ValidatedImage]] = []
    refusals: list[tuple[int, UploadedFile, InvalidUpload]] = []
    for index, file in enumerate(files):
        try:
            validated.append((file, validate_image_file(file)))
        except InvalidUpload as error:
            refusals.append((index, file, error))
    if not refusals:
        return validated
    # Listed for one file too: a client reading ``files`` need not treat a request of one file apart.
    refused = [RefusedFile(index=index, name=file.name or "", error=error.reason) for index, file, error in refusals]
    if len(files) == 1:
        [(_, _, only)] = refusals
        raise type(only)(only.reason, file_name=only.file_name, refused=refused) from only
    good = len(files) - len(refusals)
    others = "the other picture" if good == 1 else f"the other {good} pictures" if good else "pictures"
    without = "it" if len(refusals) == 1 else "them"
    reasons = " ".join(error.message for _, _, error in refusals)
    # 413 only when every refusal is a file too large (the answer was the first refusal's, so it changed with
    # the order the files were sent in).
    kind = UploadTooLarge if all(isinstance(error, UploadTooLarge) for _, _, error in refusals) else InvalidUpload
    raise kind(f"{reasons} Nothing was uploaded: send {others} again without {without}.", refused=refused)


def uploads_create(*, owner: User, files: Sequence[UploadedFile], request: UploadRequest | None = None) -> list[Upload]:
    """Store every file as an upload of ``owner`` and queue the new ones for classification.

    All files are validated before anything is written, so one bad file refuses the whole request and leaves
    no trace. The rows and files are committed before any task is sent: a worker never sees an upload that is
    not in the database, and an upload is never lost because the broker was down (it stays ``pending`` and the
    periodic sweep sends it again). When storage or the database fails part-way, nothing stays behind: no file
    without a row, no row without a file (:class:`StorageUnavailable` or the database error is raised; the web
    layer answers 503 with ``Retry-After``).

    The same file sent again by the same owner becomes a second upload (both are listed in the history) that
    shares the first one's stored picture and thumbnail; when the first already has a verdict from the model
    version active now, that verdict is copied and nothing is queued.

    Returns the uploads as they are now, in the order sent: as written when a broker takes the work (the worker
    has barely received them, so no query is spent reading them back), read again without one (they were
    classified in this process while the transaction committed). Thumbnails are the worker's
    (:mod:`phoneapp.services.thumbnails`).

    ``request`` (unsaved: an API request's ``Idempotency-Key``) is stored with the uploads, in the same transaction,
    with the pictures' fingerprint (from the digests validation computed) and naming them; its key already stored
    for ``owner`` raises :class:`IntegrityError` and stores nothing (see
    :func:`phoneapp.services.upload_requests.uploads_create_once`).
    """
    if not files:
        raise InvalidUpload("No picture was sent: attach one or more files in the 'image' field.")
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise InvalidUpload(f"Too many files: at most {settings.UPLOAD_MAX_FILES} per upload.")
    validated = _validated_all(files)
    uploads: list[Upload] = []
    written: list[Upload] = []
    # With a broker, each row is inserted already marked as handed to it (``queued_at``), and unmarked in the rare
    # case the send fails: one statement per upload instead of an INSERT and then an UPDATE.
    queued_at = timezone.now() if broker_configured() else None
    committed: list[bool] = []
    try:
        with transaction.atomic():
            # First of the commit callbacks: from here on, the rows are stored and their files belong to them.
            transaction.on_commit(lambda: committed.append(True))
            if request is not None:
                # First, before any file is written: a request sent in parallel with the same key waits here
                # (PostgreSQL) until this one commits, then fails without writing anything.
                request.fingerprint = UploadRequest.fingerprint_of(image.sha256 for _, image in validated)
                request.save(force_insert=True)
            for file, image in validated:
                twin = _twin_of(owner=owner, sha256=image.sha256)
                if twin is None:
                    upload = Upload(owner=owner, queued_at=queued_at)
                    _store(upload=upload, file=file, image=image, written=written)
                else:
                    upload = _store_duplicate(owner=owner, image=image, twin=twin, queued_at=queued_at)
                uploads.append(upload)
            if request is not None:
                request.upload_ids = [upload.pk for upload in uploads]
                request.save(update_fields=["upload_ids"])
            to_classify = [upload.pk for upload in uploads if upload.status == UploadStatus.PENDING]
            if to_classify:
                # Sent once this transaction commits.
                classification_enqueue(upload_ids=to_classify, marked_queued=queued_at is not None)
    except Exception as error:
        # Unless the commit happened (the rows are stored, whatever failed after it), the rows rolled back: remove
        # the files this call wrote too, so storage never holds a file without a row. Files shared with an earlier
        # upload belong to that upload and stay.
        if not committed:
            for upload in written:
                _delete_files(upload)
        if isinstance(error, IntegrityError) and not User.objects.filter(pk=owner.pk).exists():
            # The account was deleted while its upload was sent (the rows' owner is checked at the commit).
            raise OwnerGone("This account was deleted while the pictures were sent: nothing was uploaded.") from error
        raise
    if not broker_configured():
        uploads = _read_back(uploads)
    for upload in uploads:
        logger.info(
            "upload stored",
            extra={
                "upload_id": upload.pk,
                "owner_id": owner.pk,
                "size_bytes": upload.size_bytes,
                "status": upload.status,
            },
        )
    return uploads


def _read_back(uploads: list[Upload]) -> list[Upload]:
    """The uploads as the in-process classification left them, in the same order (one deleted meanwhile is
    reported as written)."""
    current = Upload.objects.select_related("model_version").in_bulk([upload.pk for upload in uploads])
    return [current.get(upload.pk, upload) for upload in uploads]


def _twin_of(*, owner: User, sha256: str) -> Upload | None:
    """The owner's earliest upload of the same file whose picture is still in storage.

    Asks for ids and file names first: almost every upload is new, and building the query for whole rows (thirty
    columns) cost the web process twice as much CPU as this one. The twin's row is read only when there is one.

    The twin's row is locked until this upload commits: a deletion of the twin (its owner, retention) then waits
    for the new row, and finds the shared file still in use when it looks after its own commit. Without the lock,
    a deletion committed between this check and our commit removed the file the new row names.
    """
    candidates = Upload.objects.filter(owner=owner, sha256=sha256).exclude(image="").order_by("created", "id")
    storage = Upload.image.field.storage
    for pk, name in candidates.values_list("pk", "image")[:3]:
        twin = Upload.objects.select_for_update().filter(pk=pk, image=name).first()
        if twin is not None and storage.exists(name):
            return twin
    return None


def _store(*, upload: Upload, file: UploadedFile, image: ValidatedImage, written: list[Upload]) -> None:
    upload.original_name = image.original_name
    upload.sha256 = image.sha256
    upload.size_bytes = image.size_bytes
    upload.content_type = image.content_type
    upload.status = UploadStatus.PENDING
    content = ContentFile(image.replacement_bytes) if image.replacement_bytes is not None else file
    content.seek(0)
    written.append(upload)
    stored_file_write(field_file=upload.image, filename=f"upload{image.extension}", content=content)
    # Set after the file: saving it made ImageField re-read the size from its header, which ignores EXIF rotation.
    upload.width, upload.height = image.width, image.height
    upload.save(force_insert=True)


def _store_duplicate(*, owner: User, image: ValidatedImage, twin: Upload, queued_at: datetime | None) -> Upload:
    upload = Upload(
        owner=owner,
        queued_at=queued_at,
        image=twin.image.name,
        thumbnail=twin.thumbnail.name,
        original_name=image.original_name,
        sha256=image.sha256,
        size_bytes=twin.size_bytes,
        width=twin.width,
        height=twin.height,
        content_type=twin.content_type,
        status=UploadStatus.PENDING,
    )
    # Only duplicates need the active version (most uploads are not one: no query for them).
    active_version = model_version_active_or_none() if twin.status == UploadStatus.DONE else None
    verdict_is_current = active_version is not None and twin.model_version_id == active_version.pk
    if twin.status == UploadStatus.DONE and verdict_is_current:
        # Only the model's verdict is reused; a reviewer's label belongs to the upload that was reviewed.
        upload.status = UploadStatus.DONE
        upload.predicted_label = twin.predicted_label
        upload.probability = twin.probability
        upload.model_version = active_version
        upload.heatmap = twin.heatmap.name
        upload.evidence = twin.evidence
        upload.predicted_boxes = twin.predicted_boxes
        upload.processed = timezone.now()
        upload.inference_ms = 0.0
        upload.queued_at = None
    upload.save(force_insert=True)
    return upload


def _delete_files(upload: Upload) -> None:
    for field in (upload.image, upload.thumbnail):
        if field.name:
            try:
                field.storage.delete(field.name)
            except Exception:  # the original error is the one to report; this one is logged
                logger.exception("could not remove a file of a refused upload", extra={"file_name": field.name})
