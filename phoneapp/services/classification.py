"""Classifying uploads: sending them to the worker, and the work the worker (or the web process) does."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inference.images import ImageError
from inference.manifest import ModelLoadError
from phoneapp.models import Upload, UploadStatus
from phoneapp.resident_model import LoadedModel, resident_model
from phoneapp.services.dispatch import broker_unreachable_forget, enqueue
from phoneapp.services.errors import ClassificationUnavailable, NoActiveModel
from phoneapp.services.heatmaps import evidence_pack, heatmap_enqueue
from phoneapp.services.stored_pictures import stored_picture_for
from phoneapp.services.thumbnails import THUMBNAIL_SIZE, thumbnail_discard, upload_thumbnail_store
from phoneapp.services.worker_presence import (
    dead_worker_holdings_forget,
    sweep_lock,
    uploads_being_classified,
    uploads_held_by_dead_workers,
)
from phoneapp.tasks import upload_classify_task

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from inference.prediction import Prediction

logger = logging.getLogger(__name__)


# What the owner reads when an upload gives up on the model; the cause itself is logged, never shown.
MODEL_UNAVAILABLE_REASON = "The model is unavailable, so this picture could not be classified; try again later."


def classification_enqueue(*, upload_ids: Sequence[int], marked_queued: bool = False) -> int:
    """Ask for each upload to be classified once the current transaction commits: by a worker, or here when no
    broker is configured (see :func:`phoneapp.services.dispatch.enqueue`).

    Returns how many were asked for. A broker that is down is logged, not raised: the uploads stay ``pending``
    (``queued_at`` empty) and :func:`uploads_requeue_stale` sends them again once it is back. ``marked_queued``:
    the caller wrote ``queued_at`` with the rows already (new uploads, saving an UPDATE per upload), so only the
    ones whose message did not leave are unmarked.
    """
    sent: list[int] = []
    for upload_id in upload_ids:
        enqueue(upload_classify_task, args=(upload_id,), on_sent=partial(sent.append, upload_id))
    # Registered after the sends, so it runs after them (Django keeps the order of commit callbacks). Lets the
    # sweep tell "never reached the broker" from "waiting in a long queue" (not to be sent again).
    # Robust: the rows are committed by then, so a database error here is logged (the sweep re-sends what it
    # cannot tell was sent) rather than raised into a request whose uploads are stored.
    asked = list(upload_ids)

    def record_queued() -> None:  # named: Django logs a failed robust callback by its __qualname__
        _record_queued(asked, sent, marked_queued)

    transaction.on_commit(record_queued, robust=True)
    return len(upload_ids)


def _record_queued(asked: list[int], sent: list[int], marked_queued: bool) -> None:
    if marked_queued:
        unsent = sorted(set(asked) - set(sent))
        if unsent:
            Upload.objects.filter(pk__in=unsent).update(queued_at=None)
    elif sent:
        Upload.objects.filter(pk__in=sent).update(queued_at=timezone.now())


def upload_classify(*, upload_id: int, takeover: bool = False, worker: str | None = None) -> Upload | None:
    """Classify one upload and store the verdict. Idempotent: a finished upload is left as it is, and an upload
    another live worker is classifying is left to it (a second delivery of the same upload does nothing).

    ``takeover``: this run continues an attempt known to be over (a retry of the same task, or a message handed
    back because its worker process died), so an upload still marked ``processing`` is taken. Otherwise it is
    taken only when orphaned (see :func:`_orphaned`). ``worker`` is the calling worker's name (its own heartbeat
    does not count as someone else's claim).

    Returns the upload, or ``None`` when there was nothing to do (already done or failed, deleted, or being
    classified elsewhere). Raises :class:`ClassificationUnavailable` when the model cannot be loaded, leaving the
    upload for a retry.
    """
    upload = _claim_for_this_run(upload_id, takeover=takeover, worker=worker)
    if upload is None:
        return None
    try:
        loaded = resident_model.current()
    except (ModelLoadError, NoActiveModel) as error:
        # The owner sees ``error``; the detail (paths, checksums) goes to the log only.
        logger.warning("model unavailable, upload will be retried", extra={"upload_id": upload_id, "error": error})
        Upload.objects.filter(pk=upload_id, status=UploadStatus.PROCESSING).update(
            status=UploadStatus.PENDING, error="Model unavailable; the picture will be classified when it is back."
        )
        raise ClassificationUnavailable(str(error)) from error
    started = time.perf_counter()
    # The process's CPU, not the wall clock: what a verdict costs the machine (its model threads included), so
    # operators (and benchmarks/e2e_bench.py) can tell the model's share of a worker's CPU from the rest.
    cpu_started = time.process_time()
    try:
        # At least thumbnail scale when the worker is to draw the thumbnail from the same decode.
        picture = stored_picture_for(upload, loaded.classifier, at_least=None if upload.thumbnail else THUMBNAIL_SIZE)
    except (ImageError, OSError) as error:
        # ImageError messages are written for users; an OSError's may hold storage paths.
        detail = str(error) if isinstance(error, ImageError) else "the file is missing or unreadable"
        logger.warning("stored picture unreadable", extra={"upload_id": upload_id, "error": error})
        _mark_failed(upload_id, f"The stored picture cannot be read: {detail}")
        return Upload.objects.filter(pk=upload_id).first()
    prediction, evidence = loaded.classifier.predict_and_explain(picture)
    elapsed_ms = (time.perf_counter() - started) * 1000
    inference_cpu_ms = (time.process_time() - cpu_started) * 1000
    return _verdict_store(
        upload_id=upload_id,
        upload=upload,
        loaded=loaded,
        picture=picture,
        prediction=prediction,
        evidence=evidence,
        elapsed_ms=elapsed_ms,
        inference_cpu_ms=inference_cpu_ms,
    )


def _claim_for_this_run(upload_id: int, *, takeover: bool, worker: str | None) -> Upload | None:
    """Claim the upload for this run (see :func:`upload_classify`): a pending one always; one still ``processing``
    only when this run takes over (``takeover``) or its worker is gone (:func:`_orphaned`). ``None``: nothing to
    claim (done, failed, deleted, or classified by another live worker)."""
    upload = _claim(upload_id, status=UploadStatus.PENDING)
    if upload is not None:
        return upload
    # A processing upload is claimed at the attempt it was found at, so a run claiming it in between wins.
    processing = Upload.objects.filter(pk=upload_id, status=UploadStatus.PROCESSING)
    if not takeover:
        processing = processing.filter(_orphaned(worker=worker))
    attempts = processing.values_list("attempts", flat=True).first()
    return None if attempts is None else _claim(upload_id, status=UploadStatus.PROCESSING, attempts=attempts)


def _verdict_store(
    *,
    upload_id: int,
    upload: Upload,
    loaded: LoadedModel,
    picture: Image.Image,
    prediction: Prediction,
    evidence: np.ndarray | None,
    elapsed_ms: float,
    inference_cpu_ms: float,
) -> Upload | None:
    """Write the verdict with its thumbnail and evidence in one update, unless a concurrent run stored its verdict
    first: then this run's thumbnail is removed and that verdict's row returned. A model whose verdict came without
    evidence gets its heat map queued."""
    # Written with the verdict: a done upload has its thumbnail, which a duplicate sent later shares.
    thumbnail = upload_thumbnail_store(upload=upload, picture=picture)
    verdict = {
        "status": UploadStatus.DONE,
        "predicted_label": prediction.label,
        "probability": prediction.probability,
        "predicted_boxes": [box.to_dict() for box in prediction.boxes],
        "model_version": loaded.version,
        "processed": timezone.now(),
        "inference_ms": round(elapsed_ms, 2),
        # Kept for the heat map, drawn when first asked for (most never are): no task, no overlay per verdict.
        "evidence": None if evidence is None else evidence_pack(evidence),
        "error": "",
        **({"thumbnail": thumbnail} if thumbnail else {}),
    }
    written = Upload.objects.filter(pk=upload_id).exclude(status=UploadStatus.DONE).update(**verdict)
    logger.info(
        "upload classified",
        extra={
            "upload_id": upload_id,
            "label": prediction.label,
            "probability": prediction.probability,
            "boxes": len(prediction.boxes),
            "model_version": loaded.version.name,
            "inference_ms": round(elapsed_ms, 1),
            "inference_cpu_ms": round(inference_cpu_ms, 2),
            "written": bool(written),
        },
    )
    if not written:  # a concurrent run stored its verdict first: report that one
        if thumbnail:
            thumbnail_discard(thumbnail)
        return Upload.objects.filter(pk=upload_id).first()
    if evidence is None:
        # A model that explains only when asked again (Grad-CAM): after the verdict, on its own low-priority task,
        # so the overlay never delays a verdict.
        heatmap_enqueue(upload_id=upload_id)
    # The row is exactly what was just written; reading it back cost the worker a query per upload.
    for field, value in verdict.items():
        setattr(upload, field, value)
    return upload


def _claim(upload_id: int, *, status: UploadStatus, attempts: int | None = None) -> Upload | None:
    """The one claim: move an upload in ``status`` (and, given, still at ``attempts``: every claim counts one
    more) to processing, one attempt more, and read what the worker needs of it. ``None``: nothing to claim
    (another status or attempt, or gone).

    Raw SQL for ``RETURNING`` (Django's ``update()`` returns only a count): claiming and reading the row is one
    round trip per task, where an UPDATE and then a SELECT were two. The returned row holds only those fields;
    any other is loaded from the database if read.
    """
    where, params = "id = %s AND status = %s", [upload_id, status]
    if attempts is not None:
        where, params = f"{where} AND attempts = %s", [*params, attempts]
    rows = Upload.objects.raw(
        f"UPDATE {Upload._meta.db_table} SET status = %s, processing_started = %s, attempts = attempts + 1 "
        f"WHERE {where} RETURNING id, owner_id, image, thumbnail, width, height, status, attempts",
        [UploadStatus.PROCESSING, timezone.now(), *params],
    )
    return next(iter(rows), None)


def upload_mark_failed(*, upload_id: int, reason: str) -> None:
    """Give up on an upload (the task's attempts ran out) with a reason the owner can read."""
    _mark_failed(upload_id, reason)


def _mark_failed(upload_id: int, reason: str) -> None:
    Upload.objects.filter(pk=upload_id).exclude(status=UploadStatus.DONE).update(
        status=UploadStatus.FAILED, error=reason[:2000], processed=timezone.now()
    )
    logger.warning("upload failed", extra={"upload_id": upload_id, "error": reason})


def upload_retry_failed(*, upload: Upload) -> bool:
    """:func:`uploads_retry_failed` for one upload (its owner's "Try again"); False when it had not failed."""
    return uploads_retry_failed(uploads=Upload.objects.filter(pk=upload.pk)) == 1


def uploads_retry_failed(*, uploads: QuerySet[Upload]) -> int:
    """Send the failed ones among ``uploads`` to the workers again, as if just uploaded (attempts from zero).

    For after the cause is mended: an upload gives up after its retries (the model could not be loaded for a
    few minutes, a worker died on it ``CLASSIFY_MAX_ATTEMPTS`` times), and nothing else ever sends it again.
    Returns how many were sent.
    """
    with transaction.atomic():
        upload_ids = list(
            uploads.filter(status=UploadStatus.FAILED)
            .select_for_update()
            .order_by("created")
            .values_list("pk", flat=True)
        )
        Upload.objects.filter(pk__in=upload_ids).update(
            status=UploadStatus.PENDING, error="", attempts=0, processing_started=None, processed=None, queued_at=None
        )
        if upload_ids:
            logger.info("failed uploads sent again", extra={"count": len(upload_ids)})
            classification_enqueue(upload_ids=upload_ids)
    return len(upload_ids)


def _orphaned(*, worker: str | None = None) -> Q:
    """``processing`` uploads whose worker is gone: no live worker (other than ``worker``) lists them in its
    heartbeat and they were claimed over ``ORPHAN_AFTER_SECONDS`` ago (a claim younger than a few heartbeats may
    not be listed yet). Without heartbeats to read (no Redis broker, Redis unreachable), only those claimed over
    ``PROCESSING_TIMEOUT_SECONDS`` ago."""
    now = timezone.now()
    timed_out = Q(processing_started__lt=now - timedelta(seconds=settings.PROCESSING_TIMEOUT_SECONDS))
    busy = uploads_being_classified(except_worker=worker)
    if busy is None:
        return timed_out
    unlisted = Q(processing_started__lt=now - timedelta(seconds=settings.ORPHAN_AFTER_SECONDS)) & ~Q(pk__in=busy)
    return timed_out | unlisted


def uploads_requeue_stale(
    *, pending_older_than: timedelta = timedelta(seconds=10), resend_queued_after: timedelta | None = None
) -> int:
    """Run :func:`_requeue_stale` unless another sweep is running right now (then return 0): two sweeps at once
    (beat's and a restarted worker's) used to send the same uploads twice. Same arguments and result."""
    with sweep_lock() as acquired:
        if not acquired:
            logger.info("sweep skipped: another one is running")
            return 0
        return _requeue_stale(pending_older_than=pending_older_than, resend_queued_after=resend_queued_after)


def _requeue_stale(*, pending_older_than: timedelta, resend_queued_after: timedelta | None) -> int:
    """Send again what the broker may have lost: pending uploads, and ones stuck in processing.

    An upload stays ``processing`` only while a worker works on it; once orphaned (its worker's heartbeat is gone,
    see :func:`_orphaned`; without heartbeats, past ``PROCESSING_TIMEOUT_SECONDS``) it goes back to ``pending``
    -- or to ``failed`` once it has been tried ``CLASSIFY_MAX_ATTEMPTS`` times, so a picture that kills its
    worker every time cannot loop forever.

    A pending upload is sent when it is not in the broker's queue (``queued_at`` empty: the broker was down, or
    it was just taken back from a dead worker) unless it is younger than ``pending_older_than`` and untried
    (its own task is most likely on its way); when its message was in the hands of a worker that died before
    claiming it (:func:`~phoneapp.services.worker_presence.uploads_held_by_dead_workers`: the broker would hand
    it back only after its visibility timeout); or when it was sent longer than ``resend_queued_after`` ago
    (default ``PROCESSING_TIMEOUT_SECONDS``) and still waits: its message was probably lost, e.g. by a Redis
    restarted without persistence. Uploads merely waiting in a long queue are not sent again at every sweep.
    Sending twice is harmless anyway, because classification is idempotent. Returns how many were sent.
    """
    now = timezone.now()
    # The sweep is how work gets back to a broker that was down: it always tries, whatever this process's last
    # failed send said (the hold-off only spares requests the timeouts of a broker that does not answer).
    broker_unreachable_forget()
    if resend_queued_after is None:
        resend_queued_after = timedelta(seconds=settings.PROCESSING_TIMEOUT_SECONDS)
    max_attempts = settings.CLASSIFY_MAX_ATTEMPTS
    stuck = Upload.objects.filter(status=UploadStatus.PROCESSING).filter(_orphaned())
    exhausted = Upload.objects.filter(attempts__gte=max_attempts).filter(
        Q(status=UploadStatus.PENDING) | Q(pk__in=stuck.values("pk"))
    )
    for upload_id in list(exhausted.values_list("pk", flat=True)[:5000]):
        _mark_failed(upload_id, f"Classification was interrupted {max_attempts} times; giving up on this picture.")
    stuck.update(status=UploadStatus.PENDING, queued_at=None)
    never_sent = Q(queued_at__isnull=True) & (Q(created__lt=now - pending_older_than) | Q(attempts__gt=0))
    dead_holdings = uploads_held_by_dead_workers() or {}
    held_by_dead = Q(pk__in={upload_id for held in dead_holdings.values() for upload_id in held})
    waiting = Upload.objects.filter(status=UploadStatus.PENDING).filter(
        never_sent | held_by_dead | Q(queued_at__lt=now - resend_queued_after)
    )
    upload_ids = list(waiting.order_by("created").values_list("pk", flat=True)[:5000])
    sent = classification_enqueue(upload_ids=upload_ids) if upload_ids else 0
    dead_worker_holdings_forget(dead_holdings)
    return sent
