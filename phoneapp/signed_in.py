"""The request a signed-in view receives, for the type checker: ``request.user`` is a :class:`User`.

Django types ``HttpRequest.user`` as ``User | AnonymousUser``; behind ``login_required``, ``staff_required`` or the
admin's own check it can only be a user, and the services take a ``User``. Annotating such views with
:class:`SignedInRequest` says so without a cast (django-stubs' documented pattern); at run time the request is the
plain ``HttpRequest`` Django made. Where a signature is fixed by a base class (admin hooks), :func:`signed_in_user`
narrows instead.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    """An ``HttpRequest`` whose view is only reached by a signed-in user (never instantiated)."""

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """``request.user`` of a request the admin or a login check already let through; an anonymous one (which
    those checks never let reach here) is refused like any missing permission rather than acted for."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Sign in first.")
    return user
