"""Celery tasks: one more way in to the services, thin and named after the service they run (``<service>_task``).

The import direction is fixed (HackSoft's rule): services import these ``*_task`` names at module level and send
them through :func:`phoneapp.services.dispatch.enqueue`; a task imports its service inside its body. So this
module imports no service at load time (only the error types its decorators name), and there is no import circle.

A task takes an id, loads the row again, and returns quietly when there is nothing left to do. Retries and the
give-up are declared on the decorator (``autoretry_for``, ``max_retries``, ``on_failure``), not written in the body.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from phoneapp.services.errors import ClassificationUnavailable, StorageUnavailable

# One attempts budget for an upload: the sweep fails an upload tried CLASSIFY_MAX_ATTEMPTS times (each claim counts
# one attempt), and the task gives up after the same number of tries (1 + MAX_RETRIES). With the default of 8: waits
# of 2, 4, 8, 16, 32, 60, 60 s, so a database or model outage of up to ~3 minutes is ridden out (a 30-s one by the
# 5th try). No jitter: Celery's is "full" (a random wait between 0 and the backoff), which squeezed 5 retries into
# ~7 s and gave up on a 10-s database restart.
MAX_RETRIES = max(settings.CLASSIFY_MAX_ATTEMPTS - 1, 0)
RETRY_POLICY: dict[str, Any] = {
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": False,
    "max_retries": MAX_RETRIES,
}


def _classification_given_up(
    task: Any, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
) -> None:
    """``on_failure`` of :func:`upload_classify_task`: the model stayed unavailable for the whole budget, so the
    owner is told (other failures leave the upload to the sweep, which counts its attempts)."""
    if not isinstance(exc, ClassificationUnavailable):
        return
    from phoneapp.services.classification import MODEL_UNAVAILABLE_REASON, upload_mark_failed

    upload_mark_failed(upload_id=int(args[0]), reason=MODEL_UNAVAILABLE_REASON)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ClassificationUnavailable, DatabaseError),
    on_failure=_classification_given_up,
    **RETRY_POLICY,
)
def upload_classify_task(self: Any, upload_id: int) -> str:
    """Classify one upload; safe to run twice for the same id (the second run finds it done, or being done)."""
    from phoneapp.services.classification import upload_classify

    # A retry of this task, or a message handed back because its worker process died, continues an attempt that
    # is over; any other second delivery (e.g. two sweeps sending the same upload) must not classify it again.
    # A run in-process (no broker) starts with its retries at the budget (one attempt) but continues nothing.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    takeover = (self.request.retries > 0 and not self.request.is_eager) or redelivered
    upload = upload_classify(upload_id=upload_id, takeover=takeover, worker=self.request.hostname)
    return upload.status if upload is not None else "skipped"


@shared_task
def uploads_requeue_stale_task(resend_all: bool = False) -> int:
    """Periodic sweep (celery beat, and at worker start): re-send pending and orphaned uploads. ``resend_all``
    (sent by a worker when the broker comes back): also the pending uploads whose message the broker may have lost."""
    from datetime import timedelta

    from phoneapp.services.classification import uploads_requeue_stale

    if resend_all:
        return uploads_requeue_stale(pending_older_than=timedelta(0), resend_queued_after=timedelta(0))
    return uploads_requeue_stale()


@shared_task(ignore_result=True)
def uploads_delete_expired_task() -> int:
    """Periodic retention sweep (celery beat, hourly): uploads older than ``RETENTION_DAYS`` go; 0 = off."""
    from phoneapp.services.upload_deletion import uploads_delete_expired

    return uploads_delete_expired()


@shared_task(ignore_result=True)
def upload_requests_forget_expired_task() -> int:
    """Periodic sweep (celery beat, hourly): API ``Idempotency-Key`` records past their day go."""
    from phoneapp.services.upload_requests import upload_requests_forget_expired

    return upload_requests_forget_expired()


# A deleted upload's file the storage would not remove (an S3 error or throttling, a network share away for a moment)
# is tried again for ~37 minutes: waits of 30, 60, 120, 240, then 300 s. No wait is longer than the broker's
# visibility timeout (600 s): Redis hands a message whose countdown outlasts it to a second worker meanwhile.
FILE_DELETE_RETRY_POLICY: dict[str, Any] = {
    "retry_backoff": 30,
    "retry_backoff_max": 300,
    "retry_jitter": False,
    "max_retries": 10,
}


def _file_deletion_given_up(
    task: Any, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
) -> None:
    """``on_failure`` of :func:`stored_files_delete_task`: the operator is told which files are still stored."""
    from phoneapp.services.stored_files import stored_files_deletion_given_up

    stored_files_deletion_given_up(names=kwargs.get("names") or (args[0] if args else []))


@shared_task(
    ignore_result=True,
    acks_late=True,
    autoretry_for=(DatabaseError, StorageUnavailable),
    on_failure=_file_deletion_given_up,
    **FILE_DELETE_RETRY_POLICY,
)
def stored_files_delete_task(names: list[str]) -> int:
    """Remove deleted uploads' files the storage refused to remove at the deletion, unless an upload names them."""
    from phoneapp.services.stored_files import stored_files_delete_unused

    return stored_files_delete_unused(names=names)


@shared_task(ignore_result=True)
def sessions_clear_expired_task() -> None:
    """Periodic sweep (celery beat, daily): sign-in sessions past their expiry date are deleted, not only refused."""
    from phoneapp.services.sessions import sessions_clear_expired

    sessions_clear_expired()


@shared_task(
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError, StorageUnavailable),
    **RETRY_POLICY,
)
def upload_heatmap_compute_task(upload_id: int, evidence: list[list[float]] | None = None) -> str:
    """Store the "where is the phone" overlay of a classified upload; routed to the low-priority ``heatmaps``
    queue so it never waits in front of a verdict. ``evidence``: the map the verdict's forward pass gave, if any."""
    import numpy as np

    from phoneapp.services.heatmaps import upload_heatmap_compute

    upload = upload_heatmap_compute(upload_id=upload_id, evidence=None if evidence is None else np.asarray(evidence))
    return "stored" if upload is not None else "skipped"
