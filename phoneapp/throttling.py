"""The per-user upload rate limit, one budget shared by the API and the web form.

It lives outside both edges so that neither imports the other: the web form calls :func:`upload_rate_spend`
directly, the API through the DRF adapter in :mod:`phoneapp.api.throttling`. The bookkeeping is DRF's
``SimpleRateThrottle`` (the same cache key, history list and wait formula), with a request costing one entry per
picture: it is the worker's time we protect.

Counters live in Django's default cache. With the default ``LocMemCache`` each process counts on its own, so
a deployment with several web processes must set ``CACHE_URL`` (Redis, or the database cache) for the limit to
hold across them; see docs/reliability.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict

from phoneapp.auth_backends import client_address

logger = logging.getLogger(__name__)

SCOPE = "uploads"
# DRF's key format, so counters written before this module existed still count.
CACHE_KEY = "throttle_%(scope)s_%(ident)s"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RateDecision:
    """``allowed``, or refused with ``wait``: DRF's suggested seconds until one more picture fits (None when the
    request costs more than the whole budget)."""

    allowed: bool
    wait: float | None = None

    def retry_after_seconds(self) -> int:
        """The web form's ``Retry-After``: the wait rounded, at least one second."""
        return max(1, round(self.wait)) if self.wait is not None else 1


def upload_rate_spend(*, client: object, cost: int) -> RateDecision:
    """Spend ``cost`` pictures of ``UPLOAD_RATE_LIMIT`` for ``client`` (:func:`upload_rate_client`), or refuse
    without spending any.

    Fails open: when the cache (often the broker's Redis) is down, uploads must still be accepted and left
    pending, not answered with a 500."""
    # The rate is read at each request rather than frozen at import, so it is configurable; a malformed one is
    # a configuration error, not an outage, so it is parsed outside the guard.
    rate: str | None = settings.UPLOAD_RATE_LIMIT
    if rate is None:
        return RateDecision(allowed=True)
    number, period = rate.split("/")
    try:
        return _spend(client=client, cost=cost, num_requests=int(number), duration=_PERIODS[period[0]])
    except Exception as error:
        logger.warning("rate limit cache unavailable; request allowed", extra={"error": error})
        return RateDecision(allowed=True)


def upload_rate_cost(files: MultiValueDict[str, UploadedFile]) -> int:
    """What a request costs: one per picture, at least one. Reading the files may refuse the request (too many
    files): that answer is handler400's, not ours, so callers count outside the fail-open guard."""
    return max(1, len(files.getlist("image")))


def upload_rate_client(request: HttpRequest) -> object:
    """Whose budget a request spends: the signed-in user's, else its client address (both edges require a login,
    so the address is a fallback only)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.pk
    return client_address(request)


def _spend(*, client: object, cost: int, num_requests: int, duration: int) -> RateDecision:
    # SimpleRateThrottle.allow_request, with a request costing ``cost`` entries instead of one.
    key = CACHE_KEY % {"scope": SCOPE, "ident": client}
    history: list[float] = cache.get(key, [])
    now = time.time()
    while history and history[-1] <= now - duration:
        history.pop()
    if len(history) + cost > num_requests:
        return RateDecision(allowed=False, wait=_wait(history, now=now, num_requests=num_requests, duration=duration))
    history[:0] = [now] * cost
    cache.set(key, history, duration)
    return RateDecision(allowed=True)


def _wait(history: list[float], *, now: float, num_requests: int, duration: int) -> float | None:
    # SimpleRateThrottle.wait: the time left in the window spread over the requests still available.
    remaining = duration - (now - history[-1]) if history else duration
    available = num_requests - len(history) + 1
    return remaining / float(available) if available > 0 else None
