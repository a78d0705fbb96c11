"""DRF's face of the upload rate limit: the rule and its counters are :mod:`phoneapp.throttling`, shared with the
web form; this adapter only lets ``APIView.get_throttles`` use it (DRF then answers 429 with ``Retry-After``)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from phoneapp.throttling import upload_rate_client, upload_rate_cost, upload_rate_spend


class UploadRateThrottle(BaseThrottle):
    """``UPLOAD_RATE_LIMIT`` pictures per user: each file of a request counts, so one request with 20 files
    spends 20 of the budget."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        # DRF's request parses the files; the client (user set by DRF's authentication, address) is the Django
        # request's.
        cost = upload_rate_cost(request.FILES)
        decision = upload_rate_spend(client=upload_rate_client(request._request), cost=cost)
        self._wait = decision.wait
        return decision.allowed

    def wait(self) -> float | None:
        return self._wait
