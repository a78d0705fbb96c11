"""The web process's entry point (``gunicorn phoneapp.wsgi:application``).

In production mode (``DEBUG=0``) it refuses to start without ``ALLOWED_HOSTS``: Django would answer every request,
``/healthz`` included, with 400. The check lives here rather than in the settings because workers and management
commands, which serve no HTTP, run with the same settings and need no host names.
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
application = get_wsgi_application()
