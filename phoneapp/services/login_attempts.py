"""Throttling password guessing: failed logins are counted per account and per client address.

Every door that checks a password (the login page, the admin's login, the API's token endpoint) goes through
Django's ``authenticate()``; :class:`phoneapp.auth_backends.ThrottledModelBackend` counts each attempt as a
failure *before* the password is checked (:func:`login_attempt_reserve`) and gives it back when the password was
right (:func:`login_attempt_give_back`). Counting first is what holds under parallel requests: checking the count
and adding the failure after the password hash let 60 guesses sent at once all be checked. Past
``LOGIN_FAILURE_LIMIT`` (default 10 a minute) for the account, or for the address, every attempt is refused -- the
right password too -- until the window ends.

Counters live in Django's default cache, so several web processes share them only with a shared ``CACHE_URL``
(README, "Production setup"). A cache that is down lets logins through (logged): an outage of the cache must not
lock everybody out. Each window has its own counter (the window's number is in the key) kept for two windows: a
counter is never touched after its window, so neither Redis's ``EXISTS``-then-``INCRBY`` in Django's ``incr`` (a key
expiring in between came back without an expiry, locking for good) nor the database cache's read-then-write (which
resets the expiry) can keep a lock past its window. Counting is exact on Redis; the database cache may lose a few
counts under parallel requests (its ``incr`` is not atomic).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def login_rate() -> tuple[int, int]:
    """``LOGIN_FAILURE_LIMIT`` as (failures allowed, window in seconds), e.g. ``10/minute`` -> (10, 60)."""
    count, _, period = settings.LOGIN_FAILURE_LIMIT.partition("/")
    return int(count), _PERIODS[period.strip()[:1].lower() or "m"]


@dataclass(frozen=True)
class LoginAttempt:
    """One attempt as :func:`login_attempt_reserve` counted it: the counters it added to (to give back when the
    password was right, or the check failed), or the seconds to wait when it was refused (nothing counted)."""

    keys: tuple[str, ...] = ()
    wait: int | None = None


def login_attempt_wait(*, username: str | None, address: str | None) -> int | None:
    """Seconds before another attempt for ``username`` from ``address`` may be tried, or ``None``: a look that
    counts nothing (:func:`phoneapp.login_throttle.login_throttled` answers 429 with it before any hashing)."""
    allowed, window = login_rate()
    try:
        for key in _keys(username=username, address=address, window=window):
            if (cache.get(key) or 0) >= allowed:
                return _seconds_left(window)
    except Exception as error:
        logger.warning("login throttle cache unavailable; attempt allowed", extra={"error": error})
    return None


def login_attempt_reserve(*, username: str | None, address: str | None) -> LoginAttempt:
    """Count this attempt against the account and the address before its password is checked. Refused (``wait``
    set, nothing counted: a refused attempt must not push the lock's end further away) past the limit. Either may
    be ``None`` (unknown); it is then not counted."""
    allowed, window = login_rate()
    counted: list[str] = []
    try:
        for key in _keys(username=username, address=address, window=window):
            # add() then incr() is atomic on Redis, so attempts through several processes at once are all counted.
            cache.add(key, 0, timeout=2 * window)
            counted.append(key)
            if cache.incr(key) > allowed:
                login_attempt_give_back(LoginAttempt(keys=tuple(counted)))
                return LoginAttempt(wait=_seconds_left(window))
    except Exception as error:
        logger.warning("login throttle cache unavailable; attempt allowed", extra={"error": error})
    return LoginAttempt(keys=tuple(counted))


def login_attempt_give_back(attempt: LoginAttempt) -> None:
    """The attempt was no failure (the password was right, or it could not be checked): uncount it."""
    for key in attempt.keys:
        try:
            cache.decr(key)
        except ValueError:
            pass  # the counter is gone (a cache restart): nothing left to give back
        except Exception as error:
            logger.warning("login throttle cache unavailable; attempt not given back", extra={"error": error})


def _seconds_left(window: int) -> int:
    return max(1, round(window - time.time() % window))


def _keys(*, username: str | None, address: str | None, window: int) -> list[str]:
    """This window's counters: its number is part of the key, so a window's counter is never written after it."""
    number = int(time.time() // window)
    keys = []
    if username:
        # Hashed: user names may hold characters a cache key cannot, and the cache need not hold them at all.
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append(f"login-failures:account:{digest}:{window}:{number}")
    if address:
        keys.append(f"login-failures:address:{address}:{window}:{number}")
    return keys
