"""Asking a signed-in person for their password again before something a stolen session must not do alone.

Minting an API token and deleting the account both ask: a wrong password counts as a failed login (the login
throttle, through ``authenticate``), so a session someone else got hold of is no way to guess it without limit.
They ask through :class:`PasswordConfirmForm`, so a refusal is the password field's error: Django marks the field
``aria-invalid`` and names the error's paragraph (``<id>_error``) in its ``aria-describedby``, and a screen reader on
the field says why, as on the password-change page. Said only in a message above the page, the field looked valid.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate

from phoneapp.auth_backends import REFUSED_ATTRIBUTE
from phoneapp.signed_in import SignedInRequest


def password_wait(request: SignedInRequest) -> int | None:
    """Seconds until the login throttle lets this person try a password again, when it just refused one (a
    page answers 429 with ``Retry-After``, as the sign-in page does)."""
    return getattr(request, REFUSED_ATTRIBUTE, None)


class PasswordConfirmForm(forms.Form):
    """The signed-in person's password, asked again to ``to_do`` (finishing "Enter your password to ..."); a wrong
    one, an empty one or one the login throttle refused is the field's error.

    ``auto_id`` names the field's id (e.g. ``"token-%s"``: ``token-password``), its error paragraph's being that id
    followed by ``_error`` (what Django's widget names in ``aria-describedby``)."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args: Any, request: SignedInRequest, to_do: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.fields["password"].error_messages["required"] = f"Enter your password to {to_do}: nothing was changed."

    def clean_password(self) -> str:
        password = str(self.cleaned_data["password"])
        confirmed = authenticate(self.request, username=self.request.user.get_username(), password=password)
        wait = password_wait(self.request)
        if wait is not None:
            raise forms.ValidationError(f"Too many wrong passwords; try again in {wait} seconds. Nothing was changed.")
        if confirmed is None or confirmed.pk != self.request.user.pk:
            raise forms.ValidationError("That is not your password: nothing was changed.")
        return password
