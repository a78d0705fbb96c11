"""In a real browser: the model's boxes over the thumbnails of upload cards and history cards, where they belong,
dashed where the model is unsure of the place (drawn alike by the server and by boxes.js); a HEIC picture Chromium
cannot draw gets the server's thumbnail instead of a broken image; the admin's upload list fits a 1366 px window.

Headless Debian Chromium against pytest-django's live server (no broker: uploads are classified in its thread).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from inference.drawing import draw_desk_with_phone
from phoneapp.models import Upload
from tests.factories import make_upload
from tests.images import encode
from tests.test_browser_pages import (
    DESKTOP,
    PHONE,
    SCREENSHOT_FLAGS,
    VERDICT_TIMEOUT,
    log_in,
    open_logged_in,
    screenshot,
    wait,
)

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Where the model found the phone, as [x1, y1, x2, y2] fractions of the picture: lopsided, so swapped axes show.
BOX = [0.1, 0.2, 0.5, 0.9]
# How far (CSS px) a drawn box edge may sit from where BOX puts it on the shown picture: rounding only.
TOLERANCE_PX = 1.5


@pytest.fixture
def browser_flags() -> tuple[str, ...]:
    """Screenshots without scrollbars, at the desktop width (the ``browser`` fixture is in conftest.py)."""
    return SCREENSHOT_FLAGS


# For every card (by selector): the shown picture's box on screen, its natural size, and the boxes drawn over it.
CARD_GEOMETRY = """
return Array.from(document.querySelectorAll(arguments[0])).map((card) => {
  const img = card.querySelector(".picture-stack img");
  const frame = img.getBoundingClientRect();
  return {
    id: card.dataset.uploadId,
    loaded: img.complete && img.naturalWidth > 0,
    natural: [img.naturalWidth, img.naturalHeight],
    picture: [frame.left, frame.top, frame.width, frame.height],
    boxes: Array.from(card.querySelectorAll(".picture-stack svg.boxes rect.box")).map((rect) => {
      const box = rect.getBoundingClientRect();
      return [box.left, box.top, box.right, box.bottom];
    }),
  };
});
"""


def assert_boxes_in_place(cards: list[dict[str, Any]], *, count: int) -> None:
    """Each card shows its whole picture (not cropped: its shape is the picture's) and BOX over the right part."""
    assert len(cards) == count, cards
    for card in cards:
        assert card["loaded"], card
        left, top, width, height = card["picture"]
        natural_width, natural_height = card["natural"]
        assert width / height == pytest.approx(natural_width / natural_height, rel=0.03), card
        [drawn] = card["boxes"]
        expected = [left + BOX[0] * width, top + BOX[1] * height, left + BOX[2] * width, top + BOX[3] * height]
        assert drawn == pytest.approx(expected, abs=TOLERANCE_PX), card


def test_the_models_boxes_sit_on_the_upload_card_and_history_card_pictures(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path, deployed_models: None
) -> None:
    from selenium.webdriver.common.by import By

    picture = draw_desk_with_phone()
    path = tmp_path / "desk.jpg"
    path.write_bytes(encode(picture))
    # The same picture judged before by the active model: sending it again carries that verdict and its boxes
    # in the 201, as a fresh classification by a localising model would.
    first = make_upload(
        alice,
        probability=0.97,
        name="desk-earlier.jpg",
        picture=picture,
        version="imagenet-zero-shot",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        boxes=[{"box": BOX, "score": 0.97}],
    )
    open_logged_in(browser, live_server, alice)
    browser.find_element(By.ID, "id_image").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait(browser, lambda b: Upload.objects.count() == 2, VERDICT_TIMEOUT)
    sent = Upload.objects.exclude(pk=first.pk).get()
    new_card = f"#results li.result[data-upload-id='{sent.pk}']"
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f"{new_card} .verdict[data-status=done]"), 30)
    # The card drawn by upload.js from the 201, over the local preview of the chosen file.
    wait(browser, lambda b: b.execute_script(CARD_GEOMETRY, new_card)[0]["loaded"], 10)
    assert_boxes_in_place(browser.execute_script(CARD_GEOMETRY, new_card), count=1)
    screenshot(browser, "upload-boxes", width=DESKTOP)

    # After a reload the server draws both cards (the new one and the earlier one) with the same boxes.
    browser.get(f"{live_server.url}/")
    wait(browser, lambda b: all(card["loaded"] for card in b.execute_script(CARD_GEOMETRY, "#results li.result")))
    assert_boxes_in_place(browser.execute_script(CARD_GEOMETRY, "#results li.result"), count=2)

    browser.get(f"{live_server.url}/history/")
    wait(browser, lambda b: all(card["loaded"] for card in b.execute_script(CARD_GEOMETRY, ".history-grid .card")))
    assert_boxes_in_place(browser.execute_script(CARD_GEOMETRY, ".history-grid .card"), count=2)
    screenshot(browser, "history-boxes", width=DESKTOP)


