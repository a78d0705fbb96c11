"""What a script gets at an address under /api/ that no endpoint answers, and for a body over the request limit
through a real WSGI server: JSON it can parse, never an HTML page, a redirect or a 500."""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload
from tests.images import picture_bytes, uploaded_file

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture
    from pytest_django.live_server_helper import LiveServer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("method", "path", "meant"),
    [
        ("post", "/api/uploads", "/api/uploads/"),
        ("get", "/api/uploads", "/api/uploads/"),
        ("delete", "/api/uploads/5", "/api/uploads/5/"),
        ("get", "/api/uploads/5/image/", "/api/uploads/5/image"),
        ("get", "/api/uploads/abc/", None),
        ("get", "/api/", None),
        ("get", "/api", None),  # the base address without its slash: Django's HTML 404 page
    ],
)
def test_an_address_no_endpoint_answers_is_a_json_404_naming_the_one_meant(
    method: str, path: str, meant: str | None, debug: bool, alice_client: Client, settings: SettingsFixture
) -> None:
    """Without this, a POST to /api/uploads was a 500 in DEBUG and a 301 otherwise, which clients follow as a GET:
    the script got its list of uploads back instead of an error."""
    settings.DEBUG = debug
    response = getattr(alice_client, method)(path, {"image": uploaded_file("a.jpg", picture_bytes("JPEG"))})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    message = response.json()["error"]
    assert message.startswith(f"No such address: {path}.")
    assert (f"Did you mean {meant}?" in message) if meant else message.endswith("listed at /api/docs/.")
    assert Upload.objects.count() == 0


def test_an_upload_the_api_does_not_have_is_still_its_own_404_for_scripts_and_browsers(alice_client: Client) -> None:
    response = alice_client.get("/api/uploads/999999/")
    in_a_browser = alice_client.get("/api/uploads/999999/", headers={"Accept": "text/html"})

    assert (response.status_code, response.json()) == (404, {"error": "No such upload."})
    # The browsable API's own page, not "No such address" (the address exists; the upload does not).
    assert in_a_browser.status_code == 404 and "No such upload." in in_a_browser.content.decode()
    assert in_a_browser["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["image", "thumbnail"])
def test_a_picture_storage_cannot_read_is_a_json_503_not_a_500_page(
    path: str, alice_client: Client, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage that refuses to read (permissions, an unmounted volume) gave the API a 500 HTML page, while a
    POST meeting the same fault got a JSON 503 with Retry-After."""
    from django.db.models.fields.files import FieldFile

    from tests.factories import make_upload

    upload = make_upload(alice)

    def unreadable(self: FieldFile, mode: str = "rb") -> FieldFile:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(FieldFile, "open", unreadable)
    response = alice_client.get(f"/api/uploads/{upload.pk}/{path}")

    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert response.json() == {"error": "The picture cannot be read from storage right now. Try again shortly."}


def test_the_json_404_of_an_unknown_address_gets_the_security_headers_of_any_answer(alice_client: Client) -> None:
    response = alice_client.get("/api/uploadz/")

    assert response.status_code == 404
    assert "no-store" in response["Cache-Control"] and response["X-Frame-Options"] == "DENY"


def test_pages_keep_adding_the_final_slash(alice_client: Client) -> None:
    response = alice_client.get("/history")

    assert (response.status_code, response["Location"]) == (301, "/history/")


def test_a_body_over_the_request_limit_gets_its_413_from_a_real_server(
    live_server: LiveServer, alice: User, settings: SettingsFixture
) -> None:
    """The test client skips the WSGI server, which refuses hop-by-hop headers: a ``Connection: close`` on the 413
    made Django's development server answer 500 instead."""
    settings.REQUEST_MAX_BYTES = 100_000
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
    connection.request("POST", "/api/uploads/", body=b"x" * 200_000, headers={"Content-Type": "image/jpeg"})
    response = connection.getresponse()

    assert response.status == 413
    assert json.loads(response.read())["error"].startswith("The request is too large")
    connection.close()
