"""The app's URLs plus one that fails, so tests can see the 500 page a real failure gets (``ROOT_URLCONF``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from phoneapp.urls import handler400
from phoneapp.urls import urlpatterns as app_urlpatterns

__all__ = ["handler400", "urlpatterns"]


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a deliberate failure, to show the 500 page")


urlpatterns = [*app_urlpatterns, path("test-failure/", fail)]
