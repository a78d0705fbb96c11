"""Helpers for race tests: writers in threads of their own, each on its own PostgreSQL connection, and the moment
one of them is stuck behind another's row lock (tests/test_review_races.py, tests/test_bulk_races.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

# How long a helper waits for the other writer to block before going on anyway (the test then fails on its own).
WAIT_SECONDS = 5


def at_once(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` in threads of their own (each with its own connection); what each returned or raised."""
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            outcomes[index] = call()
        except Exception as error:
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def connections_waiting_for_a_lock() -> int:
    """How many connections to the test database wait for a lock now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else read once per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return int(waiting)


def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds, for up to :data:`WAIT_SECONDS`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def stop_after_the_first_lock(locked: threading.Event) -> Callable[..., Any]:
    """An ``execute_wrapper`` that, after the connection's first statement taking row locks, sets ``locked`` and
    waits until another connection waits for a lock: the moment the other writer is stuck behind it."""

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if "UPDATE" in sql and not locked.is_set():  # an UPDATE, or a SELECT ... FOR UPDATE: not a SAVEPOINT
            locked.set()
            until(lambda: connections_waiting_for_a_lock() > 0)
        return result

    return wrapper
