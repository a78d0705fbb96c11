"""What the API's views receive once authenticated (the authentication itself, by API key or session, is in
``REST_FRAMEWORK``: :class:`phoneapp.auth_backends.HashedTokenAuthentication` first)."""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework.request import Request


class AuthenticatedRequest(Request):
    """For the type checker: what a view behind ``IsAuthenticated`` (the API's default permission) receives, whose
    ``user`` is a :class:`User`, never ``AnonymousUser``. Never instantiated; DRF hands the view its own
    ``Request``."""

    user: User
