"""Sign-in sessions past their end are removed from the database, not only refused.

Django refuses an expired session but never deletes its row (``manage.py clearsessions`` does, when someone runs
it), so ``django_session`` kept every session ever opened: a signed-out person's, and the other browsers' sessions
of a deleted account, which are refused from their next request (the user they name is gone, and ids are never
given again) but kept that user's id and a digest of its password hash. Celery beat runs this daily.
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings


def sessions_clear_expired() -> None:
    """Delete every stored session past its expiry date (``SESSION_COOKIE_AGE`` after its last save), through
    the configured session engine, exactly as ``manage.py clearsessions`` does; live sessions are untouched."""
    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()
