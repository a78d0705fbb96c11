"""The per-user upload rate limit, one budget shared by the API and the web form.

It lives outside both edges so that neither imports the other: the API view lists :class:`UploadRateThrottle`
in ``get_throttles`` (DRF then answers 429 with ``Retry-After``), the web form calls ``allow_request`` itself.
The bookkeeping is DRF's ``SimpleRateThrottle`` (its cache key and history list), with a request costing one entry
per picture (it is the worker's time we protect) and a wait that counts them.

Counters live in Django's default cache. With the default ``LocMemCache`` each process counts on its own, so
a deployment with several web processes must set ``CACHE_URL`` (Redis, or the database cache) for the limit to
hold across them; see docs/reliability.md.
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from phoneapp.auth_backends import client_address
from phoneapp.services.errors import InvalidUpload

logger = logging.getLogger(__name__)


class UploadRateThrottle(SimpleRateThrottle):
    """``UPLOAD_RATE_LIMIT`` pictures per user: each file of a request counts, so one request with 20 files
    spends 20 of the budget, and a request that does not fit whole is refused without spending any; an upload
    refused for bad input gets its share back (:meth:`refund`).

    Fails open: when the cache (often the broker's Redis) is down, uploads must still be accepted and left
    pending, not answered with a 500."""

    scope = "uploads"
    cost = 1
    # Set by DRF's __init__ from the rate (None: no limit); its type stubs leave them out.
    num_requests: int | None
    duration: int | None

    def get_rate(self) -> str | None:
        # Read when the throttle is made (once per request) rather than DRF's rates frozen at import, so it is
        # configurable; a malformed rate fails there, outside the fail-open guard: a configuration error.
        return settings.UPLOAD_RATE_LIMIT

    def allow_request(self, request: Request | HttpRequest, view: APIView | None) -> bool:
        # Reading the files may refuse the request (too many files): that answer is handler400's, not ours, so
        # the cost is counted outside the guard.
        self.cost = max(1, len(request.FILES.getlist("image")))
        if self.num_requests is not None and self.cost > self.num_requests:
            # No wait would let it through: said as bad input (400), not as "try again in 1 second".
            raise InvalidUpload(
                f"Too many pictures at once: at most {self.num_requests} a {self.period_name()}; send fewer in one "
                "upload."
            )
        try:
            return super().allow_request(request, view)  # type: ignore[arg-type]  # DRF only passes them on
        except Exception as error:
            logger.warning("rate limit cache unavailable; request allowed", extra={"error": error})
            return True

    def get_cache_key(self, request: Request | HttpRequest, view: APIView | None) -> str:
        # The signed-in user's budget, else the client address (both edges require a login, so the address is a
        # fallback only).
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else client_address(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def throttle_success(self) -> bool:
        # DRF has checked that one more entry fits; all ``cost`` of them must.
        assert self.num_requests is not None
        if len(self.history) + self.cost > self.num_requests:
            return self.throttle_failure()
        self.history[:0] = [self.now] * self.cost
        self.cache.set(self.key, self.history, self.duration)
        self.charged = True
        return True

    def refund(self) -> None:
        """Give back what this request spent, when the upload it allowed was refused (a bad file, too many
        files): bad input changes nothing, the budget included. Fails open like the charge."""
        if not getattr(self, "charged", False):
            return
        self.charged = False
        try:
            history: list[float] = self.cache.get(self.key, [])
            for _ in range(self.cost):
                if self.now in history:
                    history.remove(self.now)
            self.cache.set(self.key, history, self.duration)
        except Exception as error:
            logger.warning("rate limit cache unavailable; refund skipped", extra={"error": error})

    def wait(self) -> float:
        """Seconds until this request's ``cost`` pictures fit: until enough of the oldest counted ones leave the
        window. DRF's formula spreads the window over single requests still available, which told a 2-picture
        request to come back in 30 s when the one picture counted left only after 60 (the retry was refused again,
        with 15). Asked only of a refused request, which fits the budget (:meth:`allow_request` refuses a larger
        one as bad input)."""
        assert self.num_requests is not None and self.duration is not None
        must_leave = max(1, len(self.history) + self.cost - self.num_requests)
        # history is newest first: the must_leave-th oldest entry is the last that has to go.
        last_to_leave: float = self.history[-must_leave]
        return max(0.0, last_to_leave + self.duration - self.now)

    def retry_after_seconds(self) -> int:
        """The web form's ``Retry-After``: the wait rounded up, as DRF's answer rounds it (rounded to the nearest
        second, a retry on time could come before the request fits), at least one second."""
        return max(1, math.ceil(self.wait()))

    def period_name(self) -> str:
        """The rate's period in words ("minute"), for messages."""
        names = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
        return names.get(self.duration or 0, f"{self.duration} seconds")
