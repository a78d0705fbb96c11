"""The pages in a real browser: drag-and-drop and paste uploads with live verdicts, the heat-map toggle, the
keyboard review queue and the dashboard's charts, on a desktop window and on a phone-sized one.

Headless Debian Chromium against pytest-django's live server; no broker, so uploads are classified (and their
heat maps drawn) in the live server's thread. Each test saves screenshots to ``test-artifacts/screenshots/``;
``make screenshots`` runs these tests with ``PHONECHECK_SCREENSHOTS_DIR=docs/screenshots`` to refresh the pictures
in ``docs/ui.md`` and the README (tests never rewrite tracked files otherwise).
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import pytest
import torch
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.utils import timezone
from PIL import Image

from inference.drawing import draw_desk_with_phone, draw_red_mug
from inference.overlay import heatmap_overlay
from inference.preprocessing import PreprocessConfig
from phoneapp.models import Upload, UploadStatus
from tests import live_services
from tests.factories import chance_shown, make_upload

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("PHONECHECK_SCREENSHOTS_DIR") or live_services.ARTIFACTS_DIR / "screenshots")
DESKTOP, PHONE = 1000, 390
# Screenshots without scrollbars, at the desktop width; the offline-safe flags come from live_services.
SCREENSHOT_FLAGS = ("--hide-scrollbars", f"--window-size={DESKTOP},900")
# The first upload loads the model in the live server's thread; generous for a busy 2-core machine.
VERDICT_TIMEOUT = 120
VERDICT_TEXT = re.compile(r"^(Phone|Not a phone|Unsure) — (over |under )?\d+% chance of a phone")


@pytest.fixture
def browser_flags() -> tuple[str, ...]:
    """Screenshots without scrollbars, at the desktop width (the ``browser`` fixture is in conftest.py)."""
    return SCREENSHOT_FLAGS


T = TypeVar("T")


def log_in(browser: Chrome, live_server: LiveServer, user: User) -> None:
    """Reuse a Django session instead of typing into the login form (tested elsewhere)."""
    client = Client()
    client.force_login(user)
    browser.get(f"{live_server.url}/accounts/login/")
    browser.add_cookie(
        {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}
    )


def open_logged_in(browser: Chrome, live_server: LiveServer, user: User, path: str = "/") -> None:
    """Open ``path`` (the upload page by default) as ``user``, logged in through :func:`log_in`."""
    log_in(browser, live_server, user)
    browser.get(f"{live_server.url}{path}")


BROWSER_POLL_SECONDS = 0.1


def wait(browser: Chrome, condition: Callable[[Chrome], Literal[False] | T], timeout: float = 30) -> T:
    """Wait for ``condition``; a page being replaced meanwhile (stale elements) just means "not yet"."""
    from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException, JavascriptException)
    # Selenium looks every 0.5 s by default, a quarter of a second lost on average at each of the ~140 waits of the
    # browser tests; a look costs a few milliseconds.
    waiting = WebDriverWait(browser, timeout, poll_frequency=BROWSER_POLL_SECONDS, ignored_exceptions=ignored)
    found: T = waiting.until(condition)
    return found


def screenshot(browser: Chrome, name: str, *, width: int, max_height: int = 1600) -> Path:
    """A full-page PNG at a CSS ``width`` (a phone's 390 px is emulated as a mobile viewport), kept small."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    # A phone has a touch screen: pages that adapt to a coarse pointer should show it.
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": width < 600, "maxTouchPoints": 5})
    browser.execute_script("return new Promise((done) => requestAnimationFrame(() => setTimeout(done, 250)))")
    height = min(max_height, browser.execute_script("return document.documentElement.scrollHeight"))
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    browser.execute_script("return new Promise((done) => requestAnimationFrame(() => setTimeout(done, 250)))")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def save_pictures(tmp_path: Path) -> list[Path]:
    paths = []
    for name, picture in [("phone-on-desk.jpg", draw_desk_with_phone()), ("red-mug.jpg", draw_red_mug())]:
        path = tmp_path / name
        picture.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


DROP_FILES = """
const [selector, inputId] = arguments;
const transfer = new DataTransfer();
for (const file of document.getElementById(inputId).files) transfer.items.add(file);
const zone = document.querySelector(selector);
zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: transfer, bubbles: true, cancelable: true}));
zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""

WATCH_PROGRESS = """
window.progressSeen = {};
new MutationObserver((changes) => changes.forEach((change) => {
  const nodes = change.type === "attributes" ? [change.target] : Array.from(change.addedNodes);
  nodes.forEach((node) => {
    const inside = node.querySelectorAll ? Array.from(node.querySelectorAll("progress")) : [];
    const bars = node.matches && node.matches("progress") ? [node] : inside;
    bars.forEach((bar) => {
      const name = bar.getAttribute("aria-label");
      window.progressSeen[name] = Math.max(window.progressSeen[name] || 0, Number(bar.value));
    });
  });
})).observe(document.getElementById("results"),
  {subtree: true, childList: true, attributes: true, attributeFilter: ["value"]});
"""


def test_dropped_and_pasted_pictures_show_previews_progress_and_verdicts_in_place(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    phone_path, mug_path = save_pictures(tmp_path)
    open_logged_in(browser, live_server, alice)
    browser.execute_script("window.samePage = true;" + WATCH_PROGRESS)
    if connection.vendor == "sqlite":
        # SQLite's shared in-memory test database refuses concurrent writers ("table is locked").
        browser.execute_script("document.getElementById('upload-form').dataset.parallel = '1';")

    # Drag and drop: files reach the page the way the OS would hand them over, as a drop event's DataTransfer.
    browser.execute_script(
        "const input = document.createElement('input'); input.type = 'file'; input.multiple = true;"
        "input.id = 'test-drop-source'; input.hidden = true; document.body.append(input);"
    )
    browser.find_element(By.ID, "test-drop-source").send_keys(f"{phone_path}\n{mug_path}")
    browser.execute_script(DROP_FILES, "#drop-zone", "test-drop-source")

    cards = wait(
        browser,
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, "#results .result")) == 2
            and b.find_elements(By.CSS_SELECTOR, "#results .result")
        ),
    )
    previews = [card.find_element(By.CSS_SELECTOR, "img").get_attribute("src") for card in cards]
    assert all((src or "").startswith("blob:") for src in previews), previews
    # In the order they were dropped (each prepended alone, a batch read backwards).
    assert [card.find_element(By.CSS_SELECTOR, ".name").text for card in cards] == ["phone-on-desk.jpg", "red-mug.jpg"]
    done = "#results .verdict[data-status=done]"
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, done)) == 2, VERDICT_TIMEOUT)

    # Paste: an image on the clipboard goes up as a third upload.
    browser.execute_script(
        "const input = document.createElement('input'); input.type = 'file'; input.id = 'test-paste-source';"
        "input.hidden = true; document.body.append(input);"
    )
    browser.find_element(By.ID, "test-paste-source").send_keys(str(mug_path))
    browser.execute_script(
        "const transfer = new DataTransfer();"
        "transfer.items.add(new File([document.getElementById('test-paste-source').files[0]], 'image.jpg',"
        " {type: 'image/jpeg'}));"
        "document.dispatchEvent(new ClipboardEvent('paste',"
        " {clipboardData: transfer, bubbles: true, cancelable: true}));"
    )
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, done)) == 3, VERDICT_TIMEOUT)

    assert browser.execute_script("return window.samePage") is True  # no reload: verdicts arrived in place
    progress = browser.execute_script("return window.progressSeen")
    assert progress.get("Uploading phone-on-desk.jpg") == 100 and progress.get("Uploading red-mug.jpg") == 100
    uploads = {upload.original_name: upload for upload in Upload.objects.filter(owner=alice)}
    assert set(uploads) >= {"phone-on-desk.jpg", "red-mug.jpg"}
    assert any(name.startswith("pasted-") for name in uploads)
    # Read every card in one script: the page may still re-render a card (a late poll), which would leave a
    # Selenium element reference pointing at a node that is gone.
    cards = browser.execute_script(
        "return [...document.querySelectorAll('#results .result')].map(card => ({"
        " name: card.querySelector('.name').innerText,"
        " verdict: card.querySelector('.verdict-word').innerText,"
        " meta: card.querySelector('.verdict-meta').innerText}));"
    )
    assert len(cards) == 3
    for card in cards:
        assert VERDICT_TEXT.match(card["verdict"]), card["verdict"]
        upload = uploads[card["name"]]
        assert upload.status == UploadStatus.DONE
        assert upload.probability is not None and upload.model_version is not None
        assert f"{chance_shown(upload.probability)} chance of a phone" in card["verdict"]
        assert card["meta"] == f"model {upload.model_version.name}"
    screenshot(browser, "upload", width=DESKTOP)
    screenshot(browser, "upload-phone", width=PHONE)
    browser.get(f"{live_server.url}/history/")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".history-grid .card")) == 3
    screenshot(browser, "history", width=DESKTOP)
    # Tap targets of at least 24 px (WCAG 2.5.8): "Delete…" was 21 px high, "Keep it" 24 x 55.
    delete = browser.find_element(By.CSS_SELECTOR, ".history-grid .card .delete-link")
    assert delete.size["height"] >= 24, delete.size
    delete.click()
    keep = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".confirm-actions a"), 5)[0]
    assert keep.size["height"] >= 24 and keep.text == "Keep it", keep.size
    keep.click()

    # Where is the phone: the worker drew the overlay; the switch shows and hides it.
    phone_upload = uploads["phone-on-desk.jpg"]
    assert phone_upload.heatmap
    browser.get(f"{live_server.url}/uploads/{phone_upload.pk}/")
    overlay = browser.find_element(By.CSS_SELECTOR, ".picture-stack .heatmap")
    assert overlay.value_of_css_property("opacity") == "0"
    assert overlay.value_of_css_property("visibility") == "hidden"  # not read out while switched off
    browser.find_element(By.CSS_SELECTOR, "label[for=show-heatmap]").click()
    wait(browser, lambda b: overlay.value_of_css_property("opacity") == "1", 5)
    screenshot(browser, "detail-heatmap", width=DESKTOP)
    screenshot(browser, "detail-heatmap-phone", width=PHONE)
    browser.find_element(By.TAG_NAME, "body").send_keys("h")
    wait(browser, lambda b: overlay.value_of_css_property("opacity") == "0", 5)


def overlay_for(upload: Upload, centre: tuple[float, float]) -> None:
    """A made-up heat map peaking at ``centre`` (fractions of width and height), stored like the worker's."""
    rows = torch.arange(7).float().view(7, 1)
    columns = torch.arange(7).float().view(1, 7)
    evidence = torch.exp(-((columns - centre[0] * 6) ** 2 + (rows - centre[1] * 6) ** 2) / 2.5)
    overlay = heatmap_overlay(evidence, image_size=(upload.width, upload.height), config=PreprocessConfig())
    buffer = io.BytesIO()
    overlay.save(buffer, "PNG")
    upload.heatmap.save("heatmap.png", ContentFile(buffer.getvalue()), save=True)


def test_review_queue_runs_on_the_keyboard_and_saves_each_decision_at_once(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    coin_flip = make_upload(alice, probability=0.52, name="phone-on-desk.jpg", picture=draw_desk_with_phone())
    overlay_for(coin_flip, (0.5, 0.5))
    leaning = make_upload(alice, probability=0.8, name="desk-2.jpg", picture=draw_desk_with_phone(seed=1))
    sure = make_upload(alice, probability=0.08, name="red-mug.jpg", picture=draw_red_mug())
    log_in(browser, live_server, reviewer)

    def current_id() -> int | None:
        shown = browser.execute_script("const r = document.getElementById('review'); return r && r.dataset.uploadId;")
        return int(shown) if shown else None

    def press(key: str, *, expect: int | None) -> None:
        before = current_id()
        browser.find_element(By.TAG_NAME, "body").send_keys(key)
        if expect is None:
            wait(browser, lambda b: "Nothing left to review" in b.page_source)
        else:
            wait(
                browser,
                lambda b: b.find_elements(By.ID, "review") and current_id() == expect and current_id() != before,
            )

    browser.get(f"{live_server.url}/review/")
    assert current_id() == coin_flip.pk  # most uncertain first
    # The ground-truth switch spans the decision grid (in one of its two columns it wrapped to 4-6 lines).
    form_width, switch_width = browser.execute_script(
        "return [document.getElementById('decisions').clientWidth,"
        " document.querySelector('.ground-truth-switch').getBoundingClientRect().width];"
    )
    assert switch_width >= form_width - 2
    browser.find_element(By.TAG_NAME, "body").send_keys("h")
    overlay = browser.find_element(By.CSS_SELECTOR, ".picture-stack .heatmap")
    wait(browser, lambda b: overlay.value_of_css_property("opacity") == "1", 5)
    screenshot(browser, "review", width=DESKTOP)
    screenshot(browser, "review-phone", width=PHONE)

    press("p", expect=leaning.pk)
    coin_flip.refresh_from_db()
    assert (coin_flip.reviewed_label, coin_flip.reviewed_by) == ("phone", reviewer)
    press(Keys.ARROW_RIGHT, expect=sure.pk)
    press(Keys.ARROW_LEFT, expect=leaning.pk)
    press("c", expect=sure.pk)  # confirm: the model said phone (0.8, outside its unsure band)
    leaning.refresh_from_db()
    assert leaning.reviewed_label == "phone"
    press("n", expect=None)
    sure.refresh_from_db()
    assert sure.reviewed_label == "not_phone"


def test_dashboard_draws_its_charts_on_desktop_and_phone(
    live_server: LiveServer, browser: Chrome, alice: User, bob: User, reviewer: User
) -> None:
    from selenium.webdriver.common.by import By

    now = timezone.now()
    probabilities = [0.97, 0.91, 0.88, 0.12, 0.05, 0.03, 0.45, 0.62, 0.76, 0.33, 0.02, 0.99, 0.81, 0.18]
    for index, probability in enumerate(probabilities):
        owner = alice if index % 3 else bob
        truth = "phone" if probability > 0.4 else "not_phone"
        if index == 3:
            truth = "phone"  # one the model missed
        reviewed = truth if index % 4 else ""
        make_upload(
            owner,
            probability=probability,
            reviewed=reviewed,
            reviewer=reviewer if reviewed else None,
            version="imagenet-zero-shot" if index < 8 else "finetuned-2026-11-26",
            created=now - timedelta(days=(index * 5) % 23),
        )
    make_upload(alice, status=UploadStatus.PENDING)
    open_logged_in(browser, live_server, reviewer, "/dashboard/")
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert [chart.get_attribute("id") for chart in charts] == [
        "chart-per-day",
        "chart-histogram",
        "chart-split",
        "chart-accuracy",
        "chart-confusion",
    ]
    for chart in charts:
        assert chart.size["width"] > 300 and chart.size["height"] > 50, chart.get_attribute("id")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-per-day rect")) == 30
    screenshot(browser, "dashboard", width=DESKTOP, max_height=2200)
    screenshot(browser, "dashboard-phone", width=PHONE, max_height=3200)
    # On a phone the charts stack and still fit the screen.
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": PHONE, "height": 800, "deviceScaleFactor": 1, "mobile": True}
    )
    widths = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map((c) => c.getBoundingClientRect().right)"
    )
    assert max(widths) <= PHONE
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE


def test_upload_form_works_with_javascript_switched_off(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    phone_path, mug_path = save_pictures(tmp_path)
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    open_logged_in(browser, live_server, alice)
    assert "no-js" in (browser.find_element(By.TAG_NAME, "html").get_attribute("class") or "")
    browser.find_element(By.ID, "id_image").send_keys(f"{phone_path}\n{mug_path}")
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait(browser, lambda b: "?batch=" in b.current_url, VERDICT_TIMEOUT)
    verdicts = browser.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done] .verdict-word")
    assert len(verdicts) == 2
    assert all(VERDICT_TEXT.match(verdict.text) for verdict in verdicts), [verdict.text for verdict in verdicts]
