"""A person's path through the site in a real browser: log in, pick a picture, watch its verdict appear.

Headless Debian Chromium against pytest-django's live server. No broker is configured, so the upload is
classified in the live server's thread and the page's script picks the verdict up by polling the API.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from phoneapp.models import Upload, UploadStatus
from tests import live_services
from tests.factories import chance_shown
from tests.images import draw_picture
from tests.test_browser_pages import BROWSER_POLL_SECONDS

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome


pytestmark = pytest.mark.browser

# The first upload loads the model in the live server's thread; generous for a busy 2-core machine.
VERDICT_TIMEOUT = 90


def test_uploaded_picture_gets_its_verdict_on_the_page_without_reload(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    picture = tmp_path / "kitchen-table.jpg"
    draw_picture(width=480, height=360).save(picture, "JPEG")

    browser.get(f"{live_server.url}/accounts/login/")
    browser.find_element(By.ID, "id_username").send_keys("alice")
    browser.find_element(By.ID, "id_password").send_keys("alice-password-1")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 30, poll_frequency=BROWSER_POLL_SECONDS).until(
        expected_conditions.presence_of_element_located((By.ID, "upload-form"))
    )
    # A marker that a page load would wipe out: proves the verdict arrives without a reload.
    browser.execute_script("window.phoneCheckTestMarker = 'same page';")

    browser.find_element(By.ID, "id_image").send_keys(str(picture))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()

    finished = "#results [data-verdict-for][data-status=done], #results [data-verdict-for][data-status=failed]"
    try:
        verdict = WebDriverWait(browser, VERDICT_TIMEOUT, poll_frequency=BROWSER_POLL_SECONDS).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, finished))
        )
    finally:
        live_services.ARTIFACTS_DIR.mkdir(exist_ok=True)
        browser.save_screenshot(str(live_services.ARTIFACTS_DIR / "browser-upload-verdict.png"))

    assert verdict.get_attribute("data-status") == "done", verdict.text
    assert browser.execute_script("return window.phoneCheckTestMarker") == "same page"
    match = re.match(r"(Phone|Not a phone|Unsure) — ((?:over |under )?\d+%) chance of a phone", verdict.text)
    assert match, verdict.text
    upload = Upload.objects.get(owner=alice)
    assert upload.status == UploadStatus.DONE
    assert upload.original_name == "kitchen-table.jpg"
    # Sent with its own Idempotency-Key, so a Retry after a lost answer cannot store it twice.
    from phoneapp.models import UploadRequest

    assert UploadRequest.objects.get(owner=alice).upload_ids == [upload.pk]
    assert upload.probability is not None and match.group(2) == chance_shown(upload.probability)
    assert browser.find_element(By.CSS_SELECTOR, "#results .result a").text == "kitchen-table.jpg"
    # A screen reader hears one line naming the picture and its verdict, not every change of the card (the cards
    # were the live region: ~6 announcements a picture, none saying which).
    announced = (browser.find_element(By.ID, "upload-announcer").get_attribute("textContent") or "").strip()
    assert announced == f"kitchen-table.jpg: {match.group(1)}, {match.group(2)} chance of a phone."
    assert browser.find_element(By.ID, "results").get_attribute("aria-live") is None