# Each drawn box of the detail page: its classes, its tooltip and whether its outline is dashed.
BOX_STYLES = """
return Array.from(document.querySelectorAll(arguments[0])).map((rect) => ({
  classes: rect.getAttribute("class"),
  title: rect.querySelector("title").textContent,
  dashed: getComputedStyle(rect).strokeDasharray !== "none",
}));
"""


def test_a_box_the_model_is_unsure_of_is_dashed_alike_by_the_server_and_by_boxes_js(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """A confident phone verdict from many weak cells has a best box whose own score is low: drawn dashed, "the
    phone may be here", beside a sure one; boxes.js (verdicts that arrive without a reload) draws the same."""
    from selenium.webdriver.common.by import By

    boxes = [{"box": [0.1, 0.1, 0.3, 0.4], "score": 0.35}, {"box": [0.6, 0.5, 0.8, 0.9], "score": 0.91}]
    upload = make_upload(alice, probability=0.97, boxes=boxes)
    open_logged_in(browser, live_server, alice)
    browser.get(f"{live_server.url}/uploads/{upload.pk}/")
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "svg.boxes rect.box"))
    served = browser.execute_script(BOX_STYLES, "svg.boxes rect.box")
    assert served == [
        {
            "classes": "box unsure-place",
            "title": "the phone may be in the top left, 20% of the picture wide (35%)",
            "dashed": True,
        },
        {"classes": "box", "title": "phone in the bottom right, 20% of the picture wide (91%)", "dashed": False},
    ]
    # Where each phone is, for people who cannot see the picture: said by the overlay itself.
    label = browser.find_element(By.CSS_SELECTOR, "svg.boxes").get_attribute("aria-label")
    assert label == (
        "2 phones found by the model: the phone may be in the top left, 20% of the picture wide (35%); "
        "phone in the bottom right, 20% of the picture wide (91%)"
    )
    drawn = browser.execute_script(
        "const svg = window.PhoneCheckBoxes.overlay(arguments[0]); svg.id = 'drawn-by-js';"
        "document.querySelector('svg.boxes').parentElement.append(svg);",
        boxes,
    )
    assert drawn is None
    assert browser.execute_script(BOX_STYLES, "#drawn-by-js rect.box") == served
    assert browser.find_element(By.ID, "drawn-by-js").get_attribute("aria-label") == label


