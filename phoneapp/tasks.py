"""Celery tasks: thin wrappers that call the classification services."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from celery import shared_task
from django.db import DatabaseError

from phoneapp.services.classification import (
    MODEL_UNAVAILABLE_REASON,
    ClassificationUnavailable,
    upload_classify,
    upload_mark_failed,
    uploads_requeue_stale,
)
from phoneapp.services.errors import StorageUnavailable
from phoneapp.services.heatmaps import upload_heatmap_compute

# Waits of 2, 4, 8, 16, 32, 60, 60, 60 s: a database or model outage of up to ~4 minutes is ridden out (a 30-s one
# by the 5th try). No jitter: Celery's is "full" (a random wait between 0 and the backoff), which squeezed 5
# retries into ~7 s and gave up on a 10-s database restart.
MAX_RETRIES = 8
RETRY_POLICY: dict[str, object] = {
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": False,
    "max_retries": MAX_RETRIES,
}


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ClassificationUnavailable, DatabaseError),
    **RETRY_POLICY,
)
def classify_upload(self, upload_id: int) -> str:
    """Classify one upload; safe to run twice for the same id (the second run finds it done, or being done)."""
    # A retry of this task, or a message handed back because its worker process died, continues an attempt that
    # is over; any other second delivery (e.g. two sweeps sending the same upload) must not classify it again.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    takeover = self.request.retries > 0 or redelivered
    try:
        upload = upload_classify(upload_id=upload_id, takeover=takeover, worker=self.request.hostname)
    except ClassificationUnavailable:
        if self.request.retries >= MAX_RETRIES:
            upload_mark_failed(upload_id=upload_id, reason=MODEL_UNAVAILABLE_REASON)
            return "failed"
        raise
    return upload.status if upload is not None else "skipped"


@shared_task
def requeue_pending(resend_all: bool = False) -> int:
    """Periodic sweep (celery beat, and at worker start): re-send pending and orphaned uploads. ``resend_all``
    (sent by a worker when the broker comes back): also the pending uploads whose message the broker may have lost."""
    if resend_all:
        return uploads_requeue_stale(pending_older_than=timedelta(0), resend_queued_after=timedelta(0))
    return uploads_requeue_stale()


@shared_task(ignore_result=True)
def delete_expired_uploads() -> int:
    """Periodic retention sweep (celery beat, hourly): uploads older than ``RETENTION_DAYS`` go; 0 = off."""
    from phoneapp.services.upload_deletion import uploads_delete_expired

    return uploads_delete_expired()


@shared_task(
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError, StorageUnavailable),
    **RETRY_POLICY,
)
def compute_heatmap(upload_id: int, evidence: list[list[float]] | None = None) -> str:
    """Store the "where is the phone" overlay of a classified upload; routed to the low-priority ``heatmaps``
    queue so it never waits in front of a verdict. ``evidence``: the map the verdict's forward pass gave, if any."""
    upload = upload_heatmap_compute(upload_id=upload_id, evidence=None if evidence is None else np.asarray(evidence))
    return "stored" if upload is not None else "skipped"


@shared_task(acks_late=False, ignore_result=True)
def retrain_model(*, data_dir: str | None = None, epochs: int | None = None, seed: int = 0) -> str:
    """``manage.py retrain`` on a worker of the ``training`` queue, so a long retrain never delays verdicts.

    Not acknowledged late: a retrain that dies half-way should be started again by a person, not redelivered.
    """
    from pathlib import Path

    from phoneapp.services.retraining import RetrainRequest, retrain

    request = RetrainRequest(data_dir=Path(data_dir) if data_dir else None, epochs=epochs, seed=seed)
    report = retrain(request=request)
    return report.decision
