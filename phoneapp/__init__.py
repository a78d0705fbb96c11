"""phone-check: the Django project and its one app."""

from phoneapp.celery import app as celery_app

__all__ = ["celery_app"]
