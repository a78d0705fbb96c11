"""The Celery application. Workers: ``celery -A phoneapp worker -Q classify`` (and ``-Q training`` for retrains)."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import task_prerun, worker_process_init, worker_ready

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


@task_prerun.connect
def _check_database_connections(task: object = None, **_: object) -> None:
    """Before each task, what Django does before each request: drop connections that broke or grew too old.

    Celery no longer closes them per task (``CELERY_DB_REUSE_MAX``); with ``CONN_HEALTH_CHECKS`` the next query
    first checks the kept connection and reconnects if the database went away in between. Eager tasks (no broker:
    they run inside a web request's transaction) are left alone, as Celery's own fixup leaves them.
    """
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
def _sweep_pending_at_worker_start(sender: object = None, **_: object) -> None:
    """Uploads saved while no worker (or no broker) was up are sent again as soon as a worker is ready."""
    app.send_task("phoneapp.tasks.requeue_pending")
