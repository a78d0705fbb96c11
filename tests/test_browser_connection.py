"""In a real browser: a connection that comes and goes, as on a phone on a train.

Pictures chosen while offline wait and are sent when the browser is back online; a request that gets no answer
is sent again by itself, with the same Idempotency-Key, so nothing is stored twice; leaving the page while
pictures wait asks first. Headless Debian Chromium (its network emulation for "offline") against pytest-django's
live server (no broker: uploads are classified in its thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from phoneapp.models import Upload
from tests.images import picture_bytes
from tests.test_browser_pages import open_logged_in, wait

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VERDICT_TIMEOUT = 120


def go_offline(browser: Chrome, offline: bool) -> None:
    browser.execute_cdp_cmd("Network.enable", {})
    conditions = {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)


def choose_and_upload(browser: Chrome, picture: Path) -> None:
    from selenium.webdriver.common.by import By

    # The first resend waits 1.5 s here instead of the page's 5 s (upload.js, firstResendMs): long enough for the
    # waits below (polling every 0.5 s) to see the card say it will resend.
    browser.execute_script("document.getElementById('upload-form').dataset.resendMs = '1500';")
    browser.find_element(By.ID, "id_image").send_keys(str(picture))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()


def test_a_picture_chosen_offline_waits_and_is_sent_when_the_connection_is_back(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    picture = tmp_path / "train.jpg"
    picture.write_bytes(picture_bytes("JPEG", width=320, height=240))
    open_logged_in(browser, live_server, alice)
    go_offline(browser, True)
    assert browser.execute_script("return navigator.onLine") is False  # the test's own check

    choose_and_upload(browser, picture)

    card = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .result"))[0]
    assert "Offline: sent when the connection is back." in card.text and Upload.objects.count() == 0
    leaving = "const e = new Event('beforeunload', {cancelable: true}); dispatchEvent(e); return e.defaultPrevented"
    assert browser.execute_script(leaving) is True  # leaving now would drop the picture: the browser asks

    go_offline(browser, False)

    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    assert Upload.objects.count() == 1
    assert browser.execute_script(leaving) is False  # nothing left to lose


def test_a_request_without_an_answer_is_sent_again_by_itself_and_stored_once(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    """The first send fails at the network (a port nobody listens on, as a dropped line does): the card says the
    connection was lost, and the picture goes again a few seconds later with the same key, without a click."""
    from selenium.webdriver.common.by import By

    picture = tmp_path / "tunnel.jpg"
    picture.write_bytes(picture_bytes("JPEG", width=320, height=240))
    open_logged_in(browser, live_server, alice)
    browser.execute_script(
        """
        const open = XMLHttpRequest.prototype.open;
        let dropped = false;
        XMLHttpRequest.prototype.open = function (method, url, ...rest) {
          if (method === "POST" && url === "/api/uploads/" && !dropped) {
            dropped = true;
            return open.call(this, method, "http://127.0.0.1:9/api/uploads/", ...rest);
          }
          return open.call(this, method, url, ...rest);
        };
        """
    )

    choose_and_upload(browser, picture)

    lost = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=failed]"))[0]
    assert "Connection lost — sent again by itself" in lost.text and Upload.objects.count() == 0
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    assert Upload.objects.count() == 1


def test_signed_out_meanwhile_the_picture_waits_for_a_sign_in_and_a_retry(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    """It ended with the server's "Authentication credentials were not provided." and no way on: the picture had
    to be chosen again."""
    from django.conf import settings
    from django.test import Client
    from selenium.webdriver.common.by import By

    picture = tmp_path / "expired.jpg"
    picture.write_bytes(picture_bytes("JPEG", width=320, height=240))
    open_logged_in(browser, live_server, alice)
    browser.delete_cookie(settings.SESSION_COOKIE_NAME)  # the session ended (another tab signed out, it expired)

    choose_and_upload(browser, picture)

    card = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=failed]"))[0]
    assert "Signed out — not sent" in card.text and Upload.objects.count() == 0
    assert card.find_element(By.CSS_SELECTOR, "a.sign-in-again").get_attribute("target") == "_blank"
    signed_in_again = Client()  # as signing in again in another tab does; this page stays open, its queue in it
    signed_in_again.force_login(alice)
    cookie = signed_in_again.cookies[settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": cookie})
    card.find_element(By.CSS_SELECTOR, "button.retry").click()

    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    assert Upload.objects.count() == 1


def test_a_picture_the_server_could_not_take_for_now_is_sent_again_by_itself(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 (storage or database away for a moment) waited for a click on Retry; it says so and tries again."""
    from selenium.webdriver.common.by import By

    from phoneapp.services import upload_requests
    from phoneapp.services.errors import StorageUnavailable

    real_create = upload_requests.uploads_create
    calls: list[object] = []

    def unavailable_once(**kwargs: Any) -> list[Upload]:
        calls.append(kwargs)
        if len(calls) == 1:
            raise StorageUnavailable()
        return real_create(**kwargs)

    monkeypatch.setattr(upload_requests, "uploads_create", unavailable_once)
    monkeypatch.setattr("phoneapp.api.errors.RETRY_AFTER_SECONDS", 1)  # the page waits at least this long
    picture = tmp_path / "busy.jpg"
    picture.write_bytes(picture_bytes("JPEG", width=320, height=240))
    open_logged_in(browser, live_server, alice)

    choose_and_upload(browser, picture)

    busy = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=failed]"))[0]
    assert "Server busy — sent again by itself" in busy.text and "nothing was saved" in busy.text
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    assert Upload.objects.count() == 1 and len(calls) == 2


def test_retry_is_named_with_its_picture_and_pressed_from_the_keyboard_leaves_focus_on_its_card(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    """Tabbing through a failed batch said "Retry", "Retry", …; and the Retry pressed went away with focus on it, so
    focus fell to <body> and a screen reader lost its place in the list."""
    from django.conf import settings
    from django.test import Client
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    picture = tmp_path / "platform.jpg"
    picture.write_bytes(picture_bytes("JPEG", width=320, height=240))
    open_logged_in(browser, live_server, alice)
    browser.delete_cookie(settings.SESSION_COOKIE_NAME)
    choose_and_upload(browser, picture)
    card = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .result"))[0]
    retry = wait(browser, lambda b: card.find_elements(By.CSS_SELECTOR, "button.retry"))[0]
    assert retry.accessible_name == "Retry platform.jpg"

    signed_in_again = Client()
    signed_in_again.force_login(alice)
    browser.add_cookie(
        {"name": settings.SESSION_COOKIE_NAME, "value": signed_in_again.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    retry.send_keys(Keys.ENTER)

    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    focused_in_card = "return document.activeElement.closest('.result') === arguments[0]"
    assert browser.execute_script(focused_in_card, card)
