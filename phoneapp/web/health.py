"""``/healthz``: can this deployment take and classify uploads right now?"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from phoneapp.services.health import health_report


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when usable, 503 otherwise, with the failing parts named; each check answers one word, never an
    internal error text. ``?deep=1``: the slower probe (a write through the storage API, queue depth)."""
    from django.db import connection

    report = health_report(connection=connection, deep=request.GET.get("deep") in ("1", "true", "yes"))
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)
