"""Throttling password guessing: failed logins are counted per account and per client address.

Every door that checks a password (the login page, the admin's login, the API's token endpoint) goes through
Django's ``authenticate()``; :class:`phoneapp.auth_backends.ThrottledModelBackend` asks
:func:`login_attempt_wait` before checking a password, and a ``user_login_failed`` receiver calls
:func:`login_failure_record` after a wrong one. Past ``LOGIN_FAILURE_LIMIT`` (default 10 a minute) for the
account, or for the address, every attempt is refused -- the right password too -- until the window ends.

Counters live in Django's default cache, so several web processes share them only with a shared ``CACHE_URL``
(README, "Production setup"). A cache that is down lets logins through (logged): an outage of the cache must not
lock everybody out.
"""

from __future__ import annotations

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def login_rate() -> tuple[int, int]:
    """``LOGIN_FAILURE_LIMIT`` as (failures allowed, window in seconds), e.g. ``10/minute`` -> (10, 60)."""
    count, _, period = settings.LOGIN_FAILURE_LIMIT.partition("/")
    return int(count), _PERIODS[period.strip()[:1].lower() or "m"]


def login_attempt_wait(*, username: str | None, address: str | None) -> int | None:
    """Seconds before another login attempt for ``username`` from ``address`` may be tried, or ``None`` if it
    may be tried now. Either may be ``None`` (unknown); it is then not counted."""
    allowed, window = login_rate()
    try:
        for key in _keys(username=username, address=address):
            if (cache.get(key) or 0) >= allowed:
                started = cache.get(f"{key}:start") or time.time()
                return max(1, round(started + window - time.time()))
    except Exception as error:
        logger.warning("login throttle cache unavailable; attempt allowed", extra={"error": error})
    return None


def login_failure_record(*, username: str | None, address: str | None) -> None:
    """Count one wrong password against the account and the address, each in its own fixed window."""
    _, window = login_rate()
    try:
        for key in _keys(username=username, address=address):
            # add() then incr() is atomic on Redis, so parallel guessers through several processes are all counted.
            if cache.add(key, 0, timeout=window):
                cache.set(f"{key}:start", time.time(), timeout=window)
            cache.incr(key)
    except Exception as error:
        logger.warning("login throttle cache unavailable; failure not counted", extra={"error": error})
    logger.warning("login failed", extra={"address": address})


def _keys(*, username: str | None, address: str | None) -> list[str]:
    keys = []
    if username:
        # Hashed: user names may hold characters a cache key cannot, and the cache need not hold them at all.
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append(f"login-failures:account:{digest}")
    if address:
        keys.append(f"login-failures:address:{address}")
    return keys
