"""The signed-in person's own account: its page, changing the password, their API token, deleting every picture they
sent, and deleting the account itself.

Django's own password-change view does the checking (the old password, the validators in
``AUTH_PASSWORD_VALIDATORS``) and keeps this session signed in; other sessions of the account are signed out, as
the session hash changes. Deleting everything goes through the same service as deleting one upload.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView, PasswordChangeView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from phoneapp.auth_backends import client_address
from phoneapp.models import ApiToken
from phoneapp.selectors.uploads import uploads_summary
from phoneapp.services.accounts import (
    AccountNotSelfDeletable,
    account_delete,
    account_self_deletable,
    account_self_deletable_require,
)
from phoneapp.services.api_tokens import (
    api_token_digest,
    api_token_get,
    api_token_prefix,
    api_token_regenerate,
    api_token_revoke,
)
from phoneapp.services.login_attempts import LoginAttempt, login_attempt_give_back, login_attempt_reserve
from phoneapp.services.upload_deletion import uploads_delete_all_of
from phoneapp.signed_in import SignedInRequest
from phoneapp.web.password_confirm import PasswordConfirmForm, password_wait


@login_required
@require_GET
def account_page(request: SignedInRequest) -> HttpResponse:
    """Who is signed in, and the doors to the password, the API token and deleting every picture."""
    context = {"summary": uploads_summary(owner=request.user), "token": api_token_get(user=request.user)}
    return render(request, "phoneapp/account.html", context)


class AccountPasswordChangeView(PasswordChangeView):
    """Django's password change, on this site's pages; back to the account page with a message.

    A wrong old password counts as a failed login (``LOGIN_FAILURE_LIMIT``, per account and address), and past the
    limit the form is refused: a stolen session must not be a way to guess the password without limit.
    """

    template_name = "phoneapp/password_change.html"
    success_url = reverse_lazy("account")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username, address = request.user.get_username(), client_address(request)
        self.attempt = login_attempt_reserve(username=username, address=address)  # until the old one is right
        wait = self.attempt.wait
        if wait is not None:
            messages.error(request, f"Too many wrong passwords; try again in {wait} seconds.")
            form = self.get_form_class()(user=request.user)
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            response["Retry-After"] = str(wait)
            return response
        try:
            return super().post(request, *args, **kwargs)
        except BaseException:
            self._give_back()  # not checked (the database was down): no failure
            raise

    attempt = LoginAttempt()

    def _give_back(self) -> None:
        """Once: the attempt counted in :meth:`post` was no failed login."""
        login_attempt_give_back(self.attempt)
        self.attempt = LoginAttempt()

    def form_invalid(self, form: Any) -> HttpResponse:
        if "old_password" not in form.errors:  # the old password was right: not a failed login
            self._give_back()
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        self._give_back()
        response = super().form_valid(form)
        messages.success(
            self.request,
            "Your password is changed. Other browsers signed in as you are signed out; your API token still works "
            "(regenerate or revoke it on the API token page if someone else may know it).",
        )
        return response


@login_required
@require_http_methods(["GET", "POST"])
def account_delete_pictures(request: SignedInRequest) -> HttpResponse:
    """``GET``: how many pictures would go, asked to confirm; ``POST``: delete them (those up to the newest the page
    showed, ``up_to``), with their files, for good."""
    if request.method == "POST":
        try:
            up_to_id = int(request.POST.get("up_to", ""))
        except ValueError:
            messages.error(request, "Nothing was deleted: open this page again and confirm from it.")
            return redirect("account-delete-pictures")
        deleted = uploads_delete_all_of(owner=request.user, up_to_id=up_to_id)
        messages.success(
            request, f"Deleted {deleted} picture{pluralize(deleted)}, with their thumbnails, heat maps and verdicts."
        )
        return redirect("account")
    return render(request, "phoneapp/account_delete_pictures.html", {"summary": uploads_summary(owner=request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def account_delete_page(request: SignedInRequest) -> HttpResponse:
    """``GET``: what deleting the account takes with it, and the password to confirm; ``POST``: delete it, sign
    this browser out and land on the sign-in page. Staff accounts are refused (an administrator deletes them)."""
    form = PasswordConfirmForm(
        request.POST if request.method == "POST" else None,
        request=request,
        to_do="delete your account",
        auto_id="account-delete-%s",
    )
    context = {
        "summary": uploads_summary(owner=request.user),
        "has_api_token": api_token_get(user=request.user) is not None,
        "deletable": account_self_deletable(user=request.user),
        "form": form,
    }
    if request.method == "GET":
        return render(request, "phoneapp/account_delete.html", context)
    try:
        account_self_deletable_require(user=request.user)
        if not form.is_valid():  # the password field says why, and is marked invalid
            return _password_refused(request, "phoneapp/account_delete.html", context)
        deleted = account_delete(user=request.user)
    except AccountNotSelfDeletable as error:
        messages.error(request, error.message)
        return render(request, "phoneapp/account_delete.html", context, status=error.status_code)
    logout(request)
    went = [f"{deleted.pictures} picture{pluralize(deleted.pictures)}"] if deleted.pictures else []
    went += ["its API token"] if deleted.had_api_token else []
    messages.success(
        request, f"Your account is deleted, with {' and '.join(went)}." if went else "Your account is deleted."
    )
    return redirect("login")


def _password_refused(request: SignedInRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """The page again, its password field showing why it was refused: 400, or 429 with ``Retry-After`` when the
    login throttle refused it (as the sign-in page answers)."""
    wait = password_wait(request)
    refused = render(request, template, context, status=400 if wait is None else 429)
    if wait is not None:
        refused["Retry-After"] = str(wait)
    return refused


class SignOutView(LogoutView):
    """Django's log-out (POST only), and the login page it lands on says it worked."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


