"""The Celery application. Workers: ``celery -A phoneapp worker -Q classify,heatmaps`` (the Procfile's line).

Retraining is not a task: ``manage.py retrain`` runs it (from cron or by hand) where its CPU does not compete with
verdicts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    task_prerun,
    task_received,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phoneapp.settings")

app = Celery("phoneapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _share_the_cores_among_processes(sender: Any = None, **_: object) -> None:
    """Before the pool forks: how many processes will hold the model, so that each takes its share of the cores
    (``phoneapp/serving_threads.py``). The solo and threads pools run tasks in this one process; a concurrency
    Celery resolves later ("auto", one process per core) is taken as one process per core."""
    from phoneapp.serving_threads import available_cores, worker_processes_set

    pool = str(getattr(sender, "pool_cls", ""))  # a name ("prefork", "solo") or a class
    concurrency = getattr(sender, "concurrency", None)
    if "solo" in pool or "thread" in pool:
        worker_processes_set(1)
    elif isinstance(concurrency, int) and concurrency > 0:
        worker_processes_set(concurrency)
    else:
        worker_processes_set(available_cores())


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
    app.send_task("phoneapp.tasks.uploads_requeue_stale_task")


# Beat's schedule entries at least this long apart are housekeeping (retention, idempotency keys, sessions), sent
# once more whenever beat starts; the sweep (every SWEEP_INTERVAL_SECONDS) needs no such help.
HOUSEKEEPING_MIN_SECONDS = 60.0


def housekeeping_task_names() -> list[str]:
    """The tasks of beat's schedule that run at most once a minute (:data:`HOUSEKEEPING_MIN_SECONDS`; a crontab
    schedule counts as such): today the hourly and daily housekeeping, not the sweep."""
    from django.conf import settings

    return [
        str(entry["task"])
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if not (isinstance(entry["schedule"], int | float) and entry["schedule"] < HOUSEKEEPING_MIN_SECONDS)
    ]


@beat_init.connect
def _housekeeping_at_beat_start(sender: object = None, **_: object) -> None:
    """Send the hourly and daily housekeeping once when beat starts. Celery runs a task new to beat's schedule file
    one full interval after the start, never at it: a beat restarted more often than once a day with a fresh file
    (the Procfile's in the working directory, new at each deploy or daily restart of a Procfile platform) never
    cleared a single expired session, and one restarted more often than hourly never ran the retention sweep. The
    tasks are idempotent DELETEs of what has expired, so an extra run at each start costs one query each."""
    log = logging.getLogger(__name__)
    for name in housekeeping_task_names():
        try:
            app.send_task(name)
        except Exception as error:  # the next scheduled run does it; beat itself must start
            log.warning("housekeeping not sent at beat start", extra={"task": name, "error": error})


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    """The main process writes the heartbeat (phoneapp/services/worker_presence.py) from a thread of its own."""
    hostname = getattr(sender, "hostname", None) or "worker"
    threading.Thread(target=_heartbeat_loop, args=(hostname,), name="phonecheck-heartbeat", daemon=True).start()


_heartbeat_stop = threading.Event()
_beat_now = threading.Event()
# After a wake-up by a receipt: Celery records the request as reserved a few statements after the signal.
RECEIPT_SETTLE_SECONDS = 0.02


@task_received.connect
def _beat_on_receipt(**_: object) -> None:
    """A message just came into this worker's hands: write the holdings now rather than at the next beat (2 s), so
    a worker killed before its process claims the upload leaves it to the sweep, not to the visibility timeout."""
    _beat_now.set()


@worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:
    _heartbeat_stop.set()
    _beat_now.set()
    from phoneapp.services.worker_presence import worker_heartbeat_clear

    try:
        worker_heartbeat_clear(hostname=getattr(sender, "hostname", None) or "worker")
    except Exception:
        logging.getLogger(__name__).info("heartbeat not cleared (broker unreachable)")


def _heartbeat_loop(hostname: str) -> None:
    """Every ``heartbeat_interval()`` seconds: "alive, classifying these uploads". When the broker comes back after
    writes failed, ask for a sweep of every pending upload: a Redis restarted without its data lost their messages."""
    from phoneapp.services.worker_presence import heartbeat_interval, worker_heartbeat_write

    log = logging.getLogger(__name__)
    broker_was_down = False
    while not _heartbeat_stop.is_set():
        _beat_now.clear()
        try:
            in_hand, held = _uploads_of_this_worker()
            worker_heartbeat_write(hostname=hostname, upload_ids=in_hand, held_ids=held)
            if broker_was_down:
                log.warning("broker back: sweeping every pending upload")
                app.send_task("phoneapp.tasks.uploads_requeue_stale_task", kwargs={"resend_all": True})
            broker_was_down = False
        except Exception as error:
            if not broker_was_down:
                log.warning("heartbeat not written: broker unreachable", extra={"error": error})
            broker_was_down = True
        if _beat_now.wait(heartbeat_interval()):
            time.sleep(RECEIPT_SETTLE_SECONDS)


def _uploads_of_this_worker() -> tuple[list[int], list[int]]:
    """Ids of the uploads this worker's processes are classifying, and of every upload whose message it holds
    (those and the ones received but not started yet); the main process tracks its pool's tasks."""
    from celery.worker import state

    return _upload_ids(state.active_requests), _upload_ids(state.reserved_requests)


def _upload_ids(requests: Iterable[Any]) -> list[int]:
    ids = []
    for request in list(requests):
        if getattr(request, "name", "") == "phoneapp.tasks.upload_classify_task":
            try:
                ids.append(int(request.args[0]))
            except (IndexError, TypeError, ValueError):
                continue
    return ids


def _survive_broker_connection_loss() -> None:
    """Work around kombu 5.7.0 killing the worker when Redis goes away with tasks in flight.

    On a lost connection Celery 5.7 first ``collect()``s the broker connection, which sets the transport's ``client``
    to ``None``, then closes it (``Consumer.on_connection_error_after_connected``). Closing the default channel hands
    its unacknowledged messages back (``restore_unacked``) through a new client, whose ``_connparams`` then reads
    ``None.hostname`` (the crash's traceback); once reconnected, the late ack of such a message takes the same path.
    It happens in some outages, not all: 5 of 60 in two runs (docs/reliability.md, "Redis outages"). That error is
    not one of the transport's connection errors, so instead of "could not reach the broker" it reached the worker
    as ``Unrecoverable error`` and the worker exited for good. Here it becomes the connection error it is: the
    hand-back or ack is skipped (the messages come back after the visibility timeout, or the sweep re-sends their
    uploads; an upload already done is not done twice) and the consumer reconnects as usual. Celery 5.7.0 requires
    kombu >= 5.7.0, so pinning an older kombu is not an option. ``python -m benchmarks.broker_outage`` counts the
    crashes per Redis outage with and without this (docs/reliability.md); tests/test_reliability_live_prefork.py
    stops Redis while the worker holds an upload and checks that it lives on.
    """
    try:
        from kombu.transport import redis as kombu_redis
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:
        return
    original = kombu_redis.Channel._connparams
    if getattr(original, "_phonecheck_patched", False):
        return

    def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(getattr(self, "connection", None), "client", None) is None:
            raise RedisConnectionError("broker connection already closed")
        return original(self, *args, **kwargs)

    # Ignores: a marker attribute on a function, and replacing a method on kombu's class, are what a monkeypatch
    # is; neither is something the type checker can model.
    _connparams._phonecheck_patched = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]


_survive_broker_connection_loss()
