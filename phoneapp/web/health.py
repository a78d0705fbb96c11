"""``/healthz``: can this deployment take and classify uploads right now?"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from phoneapp.services.health import health_report


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when usable, 503 otherwise, with the failing parts named; each check answers one word, never an
    internal error text. ``?deep=1``: the slower probe (a write through the storage API, queue depth);
    ``?web=1``: only what this web process needs to take uploads (for a load balancer)."""
    from django.db import connection

    report = health_report(connection=connection, deep=_flag(request, "deep"), web_only=_flag(request, "web"))
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name) in ("1", "true", "yes")