# The key just made travels from the POST that made it to the page that shows it (once) in a signed cookie that
# lasts a minute and is sent to that page only, never stored on the server: only a digest of a key is kept
# (phoneapp/services/api_tokens.py), and a session row would have held it in the database for weeks whenever the
# redirect was not followed.
NEW_KEY_COOKIE = "phonecheck_new_api_key"
NEW_KEY_COOKIE_SALT = "phoneapp.web.account.new-api-key"
NEW_KEY_COOKIE_SECONDS = 60


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def api_token_page(request: SignedInRequest) -> HttpResponse:
    """ "Your API token": create or regenerate (the key is shown in full on the page that follows only) or revoke it.

    Creating a key asks for the password (as ``POST /api/token/`` does): a key outlives a password change, so a
    session someone else got hold of must not be a way to mint one. Revoking needs no password.

    A new key is handed to the page in a short-lived cookie (:data:`NEW_KEY_COOKIE`) and shown by the ``GET`` that
    follows (Post/Redirect/Get): answered by the ``POST`` itself, a reload sent the form again, which replaced the
    key just copied. A refused password is answered with the page, the field showing why (not a redirect, which
    can only carry a message above the page)."""
    form = PasswordConfirmForm(
        request.POST if request.method == "POST" else None, request=request, to_do="create a token", auto_id="token-%s"
    )
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "regenerate":
            if not form.is_valid():
                context = _api_token_context(request, form=form, token=api_token_get(user=request.user))
                return _password_refused(request, "phoneapp/api_token.html", context)
            made = redirect("api-token-page")
            made.set_signed_cookie(
                NEW_KEY_COOKIE,
                api_token_regenerate(user=request.user),
                salt=NEW_KEY_COOKIE_SALT,
                max_age=NEW_KEY_COOKIE_SECONDS,
                path=reverse("api-token-page"),
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Strict",
            )
            return made
        if action == "revoke":
            revoked = api_token_revoke(user=request.user)
            messages.success(request, "Your API token was revoked." if revoked else "You had no API token.")
            return redirect("api-token-page")
        messages.error(request, "Unknown action: use regenerate or revoke.")
        return redirect("api-token-page")
    token = api_token_get(user=request.user)
    # Shown once: the first page after the key was made deletes its cookie; not shown if another tab has revoked or
    # replaced the key since.
    new_key = (
        request.get_signed_cookie(NEW_KEY_COOKIE, default="", salt=NEW_KEY_COOKIE_SALT, max_age=NEW_KEY_COOKIE_SECONDS)
        or ""
    )
    if token is None or token.digest != api_token_digest(new_key):
        new_key = ""
    page = render(
        request, "phoneapp/api_token.html", _api_token_context(request, form=form, token=token, new_key=new_key)
    )
    if NEW_KEY_COOKIE in request.COOKIES:
        page.delete_cookie(NEW_KEY_COOKIE, path=reverse("api-token-page"), samesite="Strict")
    return page


def _api_token_context(
    request: SignedInRequest, *, form: PasswordConfirmForm, token: ApiToken | None, new_key: str = ""
) -> dict[str, Any]:
    return {
        "token": token,
        "prefix": api_token_prefix(token) if token else "",
        "new_key": new_key,
        # Revoking stops every script using the key at once: asked once more, on this page, before it is done.
        "confirm_revoke": request.GET.get("confirm") == "revoke",
        "api_root": request.build_absolute_uri("/api/"),
        "form": form,
    }
