"""Error pages in the app's own style, saying what to do: 403 for non-staff on staff pages (not the admin's
login form), 404 for what is missing or someone else's, 500 when the server fails, 503 for an outage."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import make_upload
from tests.images import picture_bytes, uploaded_file

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


pytestmark = pytest.mark.django_db

BRAND = 'class="brand"'


@pytest.mark.parametrize("path", ["/review/", "/dashboard/"])
def test_non_staff_user_gets_the_apps_403_page_on_staff_pages(path: str, bob_client: Client) -> None:
    response = bob_client.get(path)

    assert response.status_code == 403
    page = response.content.decode()
    assert BRAND in page and "This page is not open to you" in page
    assert "ask an administrator to give your account staff access" in page
    assert "admin/login" not in page and "not authorized" not in page


def test_a_staff_reviewer_without_admin_permissions_is_not_offered_the_admin_nor_told_to_become_staff() -> None:
    """Staff opens the review queue and the dashboard; the admin's pages need permissions too. The nav showed an
    Admin link such a reviewer could not use, and the 403 told them to ask for the staff access they had."""
    from django.contrib.auth.models import Permission

    reviewer_only = User.objects.create_user("rosa", password="x-long-password-1", is_staff=True)
    client = Client()
    client.force_login(reviewer_only)

    assert 'href="/admin/"' not in client.get("/history/").content.decode()
    refused = client.get("/admin/phoneapp/upload/")
    assert refused.status_code == 403
    assert "a staff account without the permission this page needs" in " ".join(refused.content.decode().split())
    reviewer_only.user_permissions.add(Permission.objects.get(codename="view_upload"))
    assert 'href="/admin/"' in client.get("/history/").content.decode()


@pytest.mark.parametrize("path", ["/admin/phoneapp/upload/add/", "/admin/phoneapp/modelversion/add/"])
def test_an_administrator_refused_a_page_the_admin_does_not_offer_is_told_so_not_sent_for_a_permission(
    path: str, reviewer: User
) -> None:
    """A superuser has every permission: "ask an administrator to grant it" sent the administrator looking for one."""
    client = Client()
    client.force_login(reviewer)

    refused = client.get(path)

    said = " ".join(refused.content.decode().split())
    assert refused.status_code == 403
    assert "this page does something the admin does not offer" in said and "ask an administrator" not in said


@pytest.mark.parametrize("path", ["/review/", "/dashboard/"])
def test_anonymous_visitor_is_sent_to_the_login_page_of_the_app(path: str, client: Client) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_another_users_upload_gets_the_apps_404_page(alice: User, bob_client: Client) -> None:
    upload = make_upload(alice, probability=0.9)

    response = bob_client.get(f"/uploads/{upload.pk}/")

    assert response.status_code == 404
    page = response.content.decode()
    assert BRAND in page and "Nothing here" in page
    assert 'href="/history/"' in page  # where to look instead
    assert upload.original_name not in page


def test_unknown_address_gets_the_apps_404_page(alice_client: Client) -> None:
    response = alice_client.get("/no-such-page/")

    assert response.status_code == 404
    assert "Nothing here" in response.content.decode()


def test_server_failure_gets_the_apps_500_page(settings: SettingsFixture, alice: User) -> None:
    settings.ROOT_URLCONF = "tests.failing_urls"
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    response = client.get("/test-failure/")

    assert response.status_code == 500
    page = response.content.decode()
    assert BRAND in page and "Something went wrong on our side" in page and "Try again" in page
    assert "deliberate failure" not in page  # the cause goes to the log, never to the page


def test_outage_page_says_when_to_try_again_and_only_a_sent_form_that_nothing_was_saved(
    alice_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    def database_gone(**_: object) -> object:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("phoneapp.web.views.upload_list", database_gone)
    monkeypatch.setattr("phoneapp.web.views.uploads_create", database_gone)

    read = alice_client.get("/history/")
    sent = alice_client.post("/", {"image": uploaded_file("a.jpg", picture_bytes("JPEG"))})

    assert (read.status_code, sent.status_code) == (503, 503)
    assert read["Retry-After"] == "30"
    read_page, sent_page = read.content.decode(), sent.content.decode()
    assert BRAND in read_page and "Try again in 30 seconds" in read_page and "Nothing was saved" not in read_page
    assert "Nothing was saved from this request: try again in 30 seconds" in sent_page


def test_a_form_sent_without_its_csrf_token_gets_the_sites_page_saying_what_to_do(alice: User) -> None:
    """Django's own page (unstyled under the site's CSP, ending "More information is available with DEBUG=True")
    was what a person saw after signing in in another tab and sending an older form."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    browser.get("/")  # sets the CSRF cookie; the form below is sent without its token, as a stale tab's is

    response = browser.post("/", {"image": uploaded_file("a.jpg", picture_bytes("JPEG"))})

    assert response.status_code == 403
    page = response.content.decode()
    assert BRAND in page and "This form has expired" in page and "reload the page" in page
    assert "DEBUG" not in page


def test_a_sign_out_or_retry_link_opened_directly_gets_a_page_saying_what_to_do(
    alice_client: Client, alice: User
) -> None:
    """They take a POST; Django's 405 had no body, which browsers show as "This page isn't working"."""
    upload = make_upload(alice)

    sign_out = alice_client.get("/accounts/logout/")
    retry = alice_client.get(f"/uploads/{upload.pk}/retry")
    api = alice_client.put("/api/uploads/")

    assert (sign_out.status_code, retry.status_code, api.status_code) == (405, 405, 405)
    assert "POST" in sign_out["Allow"] and BRAND in sign_out.content.decode()
    assert re.search(
        r'<form method="post" action="/accounts/logout/">.*Sign out</button>', sign_out.content.decode(), re.S
    )
    assert "takes a button, not a visit" in retry.content.decode()
    assert api.json() == {"error": 'Method "PUT" not allowed.'}  # the API's stays JSON
    # A form sent to a page that is only read, or a probe, keeps the plain 405 (the page's words would be backwards).
    assert alice_client.post("/history/").content == b"" and alice_client.post("/healthz").content == b""
    assert alice_client.post("/accounts/logout/").status_code == 302  # the page's button signs out
    assert Client().get("/accounts/logout/")["Location"].startswith("/accounts/login/")  # nobody to sign out
