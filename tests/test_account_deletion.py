"""Deleting one's own account from the account page: with the password, everything of theirs goes, nobody else's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import ApiToken, Upload
from phoneapp.services.api_tokens import api_token_regenerate
from tests.factories import client_for, make_upload, make_user
from tests.form_errors import password_field_invalid_because

if TYPE_CHECKING:
    from pytest_django import DjangoCaptureOnCommitCallbacks

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    """A client signed in through the login form, as a browser is (so the password is ``<name>-password-1``)."""
    client = Client()
    assert client.post("/accounts/login/", {"username": user.username, "password": f"{user.username}-password-1"})
    return client


def test_the_confirmation_page_says_what_goes_and_deletes_nothing(alice: User) -> None:
    make_upload(alice, probability=0.9)
    make_upload(alice, probability=0.2)
    api_token_regenerate(user=alice)
    client = client_for(alice)
    assert 'href="/account/delete/"' in client.get("/account/").content.decode()

    page = client.get("/account/delete/").content.decode()

    assert "all <strong>2</strong> pictures" in page and "and your API token." in page
    assert 'name="password"' in page and 'id="confirm-account-delete"' in page
    assert User.objects.filter(pk=alice.pk).exists() and Upload.objects.filter(owner=alice).count() == 2


def test_an_account_with_nothing_stored_is_not_said_to_take_0_pictures(alice: User) -> None:
    client = client_for(alice)

    page = " ".join(client.get("/account/delete/").content.decode().split())
    deleted = client.post("/account/delete/", {"password": "alice-password-1"}, follow=True).content.decode()

    assert "will be gone for good. It cannot be undone" in page and "API token" not in page
    assert "Your account is deleted." in deleted and "0 pictures" not in deleted


def test_deleting_the_account_takes_its_pictures_files_and_token_and_signs_out(
    alice: User, bob: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    mine = [make_upload(alice, probability=p) for p in (0.9, 0.2)]
    files = [Path(upload.image.path) for upload in mine]
    theirs = make_upload(bob, probability=0.9)
    api_token_regenerate(user=alice)
    client, elsewhere = signed_in(alice), signed_in(alice)

    with django_capture_on_commit_callbacks(execute=True):  # files go once the deletion is committed
        response = client.post("/account/delete/", {"password": "alice-password-1"}, follow=True)

    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "Your account is deleted, with 2 pictures and its API token." in response.content.decode()
    assert not User.objects.filter(username="alice").exists()
    assert not Upload.objects.filter(pk__in=[u.pk for u in mine]).exists() and not any(p.exists() for p in files)
    assert not ApiToken.objects.filter(user_id=alice.pk).exists()
    assert Upload.objects.filter(pk=theirs.pk).exists() and Path(theirs.image.path).exists()
    for browser in (client, elsewhere):  # this browser and any other one signed in as alice
        assert browser.get("/history/").status_code == 302


@pytest.mark.parametrize(
    ("password", "message"),
    [("", "Enter your password to delete your account"), ("not-it", "That is not your password")],
)
def test_without_the_right_password_nothing_is_deleted(alice: User, password: str, message: str) -> None:
    make_upload(alice, probability=0.9)
    response = client_for(alice).post("/account/delete/", {"password": password})
    assert response.status_code == 400 and message in response.content.decode()
    assert User.objects.filter(pk=alice.pk).exists() and Upload.objects.filter(owner=alice).count() == 1


def test_guessing_the_password_there_is_throttled_like_a_login(alice: User, settings) -> None:
    """A stolen session must not be a way to guess the password without limit."""
    settings.LOGIN_FAILURE_LIMIT = "2/minute"
    client = client_for(alice)
    for n in range(2):
        client.post("/account/delete/", {"password": f"guess-{n}"})
    refused = client.post("/account/delete/", {"password": "alice-password-1"})
    assert "Too many wrong passwords" in refused.content.decode()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0  # as the sign-in page answers
    assert User.objects.filter(pk=alice.pk).exists()


@pytest.mark.parametrize(
    ("password", "message"),
    [("", "Enter your password to delete your account"), ("not-it", "That is not your password")],
)
def test_a_refused_password_marks_its_field_invalid_and_names_why(alice: User, password: str, message: str) -> None:
    """The refusal was a message above the page, and the password field looked valid to a screen reader (WCAG
    3.3.1): it is now the field's error, marked as Django marks a form field's errors."""
    client = client_for(alice)
    assert password_field_invalid_because(client.get("/account/delete/").content.decode()) == ""

    refused = client.post("/account/delete/", {"password": password}).content.decode()

    assert message in password_field_invalid_because(refused)
    assert refused.count(message) == 1  # said once, with the field: not in a message above the page as well


@pytest.mark.parametrize("superuser", [False, True])
def test_staff_accounts_are_deleted_by_an_administrator_not_here(superuser: bool) -> None:
    staff = make_user("rita", staff=True, superuser=superuser)
    client = client_for(staff)
    page = client.get("/account/delete/").content.decode()
    assert 'id="account-delete-staff"' in page and 'name="password"' not in page

    refused = client.post("/account/delete/", {"password": "rita-password-1"})

    assert refused.status_code == 403 and "deleted by an administrator" in refused.content.decode()
    assert User.objects.filter(pk=staff.pk).exists()


def test_a_staff_members_password_is_not_tried_for_a_deletion_they_cannot_make(settings) -> None:
    """Refused before the password is checked: a wrong one counted as a failed login, for nothing."""
    settings.LOGIN_FAILURE_LIMIT = "1/minute"
    staff = make_user("rita", staff=True)
    client_for(staff).post("/account/delete/", {"password": "a-wrong-guess"})

    assert Client().post("/accounts/login/", {"username": "rita", "password": "rita-password-1"}).status_code == 302


def test_deleting_the_account_needs_a_csrf_token_and_a_signed_in_person(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/account/delete/", {"password": "alice-password-1"}).status_code == 403
    anonymous = Client().post("/account/delete/", {"password": "alice-password-1"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert User.objects.filter(pk=alice.pk).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("door", ["api", "page"])
def test_an_upload_sent_while_its_account_is_deleted_is_refused_and_keeps_nothing(
    alice: User, monkeypatch: pytest.MonkeyPatch, settings, door: str
) -> None:
    """The account deleted in another tab while a picture was on its way: the commit's owner check failed and the
    API answered 500 (helper-59). Now a 403 that says so; no row, no file."""
    from django.core.files.uploadedfile import UploadedFile

    from phoneapp.services import uploads
    from phoneapp.services.image_validation import ValidatedImage
    from tests.images import uploaded_file

    validated_all = uploads._validated_all

    def validated_then_account_deleted(files: Sequence[UploadedFile]) -> list[tuple[UploadedFile, ValidatedImage]]:
        checked = validated_all(files)
        User.objects.filter(pk=alice.pk).delete()
        return checked

    monkeypatch.setattr(uploads, "_validated_all", validated_then_account_deleted)
    if door == "api":
        response = client_for(alice).post("/api/uploads/", {"image": uploaded_file("a.jpg")})
        assert response.status_code == 403 and "deleted while the pictures were sent" in response.json()["error"]
    else:  # the page signs the browser out and says why on the sign-in page
        response = client_for(alice).post("/", {"image": uploaded_file("a.jpg")}, follow=True)
        assert response.redirect_chain[-1][0] == "/accounts/login/"
        assert "deleted while the pictures were sent" in response.content.decode()

    assert not Upload.objects.exists()
    assert [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()] == []
