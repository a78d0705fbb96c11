"""In a real browser, by keyboard only: where ← leads in the review queue after skips, → and decisions.

Headless Debian Chromium against pytest-django's live server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from phoneapp.models import Upload
from tests.factories import make_upload
from tests.test_browser_pages import open_logged_in, wait

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_back_after_skip_next_and_a_decision_goes_to_the_picture_just_decided(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """The keyboard walkthrough that found it: S on the first picture, → past the second, P on the third, which
    hands out the second; ← then opened the skipped first picture instead of the third, just decided."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    first, second, third = (make_upload(alice, probability=p).pk for p in (0.5, 0.55, 0.6))

    def press(key: str, then_on: int) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(key)
        wait(browser, lambda b: b.current_url.endswith(f"/review/{then_on}/"), 10)
        loaded(then_on)

    def loaded(upload_id: int) -> None:
        """The page is up with its keys listened to (review.js starts on DOMContentLoaded)."""
        wait(browser, lambda b: b.execute_script("return document.readyState") == "complete", 10)
        assert browser.current_url.endswith(f"/review/{upload_id}/")

    open_logged_in(browser, live_server, reviewer, "/review/")
    loaded(first)
    press("s", then_on=second)
    press(Keys.ARROW_RIGHT, then_on=third)
    press("p", then_on=second)
    assert Upload.objects.get(pk=third).reviewed_label == "phone"
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    wait(browser, lambda b: not b.current_url.endswith(f"/review/{second}/"), 10)
    assert browser.current_url.endswith(f"/review/{third}/"), f"← opened {browser.current_url}, skipped: {first}"
