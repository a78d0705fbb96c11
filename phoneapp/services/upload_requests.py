"""Upload requests sent with an ``Idempotency-Key``: a retried request gets the uploads the first one made.

A script that sent pictures and lost the answer (a timeout, a dropped connection, a proxy's 502) cannot tell
whether they were stored; without a key, sending them again stores them twice. With one, the same key and the same
pictures within :data:`KEY_KEPT` answer the first request's uploads as they are now, and store nothing. The
IETF draft "The Idempotency-Key HTTP Header Field" (and Stripe's API before it) is the model: a key reused with
other content is refused, not replayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError
from django.utils import timezone

from phoneapp.models import Upload, UploadRequest
from phoneapp.services.errors import DomainError
from phoneapp.services.uploads import uploads_create

# How long a key is remembered: long enough for any client's retries, short enough that keys need not be unique
# forever (the draft leaves it to the server; Stripe keeps them 24 hours).
KEY_KEPT = timedelta(hours=24)
# The fingerprint of a key whose uploads were deleted (a sha256 is never empty).
DELETED = ""


class IdempotencyKeyReused(DomainError):
    """The key was sent before with other pictures: a client bug (one key for two requests) that a replay would
    hide by answering uploads of pictures this request did not send."""

    status_code = 422


class IdempotentUploadsDeleted(DomainError):
    """The request sent first with this key stored pictures that were deleted since: storing them again would bring
    back what their owner deleted, and replaying would answer uploads that are gone."""

    status_code = 409


@dataclass(frozen=True)
class UploadsAnswer:
    """What an upload request made: the uploads in the order sent, and whether an earlier request with the same
    key made them (``replayed``: nothing was stored this time)."""

    uploads: list[Upload]
    replayed: bool


def uploads_create_once(*, owner: User, files: Sequence[UploadedFile], key: str) -> UploadsAnswer:
    """Store ``files`` as :func:`uploads_create` does, once per ``key`` of ``owner``.

    The same key and pictures sent again within :data:`KEY_KEPT` answer the first request's uploads, as they are
    now, and store nothing; the same key with other pictures raises :class:`IdempotencyKeyReused`, and once any of
    those uploads was deleted :class:`IdempotentUploadsDeleted`. A request refused (bad file, storage down) stores
    no key, so its retry is judged afresh. Two requests with one key sent at once store one set of uploads: the
    second waits for the first's commit and is answered with its uploads.
    """
    upload_requests_forget_expired()  # one indexed DELETE: the table holds a day of keys, with or without beat
    earlier = _earlier_request(owner=owner, key=key)
    if earlier is None:
        # The usual case, a first try: uploads_create fingerprints the pictures from the digests its validation
        # computes anyway (hashing every file here as well doubled that work on each upload the page sends).
        request = UploadRequest(owner=owner, key=key)
        try:
            return UploadsAnswer(uploads_create(owner=owner, files=files, request=request), replayed=False)
        except IntegrityError:
            # The same key stored meanwhile by a request sent in parallel (a retry racing its first try).
            earlier = _earlier_request(owner=owner, key=key)
            if earlier is None:
                raise
    if earlier.fingerprint == DELETED:
        raise IdempotentUploadsDeleted(
            "The pictures first sent with this Idempotency-Key were deleted since; nothing was stored. Send them "
            "with a new key to store them again."
        )
    if earlier.fingerprint != UploadRequest.fingerprint_of(_file_digest(file) for file in files):
        raise IdempotencyKeyReused(
            f"This Idempotency-Key was sent at {earlier.created:%Y-%m-%d %H:%M:%S} UTC with other pictures; nothing "
            "was stored. Send a new key with each new request, and the same key only to retry the same pictures."
        )
    return UploadsAnswer(_uploads_in_order(owner=owner, upload_ids=earlier.upload_ids), replayed=True)


def upload_request_known(*, owner: User, key: str) -> bool:
    """Whether ``owner`` sent a request with ``key`` that is still remembered (the rate limit passes its retries)."""
    return UploadRequest.objects.filter(owner=owner, key=key, created__gte=timezone.now() - KEY_KEPT).exists()


def upload_requests_forget_expired() -> int:
    """Delete keys older than :data:`KEY_KEPT`, freeing them for reuse (at each keyed request, and hourly by beat);
    returns how many went."""
    deleted, _ = UploadRequest.objects.filter(created__lt=timezone.now() - KEY_KEPT).delete()
    return deleted


def upload_requests_forget_uploads(*, owner_ids: Iterable[int], upload_ids: Iterable[int]) -> int:
    """After uploads are deleted (any door: page, API, admin, "delete all", retention): every key that made one of
    them forgets its pictures' fingerprint and uploads, in the deleting transaction. The fingerprint is derived from
    the pictures' bytes, so keeping it would keep a trace of deleted pictures; the key itself stays until it
    expires, so a late retry is refused (:class:`IdempotentUploadsDeleted`) instead of storing them again. Returns
    how many keys forgot."""
    deleted = set(upload_ids)
    forgotten = [
        request.pk
        for request in UploadRequest.objects.filter(owner_id__in=set(owner_ids)).exclude(fingerprint=DELETED)
        if deleted.intersection(request.upload_ids)
    ]
    return UploadRequest.objects.filter(pk__in=forgotten).update(fingerprint=DELETED, upload_ids=[])


def _earlier_request(*, owner: User, key: str) -> UploadRequest | None:
    return UploadRequest.objects.filter(owner=owner, key=key).first()


def _uploads_in_order(*, owner: User, upload_ids: list[int]) -> list[Upload]:
    current = Upload.objects.select_related("model_version").filter(owner=owner).in_bulk(upload_ids)
    return [current[pk] for pk in upload_ids if pk in current]


def _file_digest(file: UploadedFile) -> str:
    """sha256 of the bytes sent, as :class:`phoneapp.models.Upload` stores it (read in chunks, then rewound)."""
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()
