"""In a real browser: a person changes their password from the Account page and signs in with the new one, then
deletes every picture they sent, then their account.

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


def test_a_person_changes_their_password_and_signs_in_with_the_new_one(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    from selenium.webdriver.common.by import By

    open_logged_in(browser, live_server, alice)
    browser.find_element(By.LINK_TEXT, "Account").click()
    wait(browser, lambda b: b.find_element(By.ID, "change-password")).click()
    wait(browser, lambda b: b.find_element(By.ID, "id_old_password")).send_keys("alice-password-1")
    browser.find_element(By.ID, "id_new_password1").send_keys("violet-kettle-orbit-42")
    browser.find_element(By.ID, "id_new_password2").send_keys("violet-kettle-orbit-42")
    browser.find_element(By.ID, "save-password").click()
    assert "Your password is changed" in wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".messages")).text

    browser.find_element(By.CSS_SELECTOR, "form.inline button").click()  # log out
    wait(browser, lambda b: b.find_element(By.ID, "id_username")).send_keys("alice")
    browser.find_element(By.ID, "id_password").send_keys("violet-kettle-orbit-42")
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    assert "alice" in wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".who")).text


def test_a_person_deletes_all_their_pictures_then_their_account(
    live_server: LiveServer, browser: Chrome, alice: User, bob: User
) -> None:
    from selenium.webdriver.common.by import By

    for probability in (0.9, 0.3):
        make_upload(alice, probability=probability)
    theirs = make_upload(bob, probability=0.9)
    open_logged_in(browser, live_server, alice, "/account/")
    wait(browser, lambda b: b.find_element(By.ID, "delete-pictures")).click()
    assert "All 2 pictures you sent" in wait(browser, lambda b: b.find_element(By.ID, "delete-count")).text
    browser.find_element(By.ID, "confirm-delete-all").click()

    assert "Deleted 2 pictures," in wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".messages")).text
    assert browser.find_element(By.ID, "no-pictures")
    assert not Upload.objects.filter(owner=alice).exists()
    assert Upload.objects.filter(pk=theirs.pk).exists()

    browser.find_element(By.ID, "delete-account").click()
    wait(browser, lambda b: b.find_element(By.ID, "account-delete-password")).send_keys("alice-password-1")
    browser.find_element(By.ID, "confirm-account-delete").click()

    said = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".messages")).text
    assert "Your account is deleted." in said and browser.find_element(By.ID, "id_username")
    assert not User.objects.filter(username="alice").exists() and User.objects.filter(pk=bob.pk).exists()


def test_the_confirmation_pages_fit_a_phone(live_server: LiveServer, browser: Chrome, alice: User) -> None:
    """The account deletion's password, button and "Keep it" sat in one row that would not wrap: 527 px wide on a
    390 px phone, the button off the screen (found in a browser walkthrough)."""
    from phoneapp.services.api_tokens import api_token_regenerate
    from tests.test_browser_pages import PHONE

    upload = make_upload(alice, probability=0.9)
    api_token_regenerate(user=alice)
    open_logged_in(browser, live_server, alice, "/account/")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": PHONE, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    )
    try:
        for page in (
            "/account/delete/",
            "/account/delete-pictures/",
            "/account/api-token/?confirm=revoke",
            f"/uploads/{upload.pk}/delete",
        ):
            browser.get(f"{live_server.url}{page}")
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= PHONE, (page, width)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
