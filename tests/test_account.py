"""A person's own account: changing the password, and deleting every picture they sent (theirs only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload
from tests.factories import client_for, make_upload

if TYPE_CHECKING:
    from pytest_django import DjangoCaptureOnCommitCallbacks

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "violet-kettle-orbit-42"


def test_the_account_page_leads_to_the_password_the_token_and_deleting_everything(alice: User) -> None:
    make_upload(alice, probability=0.9)
    page = client_for(alice).get("/account/").content.decode()
    assert 'id="account-name">alice<' in page
    for link in ("/account/password/", "/account/api-token/", "/account/delete-pictures/"):
        assert f'href="{link}"' in page
    assert "(1 stored)" in page


def test_changing_the_password_needs_the_old_one_and_keeps_this_session(alice: User) -> None:
    client = client_for(alice)
    refused = client.post(
        "/account/password/",
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert refused.status_code == 200 and "id_old_password_error" in refused.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("alice-password-1")

    changed = client.post(
        "/account/password/",
        {"old_password": "alice-password-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    assert changed.redirect_chain[-1][0] == "/account/"
    assert "Your password is changed" in changed.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD) and not alice.check_password("alice-password-1")
    assert client.get("/history/").status_code == 200  # still signed in here


def test_a_weak_new_password_is_refused_with_the_reason(alice: User) -> None:
    response = client_for(alice).post(
        "/account/password/",
        {"old_password": "alice-password-1", "new_password1": "12345678", "new_password2": "12345678"},
    )
    assert "id_new_password2_error" in response.content.decode()
    assert "too common" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("alice-password-1")


def test_another_browser_signed_in_as_the_same_person_is_signed_out_by_the_change(alice: User) -> None:
    elsewhere = Client()
    elsewhere.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    assert elsewhere.get("/history/").status_code == 200
    here = Client()
    here.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    here.post(
        "/account/password/",
        {"old_password": "alice-password-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert elsewhere.get("/history/").status_code == 302


def test_deleting_all_pictures_removes_the_owners_rows_and_files_and_nobody_elses(
    alice: User, bob: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    mine = [make_upload(alice, probability=p) for p in (0.9, 0.2, 0.5)]
    theirs = make_upload(bob, probability=0.9)
    files = [Path(upload.image.path) for upload in mine]
    client = client_for(alice)
    page = client.get("/account/delete-pictures/").content.decode()
    assert "All <strong>3</strong> pictures you sent" in page
    assert Upload.objects.filter(owner=alice).count() == 3  # asking deletes nothing

    with django_capture_on_commit_callbacks(execute=True):  # files go once the deletion is committed
        response = client.post("/account/delete-pictures/", {"up_to": str(max(u.pk for u in mine))}, follow=True)

    assert "Deleted 3 pictures," in response.content.decode()
    assert not Upload.objects.filter(owner=alice).exists()
    assert not any(path.exists() for path in files)
    assert Upload.objects.filter(pk=theirs.pk).exists() and Path(theirs.image.path).exists()


def test_pictures_sent_after_the_confirmation_page_was_opened_are_kept(alice: User) -> None:
    shown = make_upload(alice, probability=0.9)
    client = client_for(alice)
    client.get("/account/delete-pictures/")
    sent_meanwhile = make_upload(alice, probability=0.2)  # another tab, a script

    client.post("/account/delete-pictures/", {"up_to": str(shown.pk)})

    assert list(Upload.objects.filter(owner=alice)) == [sent_meanwhile]


def test_a_confirmation_without_its_page_deletes_nothing(alice: User) -> None:
    make_upload(alice, probability=0.9)
    response = client_for(alice).post("/account/delete-pictures/", {}, follow=True)
    assert "Nothing was deleted" in response.content.decode()
    assert Upload.objects.filter(owner=alice).count() == 1


@pytest.mark.parametrize("url", ["/account/", "/account/password/", "/account/delete-pictures/"])
def test_account_pages_need_a_signed_in_person(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_deleting_all_pictures_needs_a_csrf_token(alice: User) -> None:
    upload = make_upload(alice, probability=0.9)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/account/delete-pictures/", {"up_to": str(upload.pk)}).status_code == 403
    assert Upload.objects.filter(pk=upload.pk).exists()


def test_logging_out_lands_on_the_login_page_saying_so(alice: User) -> None:
    client = client_for(alice)
    page = client.post("/accounts/logout/", follow=True)
    assert page.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "You are signed out." in page.content.decode()
    assert client.get("/history/").status_code == 302


def test_guessing_the_old_password_is_throttled_like_a_login(alice: User, settings) -> None:
    """Someone holding a stolen session must not be able to guess the real password there without limit."""
    settings.LOGIN_FAILURE_LIMIT = "3/minute"
    client = client_for(alice)
    for n in range(3):
        guess = client.post(
            "/account/password/",
            {"old_password": f"guess-{n}", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert guess.status_code == 200
    refused = client.post(
        "/account/password/",
        {"old_password": "alice-password-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert refused.status_code == 429 and "Retry-After" in refused
    assert "Too many wrong passwords" in refused.content.decode() and 'id="save-password"' in refused.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("alice-password-1")


def test_the_admins_password_form_leads_staff_to_the_throttled_one(reviewer: User, settings) -> None:
    """Django's admin has a password form of its own that checks the old password without the login throttle: a
    borrowed staff session guessed there 15 times, then changed the password (found by a security audit)."""
    settings.LOGIN_FAILURE_LIMIT = "3/minute"
    client = client_for(reviewer)
    assert 'href="/admin/password_change/"' in client.get("/admin/").content.decode()  # the admin's own link
    for n in range(5):
        guess = client.post(
            "/admin/password_change/",
            {"old_password": f"guess-{n}", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert (guess.status_code, guess["Location"]) == (302, "/account/password/")
    reviewer.refresh_from_db()
    assert reviewer.check_password("rita-password-1")
    assert client.get("/admin/password_change/", follow=True).redirect_chain == [("/account/password/", 302)]


def test_an_administrator_changes_their_own_password_where_the_old_one_is_asked(reviewer: User, bob: User) -> None:
    """The admin's form for a user's password sets a new one without the old one: from a borrowed administrator's
    session, one's own account could be taken over there. Other people's passwords are still set there."""
    client = client_for(reviewer)

    own = client.get(f"/admin/auth/user/{reviewer.pk}/password/")
    someone_elses = client.get(f"/admin/auth/user/{bob.pk}/password/")
    taken_over = client.post(
        f"/admin/auth/user/{reviewer.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert (own.status_code, own["Location"]) == (302, "/account/password/")
    assert someone_elses.status_code == 200 and 'name="password1"' in someone_elses.content.decode()
    assert taken_over.status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.check_password("rita-password-1")


def missing_described_ids(page: str) -> set[str]:
    """Ids named by ``aria-describedby`` that no element on the page has: a screen reader then reads nothing."""
    named = {name for value in re.findall(r'aria-describedby="([^"]*)"', page) for name in value.split()}
    return {name for name in named if f'id="{name}"' not in page}


def test_every_field_on_the_password_page_is_described_by_elements_that_exist(alice: User) -> None:
    """Django's widgets point ``aria-describedby`` at ``id_<field>_error`` and ``id_<field>_helptext``; the page
    gave its errors other ids and its rules none, so errors and rules were never read with their field."""
    client = client_for(alice)
    fresh = client.get("/account/password/").content.decode()
    refused = client.post(
        "/account/password/", {"old_password": "wrong", "new_password1": "12345678", "new_password2": "1234"}
    ).content.decode()

    for page in (fresh, refused):
        assert "aria-describedby" in page
        assert missing_described_ids(page) == set()
    assert 'aria-describedby="id_old_password_error"' in refused
