"""Throttling password guessing: failed logins are counted per account and per client address.

Every door that checks a password (the login page, the admin's login, the API's token endpoint) goes through
Django's ``authenticate()``; :class:`phoneapp.auth_backends.ThrottledModelBackend` counts each attempt as a
failure *before* the password is checked (:func:`login_attempt_reserve`) and gives it back when the password was
right (:func:`login_attempt_succeeded`). Counting first is what holds under parallel requests: checking the count
and adding the failure after the password hash let 60 guesses sent at once all be checked. Past
``LOGIN_FAILURE_LIMIT`` (default 10 a minute) for the account, or for the address, every attempt is refused -- the
right password too -- until the window ends.

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
    """Seconds before another attempt for ``username`` from ``address`` may be tried, or ``None``: a look that
    counts nothing (:func:`phoneapp.login_throttle.login_throttled` answers 429 with it before any hashing)."""
    allowed, window = login_rate()
    try:
        for key in _keys(username=username, address=address):
            if (cache.get(key) or 0) >= allowed:
                started = cache.get(f"{key}:start") or time.time()
                return max(1, round(started + window - time.time()))
    except Exception as error:
        logger.warning("login throttle cache unavailable; attempt allowed", extra={"error": error})
    return None


def login_attempt_reserve(*, username: str | None, address: str | None) -> int | None:
    """Count this attempt against the account and the address before its password is checked; ``None`` when it
    may go ahead, else the seconds until the window ends (the attempt is then not counted: a refused attempt must
    not push the lock's end further away). Either may be ``None`` (unknown); it is then not counted."""
    allowed, window = login_rate()
    counted: list[str] = []
    try:
        for key in _keys(username=username, address=address):
            # add() then incr() is atomic on Redis, so attempts through several processes at once are all counted.
            if cache.add(key, 0, timeout=window):
                cache.set(f"{key}:start", time.time(), timeout=window)
            counted.append(key)
            if cache.incr(key) > allowed:
                _give_back(counted)
                started = cache.get(f"{key}:start") or time.time()
                return max(1, round(started + window - time.time()))
    except Exception as error:
        logger.warning("login throttle cache unavailable; attempt allowed", extra={"error": error})
    return None


def login_attempt_succeeded(*, username: str | None, address: str | None) -> None:
    """The password was right: the attempt :func:`login_attempt_reserve` counted was no failure."""
    _give_back(_keys(username=username, address=address))


def _give_back(keys: list[str]) -> None:
    for key in keys:
        try:
            cache.decr(key)
        except ValueError:
            pass  # the window ended meanwhile: nothing left to give back
        except Exception as error:
            logger.warning("login throttle cache unavailable; attempt not given back", extra={"error": error})


def _keys(*, username: str | None, address: str | None) -> list[str]:
    keys = []
    if username:
        # Hashed: user names may hold characters a cache key cannot, and the cache need not hold them at all.
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append(f"login-failures:account:{digest}")
    if address:
        keys.append(f"login-failures:address:{address}")
    return keys
