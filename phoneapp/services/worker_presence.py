"""What the processes share through the broker's Redis: worker heartbeats and the sweep lock.

Each worker's main process writes a heartbeat every ``WORKER_HEARTBEAT_SECONDS`` seconds: a key that expires
after ``heartbeat_ttl()`` seconds (8 by default) and holds the ids of the uploads its processes are classifying
right now. From it, ``/healthz`` tells whether any worker is alive, and the sweep tells an upload whose worker
died (``processing``, listed by no live worker) from one a live worker is still on -- so a killed worker's uploads
are sent again within seconds instead of after ``PROCESSING_TIMEOUT_SECONDS``, and a second delivery of an upload
a live worker is on does nothing.

Next to it each worker keeps a longer-lived *holdings* key: every upload whose message it holds, started or not
(a prefork worker takes a message for each process, and one may sit in its hands unclaimed, still ``pending``). When
a worker dies, those messages come back only after the broker's visibility timeout (10 minutes in production); the
sweep reads the holdings of workers without a heartbeat and sends their pending uploads again at once.

Without a Redis broker (no broker: classification in the web process) there are no workers to watch; every
function here then answers ``None``/does nothing, and the callers fall back to the timeout.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "phonecheck:worker-heartbeat:"
HOLDINGS_PREFIX = "phonecheck:worker-holdings:"


def heartbeat_interval() -> float:
    """Seconds between heartbeats (``WORKER_HEARTBEAT_SECONDS``, 2 by default; the live tests beat faster so a
    task shorter than a beat is still seen in hand)."""
    return float(getattr(settings, "WORKER_HEARTBEAT_SECONDS", 2.0))


# Long enough to survive a few missed beats of a busy main process, short enough to notice a dead worker fast.
HEARTBEAT_TTL = 8
# Beats a heartbeat outlives: with a slower WORKER_HEARTBEAT_SECONDS the key must not expire between two beats.
BEATS_PER_TTL = 4


def heartbeat_ttl() -> int:
    """How long a heartbeat says "alive": ``HEARTBEAT_TTL`` (8 s), or four beats when beats are slower than 2 s."""
    return max(HEARTBEAT_TTL, math.ceil(BEATS_PER_TTL * heartbeat_interval()))


SWEEP_LOCK_KEY = "phonecheck:sweep-lock"
# Above what the longest sweep takes (5,000 sends: 3.7 s measured on a 2-core VM, 2026-12-05) and short, since a
# sweeper killed mid-sweep keeps every other sweep off until it expires (it was 120 s: two minutes of no sweep).
SWEEP_LOCK_SECONDS = 20


@lru_cache(maxsize=4)
def _client_for(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=10)


def broker_redis() -> Any | None:
    """A Redis client on the broker, or ``None`` when the broker is not Redis (or there is none)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    return _client_for(url)


def holdings_ttl() -> int:
    """How long a dead worker's holdings are kept: after ``PROCESSING_TIMEOUT_SECONDS`` the sweep sends every
    pending upload whose message is that old anyway."""
    return max(int(settings.PROCESSING_TIMEOUT_SECONDS), heartbeat_ttl())


def worker_heartbeat_write(*, hostname: str, upload_ids: Iterable[int], held_ids: Iterable[int] = ()) -> None:
    """Say ``hostname`` is alive and classifying ``upload_ids``, and holds the messages of ``held_ids`` (those and
    any it has not started yet); raises the client's error if Redis is down."""
    client = broker_redis()
    if client is None:
        return
    payload = json.dumps({"at": time.time(), "uploads": sorted(set(upload_ids))})
    held = sorted(set(held_ids) | set(upload_ids))
    with client.pipeline(transaction=False) as pipe:
        pipe.set(HEARTBEAT_PREFIX + hostname, payload, ex=heartbeat_ttl())
        if held:
            pipe.set(HOLDINGS_PREFIX + hostname, json.dumps(held), ex=holdings_ttl())
        else:
            pipe.delete(HOLDINGS_PREFIX + hostname)
        pipe.execute()


def worker_heartbeat_clear(*, hostname: str) -> None:
    """A worker stopping cleanly says so at once (``/healthz`` need not wait for the key to expire). Its holdings
    go too: a warm shutdown finishes what it started and hands the rest back to the broker."""
    client = broker_redis()
    if client is not None:
        client.delete(HEARTBEAT_PREFIX + hostname, HOLDINGS_PREFIX + hostname)


