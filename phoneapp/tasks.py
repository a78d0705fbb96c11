"""Celery tasks: thin wrappers that call the classification services."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from phoneapp.services.classification import (
    ClassificationUnavailable,
    upload_classify,
    upload_mark_failed,
    uploads_requeue_stale,
)

MAX_RETRIES = 5


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ClassificationUnavailable, DatabaseError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def classify_upload(self, upload_id: int) -> str:
    """Classify one upload; safe to run twice for the same id (the second run finds it done)."""
    try:
        upload = upload_classify(upload_id=upload_id)
    except ClassificationUnavailable as error:
        if self.request.retries >= MAX_RETRIES:
            upload_mark_failed(upload_id=upload_id, reason=f"The model is unavailable: {error}")
            return "failed"
        raise
    return upload.status if upload is not None else "skipped"


@shared_task
def requeue_pending() -> int:
    """Periodic sweep (celery beat, and at worker start): re-send pending and stuck uploads."""
    return uploads_requeue_stale()
