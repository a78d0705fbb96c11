"""The web process's entry point (``gunicorn phoneapp.wsgi:application``).

In production mode (``DEBUG=0``) it refuses to start without ``ALLOWED_HOSTS``: Django would answer every request,
``/healthz`` included, with 400. And it refuses host names other than this machine's while ``DEBUG`` is on only by
default (unset): ``make run``'s development default would otherwise serve a real host Django's debug pages, which
show code, settings and every address, because an operator set the host and forgot ``DEBUG=0``. The checks live
here rather than in the settings because workers and management commands, which serve no HTTP, run with the same
settings and need no host names.

Without a broker (``make run``'s quick start) this process classifies uploads itself: its first request starts
loading the model in the background, so the first upload does not wait for it (resident_model.py).
"""

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phoneapp.settings")
if not settings.DEBUG and not settings.ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must be set when DEBUG=0 (the host names this site answers to, e.g. phones.example.com): "
        "without it every request is refused."
    )
if settings.DEBUG and "DEBUG" not in os.environ and set(settings.ALLOWED_HOSTS) - set(settings.LOCAL_HOSTS):
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS names other hosts than this machine, but DEBUG is not set, so it is on (the development "
        "default: error pages show code and settings). Set DEBUG=0 to deploy, or DEBUG=1 to keep debug pages on "
        "purpose."
    )
application = get_wsgi_application()

from phoneapp.services.dispatch import broker_configured  # noqa: E402  (needs the apps loaded just above)

if not broker_configured():
    from phoneapp.resident_model import preload_on_first_request

    preload_on_first_request()