def workers_alive() -> dict[str, list[int]] | None:
    """Live workers and the uploads each is classifying; ``None`` when that cannot be known (no Redis broker,
    or Redis unreachable)."""
    client = broker_redis()
    if client is None:
        return None
    try:
        keys = list(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100))
        values = client.mget(keys) if keys else []
    except Exception as error:
        logger.warning("worker heartbeats unreadable", extra={"error": error})
        return None
    alive: dict[str, list[int]] = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:  # expired between SCAN and MGET
            continue
        name = (key.decode() if isinstance(key, bytes) else key)[len(HEARTBEAT_PREFIX) :]
        try:
            alive[name] = [int(upload_id) for upload_id in json.loads(value)["uploads"]]
        except (ValueError, KeyError, TypeError):
            alive[name] = []
    return alive


def uploads_held_by_dead_workers() -> dict[str, list[int]] | None:
    """Workers whose heartbeat has gone while their holdings remain, and the uploads whose messages they held;
    ``None`` when that cannot be known (no Redis broker, or Redis unreachable). A worker whose main process missed
    beats for ``heartbeat_ttl()`` seconds looks dead here too: its uploads are then sent twice, which
    classification ignores."""
    client = broker_redis()
    if client is None:
        return None
    try:
        keys = list(client.scan_iter(match=HOLDINGS_PREFIX + "*", count=100))
        names = [(key.decode() if isinstance(key, bytes) else key)[len(HOLDINGS_PREFIX) :] for key in keys]
        holdings = client.mget(keys) if keys else []
        beats = client.mget([HEARTBEAT_PREFIX + name for name in names]) if names else []
    except Exception as error:
        logger.warning("worker holdings unreadable", extra={"error": error})
        return None
    dead: dict[str, list[int]] = {}
    for name, held, beat in zip(names, holdings, beats, strict=True):
        if held is None or beat is not None:
            continue
        try:
            dead[name] = [int(upload_id) for upload_id in json.loads(held)]
        except (ValueError, TypeError):
            dead[name] = []
    return dead


def dead_worker_holdings_forget(names: Iterable[str]) -> None:
    """The sweep has sent these dead workers' uploads again: their holdings are done with."""
    client = broker_redis()
    keys = [HOLDINGS_PREFIX + name for name in names]
    if client is None or not keys:
        return
    try:
        client.delete(*keys)
    except Exception as error:  # kept until they expire: the next sweep sends those uploads again, harmlessly
        logger.warning("dead workers' holdings not cleared", extra={"error": error})


def uploads_being_classified(*, except_worker: str | None = None) -> set[int] | None:
    """Ids of uploads some live worker (other than ``except_worker``) is classifying; ``None`` if unknown."""
    alive = workers_alive()
    if alive is None:
        return None
    return {upload_id for name, ids in alive.items() if name != except_worker for upload_id in ids}


@contextmanager
def sweep_lock() -> Iterator[bool]:
    """Hold the one sweep lock if nobody does; yields whether it was taken. With no Redis broker (no workers,
    nothing concurrent to guard against) it is always taken. A Redis error lets the sweep run unlocked:
    sending twice costs a duplicate message, which classification ignores, while not sweeping could strand
    uploads."""
    client = broker_redis()
    if client is None:
        yield True
        return
    lock = client.lock(SWEEP_LOCK_KEY, timeout=SWEEP_LOCK_SECONDS, blocking=False)
    try:
        acquired = lock.acquire()
    except Exception as error:
        logger.warning("sweep lock unavailable; sweeping unlocked", extra={"error": error})
        yield True
        return
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except Exception:  # expired or Redis gone: it lapses by itself
                logger.info("sweep lock already released", exc_info=True)


def queue_depth(queues: Iterable[str] = ("classify", "heatmaps")) -> dict[str, int] | None:
    """Messages waiting in each Celery queue on the Redis broker; ``None`` when unknown."""
    client = broker_redis()
    if client is None:
        return None
    try:
        return {queue: int(client.llen(queue)) for queue in queues}
    except Exception as error:
        logger.warning("queue depth unreadable", extra={"error": error})
        return None
