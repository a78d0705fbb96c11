"""Every page carries a Content-Security-Policy it can live with; nothing personal stays in the browser cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload
from tests.images import uploaded_file

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parent.parent / "phoneapp" / "templates"


@pytest.mark.parametrize("path", ["/", "/history/", "/review/", "/dashboard/", "/admin/"])
def test_every_page_has_a_content_security_policy_without_inline_code(reviewer: User, path: str) -> None:
    client = Client()
    client.force_login(reviewer)

    response = client.get(path)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_the_login_page_has_the_policy_too() -> None:
    response = Client().get("/accounts/login/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY


def test_templates_hold_no_inline_script_style_or_event_handler() -> None:
    """The policy forbids them: such code would silently not run in the browser."""
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"<style\b", r"\sstyle=", r"\son[a-z]+="):
            if re.search(pattern, text):
                offenders.append(f"{template.name}: {pattern}")
    assert offenders == []


def test_a_page_with_a_verdict_bar_needs_no_inline_style(
    alice_client: Client, alice: User, django_capture_on_commit_callbacks, heatmaps_off: None
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        upload_id = alice_client.post("/api/uploads/", {"image": uploaded_file()}).json()[0]["id"]
    assert Upload.objects.get(pk=upload_id).status == "done"

    page = alice_client.get(f"/uploads/{upload_id}/").content.decode()

    assert 'class="bar-fill"' in page  # the bar is drawn, with SVG attributes
    assert "style=" not in page


def test_logged_in_answers_are_not_kept_in_the_browser_cache(alice_client: Client, alice: User) -> None:
    upload_id = alice_client.post("/api/uploads/", {"image": uploaded_file()}).json()[0]["id"]

    for path in ("/", "/history/", f"/uploads/{upload_id}/", f"/uploads/{upload_id}/image", "/api/uploads/"):
        response = alice_client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
        assert "max-age" not in response["Cache-Control"], path


def test_token_authenticated_api_answers_are_not_kept_either(alice: User) -> None:
    from phoneapp.services.api_tokens import api_token_regenerate

    key = api_token_regenerate(user=alice)

    response = Client().get("/api/uploads/", HTTP_AUTHORIZATION=f"Token {key}")

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_pictures_keep_their_own_stricter_policy(alice_client: Client) -> None:
    upload_id = alice_client.post("/api/uploads/", {"image": uploaded_file()}).json()[0]["id"]

    response = alice_client.get(f"/uploads/{upload_id}/image")

    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