def test_a_heic_picture_chromium_cannot_draw_gets_the_server_thumbnail(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path, deployed_models: None, heatmaps_off: None
) -> None:
    import pillow_heif
    from selenium.webdriver.common.by import By

    path = tmp_path / "iphone.heic"
    heif = pillow_heif.from_pillow(draw_desk_with_phone(320, 240))
    buffer = io.BytesIO()
    heif.save(buffer, quality=80)
    path.write_bytes(buffer.getvalue())

    open_logged_in(browser, live_server, alice)
    browser.find_element(By.ID, "id_image").send_keys(str(path))
    # Chosen: Chromium cannot draw HEIC, so the preview says so instead of showing a broken image.
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#chosen .chosen-thumb.no-preview"), 10)
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    thumb = "#results li.result .result-thumb"
    wait(
        browser,
        lambda b: b.execute_script(
            "const img = document.querySelector(arguments[0] + ' img');"
            "return img.dataset.source === 'server' && img.complete && img.naturalWidth > 0;",
            thumb,
        ),
        15,
    )
    shown = browser.execute_script(
        "const thumb = document.querySelector(arguments[0]); const img = thumb.querySelector('img');"
        "return {noPreview: thumb.classList.contains('no-preview'), visibility: getComputedStyle(img).visibility,"
        " width: img.getBoundingClientRect().width, src: img.getAttribute('src')};",
        thumb,
    )
    upload = Upload.objects.get()
    assert shown["src"].endswith(f"/api/uploads/{upload.pk}/thumbnail"), shown
    assert (shown["noPreview"], shown["visibility"]) == (False, "visible"), shown
    assert shown["width"] > 40, shown


