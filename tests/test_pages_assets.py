"""Everything the pages need is served by the app itself: no CDN, no web font, no third-party script."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import make_upload

if TYPE_CHECKING:
    # What the test client returns (a stubs-only name).
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

STATIC_DIR = Path(__file__).resolve().parent.parent / "phoneapp" / "static" / "phoneapp"
EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I)


def site_pages(alice: User, reviewer: User) -> dict[str, TestResponse]:
    """Every kind of page, as its reader gets it: the owner's, staff's, a visitor's, and the not-found page."""
    upload = make_upload(alice, probability=0.5)
    staff = Client()
    staff.force_login(reviewer)
    owner = Client()
    owner.force_login(alice)
    return {
        "upload": owner.get("/"),
        "history": owner.get("/history/"),
        "detail": owner.get(f"/uploads/{upload.pk}/"),
        "account": owner.get("/account/"),
        "password": owner.get("/account/password/"),
        "review": staff.get(f"/review/{upload.pk}/"),
        "dashboard": staff.get("/dashboard/"),
        "login": Client().get("/accounts/login/"),
        "not found": owner.get("/no-such-page/"),
    }


def test_pages_reference_nothing_outside_the_site(alice: User, reviewer: User) -> None:
    for name, response in site_pages(alice, reviewer).items():
        assert response.status_code == (404 if name == "not found" else 200), name
        assert not EXTERNAL.findall(response.content.decode()), name


def test_static_files_load_nothing_from_elsewhere() -> None:
    files = [path for path in STATIC_DIR.iterdir() if path.suffix in {".css", ".js", ".svg"}]
    assert {path.name for path in files} >= {"app.css", "upload.js", "review.js"}
    for path in files:
        # An SVG's xmlns is a name, not a download; anything else with a scheme would be fetched.
        # The SVG namespace is a name (in markup, or in createElementNS), never fetched.
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")
        assert "http://" not in text and "https://" not in text, path.name
        assert not EXTERNAL.findall(text), path.name


JS_CLASS_SCRIPT = re.compile(r"<head>.*<script src=\"[^\"]*/phoneapp/js-class\.js\"></script>.*</head>", re.S)


def test_every_page_loads_the_one_script_that_marks_it_scripted_in_its_head(alice: User, reviewer: User) -> None:
    """The ``js`` class was set by account.js, review.js and upload.js each, so pages loading none of them (the
    dashboard, the error pages, sign-in) kept ``no-js`` in a browser running scripts."""
    for name, response in site_pages(alice, reviewer).items():
        assert JS_CLASS_SCRIPT.search(response.content.decode()), name
    setters = [path.name for path in STATIC_DIR.glob("*.js") if "no-js" in path.read_text()]
    assert setters == ["js-class.js"]
