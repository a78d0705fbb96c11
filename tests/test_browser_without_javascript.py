"""In a real browser with JavaScript switched off: the pages promise nothing that needs it.

Keys do nothing without JavaScript, so their hints are not shown; a box cannot be drawn, so the review page says
a decision is saved without one; a verdict does not appear by itself, so a waiting picture says to reload.
Headless Debian Chromium against pytest-django's live server, scripts blocked by Blink's own setting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from phoneapp.models import Upload, UploadStatus
from tests.factories import make_upload
from tests.test_browser_pages import open_logged_in, wait

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_flags() -> tuple[str, ...]:
    return ("--blink-settings=scriptEnabled=false",)


def test_review_page_without_javascript_hides_keys_and_says_boxes_need_it(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    from selenium.webdriver.common.by import By

    boxes: list[dict[str, object]] = [{"box": [0.1, 0.1, 0.3, 0.4], "score": 0.3}]  # placed unsure
    upload = make_upload(alice, probability=0.97, boxes=boxes)
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")

    assert "no-js" in (browser.find_element(By.TAG_NAME, "html").get_attribute("class") or "")  # no script ran
    assert browser.find_element(By.ID, "boxes-need-js").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "#unsure-place-note .js-only").is_displayed()
    decide = browser.find_element(By.CSS_SELECTOR, "button.decide-phone")
    assert decide.is_displayed() and decide.text.strip() == "Phone"  # the P hint is hidden
    assert not browser.find_element(By.CSS_SELECTOR, "details.shortcuts").is_displayed()
    assert browser.find_element(By.ID, "full-size-link").is_displayed()  # zooming needs a script

    decide.click()
    said = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".messages"))[0].text  # the next page
    assert "Undo last takes it back" in said and "(U)" not in said


def test_a_waiting_picture_says_to_reload_without_javascript(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, status=UploadStatus.PENDING)
    Upload.objects.filter(pk=upload.pk).update(created=timezone.now() - timedelta(minutes=2))
    open_logged_in(browser, live_server, alice, f"/uploads/{upload.pk}/")

    verdict = browser.find_element(By.CSS_SELECTOR, f"[data-verdict-for='{upload.pk}']").text
    assert "Reload the page to see the verdict." in verdict

    browser.get(f"{live_server.url}/")  # nothing can be dropped or pasted without a script
    title = browser.find_element(By.CSS_SELECTOR, ".drop-title").text
    assert "Drop" not in title and "Pictures to check" in title


def test_without_javascript_upload_pressed_with_nothing_chosen_says_what_to_do(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """With scripts, Upload waits for pictures (aria-disabled); without them it is the form's plain button, and the
    server's refusal says what to do."""
    from selenium.webdriver.common.by import By

    open_logged_in(browser, live_server, alice)
    button = browser.find_element(By.ID, "upload-button")
    assert button.get_attribute("aria-disabled") is None and button.text == "Upload"
    button.click()
    said = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".messages"))[0].text
    assert said == "No picture was sent: choose one or more pictures, then press Upload."
    assert not Upload.objects.exists()