def test_the_admin_upload_list_fits_a_1366_px_window(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    owner = User.objects.create_user("photographer.with.a.long.name@example.org", password="long-password-1")
    for index in range(4):
        make_upload(
            owner if index % 2 else alice,
            probability=[0.97, 0.5, 0.02, 0.85][index],
            name=f"IMG_20261130_18451{index}_HDR_portrait_mode_front_camera_burst_{index:03d}.jpeg",
            version="finetuned-lite2-scenes-v3-calibrated",
            reviewed="phone" if index == 0 else "",
            reviewer=reviewer,
        )
    log_in(browser, live_server, reviewer)
    assert_admin_list_fits(browser, f"{live_server.url}/admin/phoneapp/upload/", width=1366, rows=4)
    screenshot(browser, "admin-uploads", width=1366)


def test_on_a_phone_the_admin_upload_list_shows_the_verdict_and_review_without_scrolling_sideways(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """At 390 px the list scrolled sideways and the Verdict and Review columns, what a reviewer opens it for,
    began off-screen behind the owner and status."""
    from selenium.webdriver.common.by import By

    for index in range(3):
        make_upload(
            alice,
            probability=[0.97, 0.5, 0.003][index],
            name=f"IMG_20261130_18451{index}_HDR_portrait_mode_front_camera_burst_{index:03d}.jpeg",
            version="finetuned-lite2-scenes-v3-calibrated",
            reviewed="phone" if index == 0 else "",
            reviewer=reviewer,
        )
    log_in(browser, live_server, reviewer)
    phone = {"width": PHONE, "height": 800, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        browser.get(f"{live_server.url}/admin/phoneapp/upload/")
        wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 3, 10)
        edges = browser.execute_script(
            "const edge = (name) => document.querySelector(`#result_list th.column-${name}`)"
            ".getBoundingClientRect();"
            "return {inner: window.innerWidth, verdict: edge('verdict_display').left,"
            " review: edge('review_display').left};"
        )
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert edges["inner"] == PHONE, edges
    # Their first words on screen, not just their borders.
    assert 0 <= edges["verdict"] < edges["review"] < edges["inner"] - 60, edges


def assert_admin_list_fits(browser: Chrome, url: str, *, width: int, rows: int) -> None:
    """At a window ``width`` px wide, the admin list at ``url`` (of ``rows`` rows) shows every column: the page
    does not scroll sideways, nor does the list inside it."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(width, 900)
    browser.get(url)
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == rows, 10)
    fit = browser.execute_script(
        "const table = document.getElementById('result_list'); const box = table.parentElement;"
        "return {inner: window.innerWidth, page: document.documentElement.scrollWidth,"
        " table: table.getBoundingClientRect().right, container: box.getBoundingClientRect().right,"
        " tableWidth: table.scrollWidth, containerWidth: box.clientWidth};"
    )
    assert fit["inner"] >= width - 16, fit  # the window really is about that wide
    assert fit["page"] <= fit["inner"], fit
    assert fit["tableWidth"] <= fit["containerWidth"] and fit["table"] <= fit["container"] + 0.5, fit


def test_the_admin_model_version_list_fits_a_1280_px_window(
    live_server: LiveServer, browser: Chrome, reviewer: User
) -> None:
    """Ten columns on one line each cut the threshold and checksum off at 1280 px: a rollback is chosen here."""
    from phoneapp.models import ModelVersion, VersionScore

    figures = {"accuracy": 0.9771, "f1": 0.9712, "roc_auc": 0.9954, "count": 1812}
    for index, name in enumerate(
        ["scene-lite0-v10", "scene-lite0-v9", "finetuned-lite2-v2", "retrained-20261206-1142"]
    ):
        version = ModelVersion.objects.create(
            name=name,
            path=name,
            checksum=hashlib.sha256(name.encode()).hexdigest(),
            is_active=index == 0,
            metrics={"threshold": 0.4321, "cross_validation": {"shared_set": figures}},
        )
        for picture_set in VersionScore.Set.values:
            VersionScore.objects.create(
                version=version, picture_set=picture_set, count=1204, correct=1187, accuracy=1187 / 1204
            )
    log_in(browser, live_server, reviewer)
    assert_admin_list_fits(browser, f"{live_server.url}/admin/phoneapp/modelversion/", width=1280, rows=4)


def test_an_uploads_admin_page_with_a_long_file_name_fits_a_phone(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Its title and breadcrumbs did not wrap: the page was 678 px wide at 375."""
    from selenium.webdriver.common.by import By

    upload = make_upload(
        alice,
        probability=0.9,
        name="IMG_20261130_184510_HDR_portrait_mode_front_camera_burst_000_edited_final_version_2.jpeg",
    )
    log_in(browser, live_server, reviewer)
    phone = {"width": PHONE, "height": 800, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    browser.get(f"{live_server.url}/admin/phoneapp/upload/{upload.pk}/change/")
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".admin-picture img.picture"), 10)
    widths = browser.execute_script("return [window.innerWidth, document.documentElement.scrollWidth];")
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert widths[0] == PHONE and widths[1] <= widths[0], widths


# Per chart: its bars (label, count, horizontal extent on screen) and its day labels' extents as Chromium drew them.
CHART_GEOMETRY = """
const chart = document.getElementById(arguments[0]);
const bars = Array.from(chart.querySelectorAll("rect")).filter((rect) => rect.querySelector("title")).map((rect) => {
  const box = rect.getBoundingClientRect();
  const [label, count] = rect.querySelector("title").textContent.split(": ");
  return {label, count: Number(count), center: (box.left + box.right) / 2};
});
const names = new Set(bars.map((bar) => bar.label));
const labels = Array.from(chart.querySelectorAll("text")).filter((text) => names.has(text.textContent)).map((text) => {
  const box = text.getBoundingClientRect();
  return {label: text.textContent, left: box.left, right: box.right};
});
return {bars, labels};
"""


def test_a_day_with_uploads_has_only_its_own_label_under_its_bar(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """The reported bug: the "30 Nov" label was drawn under the "1 Dec" bar (today's, the one with uploads)."""
    from datetime import timedelta

    from django.utils import timezone
    from selenium.webdriver.common.by import By

    now = timezone.now()
    for days_ago in (0, 0, 7, 14):
        make_upload(alice, created=now - timedelta(days=days_ago))
    open_logged_in(browser, live_server, reviewer, "/dashboard/")
    wait(browser, lambda b: b.find_elements(By.ID, "chart-per-day"), 10)
    geometry = browser.execute_script(CHART_GEOMETRY, "chart-per-day")
    busy = [bar for bar in geometry["bars"] if bar["count"]]
    assert [bar["label"] for bar in busy][-1] == timezone.localdate().strftime("%d %b")
    assert len(busy) == 3
    for bar in busy:
        under = [label["label"] for label in geometry["labels"] if label["left"] <= bar["center"] <= label["right"]]
        assert under == [bar["label"]], (bar, geometry["labels"])
