"""The per-user upload rate limit, shared by the API and the web form (one budget for both).

Counters live in Django's default cache. With the default ``LocMemCache`` each process counts on its own, so
a deployment with several web processes must set ``CACHE_URL`` (Redis, or the database cache) for the limit to
hold across them; see docs/reliability.md.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class UploadRateThrottle(SimpleRateThrottle):
    """``UPLOAD_RATE_LIMIT`` pictures per user (per client address when anonymous): each file of a request
    counts, so one request with 20 files spends 20 of the budget -- it is the worker's time we protect."""

    scope = "uploads"

    def get_rate(self) -> str:
        # Read at each request rather than frozen into DRF's class attribute at import, so it is configurable.
        return settings.UPLOAD_RATE_LIMIT

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Any, view: Any) -> bool:
        """Fail open: when the cache (often the broker's Redis) is down, uploads must still be accepted and
        left pending, not answered with a 500."""
        # Reading the files may refuse the request (too many files): that answer is handler400's, not ours.
        cost = max(1, len(request.FILES.getlist("image")))
        try:
            return self._allow(request, view, cost=cost)
        except Exception as error:
            logger.warning("rate limit cache unavailable; request allowed", extra={"error": error})
            return True

    def _allow(self, request: Any, view: Any, *, cost: int) -> bool:
        # SimpleRateThrottle.allow_request, with a request costing ``cost`` entries instead of one.
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) + cost > self.num_requests:
            return self.throttle_failure()
        self.history[:0] = [self.now] * cost
        self.cache.set(self.key, self.history, self.duration)
        return True

    def retry_after_seconds(self) -> int:
        wait = self.wait()
        return max(1, round(wait)) if wait is not None else 1
