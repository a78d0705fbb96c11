"""How many engine threads a process that serves the model takes when ``INFERENCE_THREADS`` is not set.

A Celery worker runs several processes (the Procfile's: two), each with the model resident: between them they
should use the machine's cores once, not once each. Two processes of one thread carried more uploads per second on
a 2-core box than one process of two (58.8 against 48.4, Run E in docs/experiments.md), and four threads on two
cores only add contention. Every other process (a web process classifying without a broker, ``manage.py
evaluate``, the retrain's scoring) is one process with the cores to itself.

The worker's main process records how many processes it will fork (:func:`worker_processes_set`, from a Celery
signal in ``phoneapp/celery.py``) before it forks them, so each child inherits the count. The Procfile used to set
``INFERENCE_THREADS=1`` in the worker's environment instead, which hid a value set in ``.env`` (the environment
wins over ``.env``).
"""

from __future__ import annotations

import os

_worker_processes = 1


def worker_processes_set(count: int) -> None:
    """Record that this process is a worker's main process that will run ``count`` processes with the model."""
    global _worker_processes
    _worker_processes = max(1, count)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, as a container or ``taskset`` limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serving_threads_default() -> int:
    """The available cores shared evenly among the worker's processes, at least one thread each."""
    return max(1, available_cores() // _worker_processes)
