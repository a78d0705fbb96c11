"""Errors in a real browser: the app's 403, 404 and 500 pages render in its own style, and an upload card that
met a server error offers a retry (a refused file keeps its reason and no retry).

Headless Debian Chromium against pytest-django's live server, as in ``test_browser_pages.py``; screenshots go to
``test-artifacts/`` (never into tracked files).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from phoneapp.models import Upload
from tests import live_services
from tests.factories import make_upload
from tests.images import picture_bytes
from tests.test_browser_pages import log_in, open_logged_in, wait

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VERDICT_TIMEOUT = 120


def save_screenshot(browser: Chrome, name: str) -> None:
    live_services.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(live_services.ARTIFACTS_DIR / f"{name}.png"))


def page_text(browser: Chrome) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.TAG_NAME, "main").text


def test_403_404_and_500_pages_render_in_the_apps_style(
    live_server: LiveServer, browser: Chrome, alice: User, bob: User, settings: SettingsFixture
) -> None:
    from selenium.webdriver.common.by import By

    alices = make_upload(alice, probability=0.9)
    settings.ROOT_URLCONF = "tests.failing_urls"
    log_in(browser, live_server, bob)

    browser.get(f"{live_server.url}/review/")
    assert "This page is not open to you" in page_text(browser)
    assert "ask an administrator" in page_text(browser)
    assert browser.find_element(By.CSS_SELECTOR, ".site-header .brand").is_displayed()
    assert "/admin/login" not in browser.current_url
    save_screenshot(browser, "error-403")

    browser.get(f"{live_server.url}/uploads/{alices.pk}/")
    assert "Nothing here" in page_text(browser)
    assert alices.original_name not in browser.page_source
    browser.find_element(By.LINK_TEXT, "Your uploads")  # says where to look instead
    save_screenshot(browser, "error-404")

    browser.get(f"{live_server.url}/test-failure/")
    assert "Something went wrong on our side" in page_text(browser)
    assert "Try again" in page_text(browser)
    assert browser.find_element(By.CSS_SELECTOR, "link[rel=stylesheet]")  # styled, not Django's bare page
    background = browser.execute_script(
        "return getComputedStyle(document.querySelector('.error-page')).backgroundColor"
    )
    assert background == "rgb(255, 255, 255)"
    save_screenshot(browser, "error-500")


def test_upload_card_offers_a_retry_after_a_server_error_and_the_retry_gets_a_verdict(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    from phoneapp.services import upload_requests

    real_create = upload_requests.uploads_create  # the page sends each picture with an Idempotency-Key
    calls = []

    def fails_once(**kwargs: Any) -> list[Upload]:
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("a deliberate server failure on the first try")
        return real_create(**kwargs)

    monkeypatch.setattr(upload_requests, "uploads_create", fails_once)
    monkeypatch.setattr("phoneapp.services.classification.heatmap_enqueue", lambda **_: None)
    picture = tmp_path / "desk.jpg"
    picture.write_bytes(picture_bytes("JPEG", width=320, height=240))
    open_logged_in(browser, live_server, alice)

    browser.find_element(By.ID, "id_image").send_keys(str(picture))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()

    retry = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict button.retry"))[0]
    card_text = browser.find_element(By.CSS_SELECTOR, "#results .result").text
    assert "Server error — try again" in card_text and "refused" not in card_text
    assert Upload.objects.count() == 0
    save_screenshot(browser, "upload-server-error-retry")

    retry.click()

    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    assert Upload.objects.count() == 1
    assert not browser.find_elements(By.CSS_SELECTOR, "#results button.retry")
    assert calls[0]["request"].key == calls[1]["request"].key  # the retry is the same request to the server


def test_refused_file_keeps_the_servers_reason_and_offers_no_retry(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    fake = tmp_path / "notes.jpg"
    fake.write_text("not a picture at all")
    open_logged_in(browser, live_server, alice)

    browser.find_element(By.ID, "id_image").send_keys(str(fake))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()

    verdict = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=failed]"))[0]
    assert "Not uploaded" in verdict.text
    assert "not a picture in a format we can read" in verdict.text
    assert not verdict.find_elements(By.CSS_SELECTOR, "button.retry")


def test_pictures_past_the_rate_limit_wait_their_turn_and_all_upload(
    live_server: LiveServer,
    browser: Chrome,
    alice: User,
    tmp_path: Path,
    settings: SettingsFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dropping more pictures than the limit allows at once: the refused ones wait the server's Retry-After and
    are sent again, so every picture ends uploaded with a verdict (none left as "refused")."""
    from selenium.webdriver.common.by import By

    from phoneapp.throttling import UploadRateThrottle

    settings.UPLOAD_RATE_LIMIT = "1/second"
    refusals: list[int] = []
    throttle_failure = UploadRateThrottle.throttle_failure

    def counted_failure(self: UploadRateThrottle) -> bool:
        refusals.append(1)
        return throttle_failure(self)

    monkeypatch.setattr(UploadRateThrottle, "throttle_failure", counted_failure)
    monkeypatch.setattr("phoneapp.services.classification.heatmap_enqueue", lambda **_: None)
    pictures = []
    for index in range(3):
        picture = tmp_path / f"desk-{index}.jpg"
        picture.write_bytes(picture_bytes("JPEG", width=320, height=240, color=(index * 80, 40, 120)))
        pictures.append(str(picture))
    open_logged_in(browser, live_server, alice)

    browser.find_element(By.ID, "id_image").send_keys("\n".join(pictures))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()

    wait(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]")) == 3,
        VERDICT_TIMEOUT,
    )
    assert refusals, "the limit never refused a picture: the test did not exercise the wait"
    assert Upload.objects.filter(owner=alice).count() == 3
    assert "Not uploaded" not in browser.find_element(By.ID, "results").text


def test_a_pending_verdict_whose_upload_is_deleted_stops_asking_and_says_so(
    live_server: LiveServer, browser: Chrome, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history page asks for pending verdicts; once the upload is gone (deleted in another tab) it says so
    and stops asking, instead of polling a 404 forever."""
    import time

    from selenium.webdriver.common.by import By

    from phoneapp.api import views
    from phoneapp.models import UploadStatus
    from phoneapp.services.upload_deletion import upload_delete

    pending = make_upload(alice, status=UploadStatus.PENDING, probability=None, version=None)
    asked: list[int] = []
    real_get = views.upload_get

    def counted_get(**kwargs: Any) -> Upload:
        asked.append(kwargs["upload_id"])
        return real_get(**kwargs)

    monkeypatch.setattr(views, "upload_get", counted_get)
    open_logged_in(browser, live_server, alice, "/history/")
    wait(browser, lambda b: asked)

    upload_delete(upload=pending)

    verdict = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".verdict[data-status=stopped]"))[0]
    assert "This upload no longer exists" in verdict.text
    asked_when_stopped = len(asked)
    time.sleep(3)
    assert len(asked) == asked_when_stopped
