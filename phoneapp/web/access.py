"""Who may open staff pages: anonymous visitors are sent to log in, signed-in non-staff get the app's 403 page.

Django's ``staff_member_required`` sent a signed-in non-staff user to the admin's login form ("You are
authenticated as alice, but are not authorized…"), which reads like a broken login rather than "not for you".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Let active staff users through; log in first when anonymous; 403 (``403.html``) for everyone else."""

    @wraps(view)
    def checked(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("Only staff can open this page.")
        return view(request, *args, **kwargs)

    return login_required(checked)
