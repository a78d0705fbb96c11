"""Asking a signed-in person for their password again before something a stolen session must not do alone.

Minting an API token and deleting the account both ask: a wrong password counts as a failed login (the login
throttle, through ``authenticate``), so a session someone else got hold of is no way to guess it without limit.
"""

from __future__ import annotations

from django.contrib.auth import authenticate

from phoneapp.auth_backends import REFUSED_ATTRIBUTE
from phoneapp.signed_in import SignedInRequest


def password_refusal(request: SignedInRequest, *, to_do: str) -> str:
    """Why the posted ``password`` does not confirm the signed-in user ("" when it does).

    ``to_do`` finishes "Enter your password to ...", the message for an empty field."""
    password = request.POST.get("password", "")
    if not password:
        return f"Enter your password to {to_do}: nothing was changed."
    confirmed = authenticate(request, username=request.user.get_username(), password=password)
    wait = password_wait(request)
    if wait is not None:
        return f"Too many wrong passwords; try again in {wait} seconds. Nothing was changed."
    if confirmed is None or confirmed.pk != request.user.pk:
        return "That is not your password: nothing was changed."
    return ""


def password_wait(request: SignedInRequest) -> int | None:
    """Seconds until the login throttle lets this person try a password again, when it just refused one (a
    page answers 429 with ``Retry-After``, as the sign-in page does)."""
    return getattr(request, REFUSED_ATTRIBUTE, None)
