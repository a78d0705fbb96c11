"""In a real browser on a phone's width: the names of chosen files under their previews on the upload page.

Headless Debian Chromium against pytest-django's live server.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from tests.test_browser_pages import PHONE, open_logged_in, save_pictures, wait

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Each chosen name: its height in lines, and whether the last four characters (".jpg") are inside its box.
NAMES = """
return Array.from(document.querySelectorAll("#chosen .chosen-file .name")).map((name) => {
  const box = name.getBoundingClientRect();
  const walker = document.createTreeWalker(name, NodeFilter.SHOW_TEXT);
  const text = walker.nextNode();
  const range = document.createRange();
  range.setStart(text, text.length - 4);
  range.setEnd(text, text.length);
  const end = range.getBoundingClientRect();
  return {
    text: name.textContent,
    title: name.title,
    lines: box.height / parseFloat(getComputedStyle(name).lineHeight),
    endShown: end.width > 0 && end.left >= box.left - 0.5 && end.right <= box.right + 0.5,
  };
});
"""


def test_a_long_chosen_name_is_one_line_cut_at_its_start_on_a_phone(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    """At 390 px a long name wrapped in the preview's narrow column and broke anywhere ("…d1c5.j" / "pg"); now it
    is one line cut at its start, so its end and extension show."""
    from selenium.webdriver.common.by import By

    phone_path, mug_path = save_pictures(tmp_path)
    long_name = tmp_path / "IMG_20261207_045912_HDR_portrait_a8f3b2c4d1c5.jpg"
    long_name.write_bytes(phone_path.read_bytes())
    phone = {"width": PHONE, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        open_logged_in(browser, live_server, alice)
        browser.find_element(By.ID, "id_image").send_keys(f"{long_name}\n{mug_path}")
        wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#chosen .chosen-file")) == 2, 5)
        names = browser.execute_script(NAMES)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    long, short = names
    assert long["lines"] < 1.5, long  # one line, not broken mid-word
    assert long["text"] == long_name.name and long["title"] == long_name.name  # whole, for readers and a hover
    assert long["endShown"], long  # ".jpg" stays in view, the ellipsis comes before it
    assert short["text"] == "red-mug.jpg" and short["lines"] < 1.5, short
