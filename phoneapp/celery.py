"""The Celery application. Workers: ``celery -A phoneapp worker -Q classify`` (and ``-Q training`` for retrains)."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phoneapp.settings")

app = Celery("phoneapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _load_model_at_process_start(**_: object) -> None:
    """Load the active model when a worker process starts, so the first upload does not pay for it."""
    from phoneapp.resident_model import resident_model

    try:
        resident_model.current()
    except Exception:
        logging.getLogger(__name__).exception("model could not be preloaded")


@worker_ready.connect
def _sweep_pending_at_worker_start(sender: object = None, **_: object) -> None:
    """Uploads saved while no worker (or no broker) was up are sent again as soon as a worker is ready."""
    app.send_task("phoneapp.tasks.requeue_pending")
