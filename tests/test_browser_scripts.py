"""In a real browser: every page is marked as running scripts (``html.js``) by one script, whichever page scripts it
loads, so what needs a script is shown and the words for pages without one are not.

Headless Debian Chromium against pytest-django's live server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from tests.factories import make_upload
from tests.test_browser_pages import log_in

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_every_page_is_marked_as_running_scripts_whichever_scripts_of_its_own_it_loads(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Pages that loaded none of account.js, review.js and upload.js (the dashboard, the password and error pages,
    sign-in) kept ``no-js``."""
    upload = make_upload(alice, probability=0.5)
    browser.get(f"{live_server.url}/accounts/login/")
    assert browser.execute_script("return document.documentElement.className") == "js"
    log_in(browser, live_server, reviewer)
    for path in [
        "/",
        "/history/",
        f"/uploads/{upload.pk}/",
        f"/review/{upload.pk}/",
        "/dashboard/",
        "/account/",
        "/account/password/",
        "/no-such-page/",
    ]:
        browser.get(f"{live_server.url}{path}")
        assert browser.execute_script("return document.documentElement.className") == "js", path
