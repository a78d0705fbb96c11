"""Handing work to the Celery workers: the one place that knows what happens without a broker, or with one that is down.

Every service that dispatches a task calls :func:`enqueue`; none of them looks at the broker setting itself.

- **After commit.** A task is sent (or run) only once the caller's transaction commits, so a worker never looks
  for a row that is not written yet, and a rolled-back request sends nothing.
- **No broker** (``CELERY_BROKER_URL`` empty, :func:`broker_configured`): the task runs here, in this process, as
  one attempt. There is nobody to wait for between retries, so the first failure is the give-up, and the task's
  own ``on_failure`` says what giving up means (e.g. the upload is marked failed with a reason).
- **Broker down**: the error is logged, never raised. The row the task was about keeps its state (an upload stays
  ``pending``) and the periodic sweep sends it again once the broker is back: nothing is lost. After a failed send
  this process does not try that broker again for ``UNREACHABLE_HOLD_OFF_SECONDS``: a broker host that stops
  answering costs each send its connect timeouts (~4 s), and a 20-picture upload paying that 20 times outlived
  the web server's timeout after its rows were committed (the client saw a 502 and sent the pictures again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

# How long a failed send keeps this process from trying the same broker again (the sweep runs every 10 s).
UNREACHABLE_HOLD_OFF_SECONDS = 5.0
# Broker URL -> time.monotonic() before which sends to it are skipped.
_unreachable_until: dict[str, float] = {}


def broker_configured() -> bool:
    """The one switch: with a broker URL workers run the tasks; without one, the process that asks runs them."""
    return bool(settings.CELERY_BROKER_URL)


def enqueue(
    task: Task,
    *,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    on_sent: Callable[[], object] | None = None,
) -> None:
    """Have ``task`` run once the current transaction commits (at once outside a transaction).

    ``on_sent`` is called when the message reached the broker (not when it ran here, nor when the broker refused
    it): callers record "sent" with it so the sweep can tell a queued row from one whose message never left.
    Never raises because of the broker; see the module docstring for what happens without one or when it is down.
    """

    # Robust: whatever goes wrong after the commit (the in-process run, the broker) is logged, never raised into
    # the caller, whose rows are stored by then.
    # (A named function, not a partial: Django names a failed robust callback by its __qualname__.)
    def dispatch() -> None:
        _dispatch(task, args, kwargs or {}, on_sent)

    transaction.on_commit(dispatch, robust=True)


def _dispatch(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], on_sent: Callable[[], object] | None) -> None:
    if not broker_configured():
        # One attempt (``retries`` already at the budget): a failure runs the task's give-up at once, instead of
        # retrying back to back with nothing to wait for. ``throw=False``: a failing task must not fail the
        # request that asked for it; Celery logs it.
        task.apply(args=args, kwargs=kwargs, retries=task.max_retries or 0, throw=False)
        return
    broker = settings.CELERY_BROKER_URL
    if time.monotonic() < _unreachable_until.get(broker, 0.0):
        logger.info("broker unreachable moments ago, task left for the sweep", extra={"task": task.name})
        return
    try:
        task.apply_async(args=args, kwargs=kwargs)
    except Exception as error:
        _unreachable_until[broker] = time.monotonic() + UNREACHABLE_HOLD_OFF_SECONDS
        logger.warning("broker unavailable, task left for the sweep", extra={"task": task.name, "error": error})
        return
    if on_sent is not None:
        on_sent()


def broker_unreachable_forget() -> None:
    """Try every broker again at the next send: every sweep does (the sweep is how work gets back to a broker that
    was down), and so do tests."""
    _unreachable_until.clear()
