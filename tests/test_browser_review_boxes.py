"""In a real browser: a reviewer draws a box around the phone with the mouse and another with the keyboard, deletes
the model's wrong box, and decides; the boxes are stored, the API returns them, and a retrain trains on them.

Headless Debian Chromium against pytest-django's live server.
"""

from __future__ import annotations

import io
import json
import random
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from inference.drawing import draw_desk_with_phone
from phoneapp.models import Upload
from phoneapp.services.reviews import review_split_of
from tests.factories import make_upload
from tests.test_browser_pages import DESKTOP, PHONE, SCREENSHOT_FLAGS, log_in, open_logged_in, screenshot, wait
from tests.test_retrain import QUICK, reviewed_uploads

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_flags() -> tuple[str, ...]:
    """Screenshots without scrollbars, at the desktop width (the ``browser`` fixture is in conftest.py)."""
    return SCREENSHOT_FLAGS


def train_split_sha256() -> str:
    """A picture hash the stable split sends to training (an eval picture would, rightly, never train)."""
    return next(f"{n:064x}" for n in range(100) if review_split_of(sha256=f"{n:064x}") == "train")


def test_reviewer_draws_boxes_with_mouse_and_keyboard_and_a_retrain_trains_on_them(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    target = make_upload(
        alice,
        probability=0.97,
        name="desk.jpg",
        picture=draw_desk_with_phone(),
        sha256=train_split_sha256(),
        boxes=[{"box": [0.05, 0.05, 0.2, 0.2], "score": 0.3}],  # a sure phone, its box a guess in the wrong place
    )
    following = make_upload(alice, probability=0.9, name="next.jpg")
    open_logged_in(browser, live_server, reviewer, f"/review/{target.pk}/")
    editor = wait(browser, lambda b: b.find_element(By.ID, "box-editor"), 10)
    assert len(editor.find_elements(By.CSS_SELECTOR, "rect.user-box")) == 1  # the model's box, editable
    assert "not sure where" in browser.find_element(By.ID, "unsure-place-note").text  # asks for a box

    # Mouse: click the model's box and delete it, then drag a new one from (20%, 30%) to (50%, 70%).
    ActionChains(browser).move_to_element(editor.find_element(By.CSS_SELECTOR, "rect.user-box")).click().perform()
    browser.find_element(By.TAG_NAME, "body").send_keys("x")
    wait(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box"), 5)
    size = editor.size
    width, height = size["width"], size["height"]
    start = (round(-width / 2 + 0.2 * width), round(-height / 2 + 0.3 * height))
    chain = ActionChains(browser).move_to_element_with_offset(editor, *start).click_and_hold()
    chain.move_by_offset(round(0.15 * width), round(0.2 * height)).move_by_offset(
        round(0.15 * width), round(0.2 * height)
    )
    chain.release().perform()
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box")) == 1, 5)

    # Keyboard: B starts a box in the middle, two steps right, one taller, Enter saves it.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("b")
    body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    body.send_keys(Keys.SHIFT, Keys.ARROW_DOWN)
    body.send_keys(Keys.ENTER)
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box")) == 2, 5)
    assert "2 boxes" in browser.find_element(By.ID, "box-count").text
    screenshot(browser, "review-boxes-drawn", width=DESKTOP)
    body.send_keys("p")
    wait(
        browser,
        lambda b: b.execute_script("return document.getElementById('review').dataset.uploadId") == str(following.pk),
        15,
    )

    target.refresh_from_db()
    assert target.reviewed_label == "phone"
    drawn = [entry["box"] for entry in target.reviewed_boxes or []]
    assert len(drawn) == 2
    assert drawn[0] == pytest.approx([0.2, 0.3, 0.5, 0.7], abs=0.03)
    assert drawn[1] == pytest.approx([0.44, 0.35, 0.64, 0.67], abs=0.011)

    api = Client()
    api.force_login(alice)
    assert [entry["box"] for entry in api.get(f"/api/uploads/{target.pk}/").json()["reviewed_boxes"]] == drawn

    reviewed_uploads(alice, reviewer, 24, random.Random(21))
    out = io.StringIO()
    call_command("retrain", *QUICK, "--json", "--dry-run", stdout=out, stderr=io.StringIO())
    summary = json.loads(out.getvalue())["data_summary"]
    assert summary["boxed_pictures"] == 1
    assert Upload.objects.get(pk=target.pk).review_split == "train"


def test_a_reviewer_whose_picture_was_decided_meanwhile_is_told_and_nothing_is_replaced(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """The page sends the review it showed with the key press; another reviewer's decision in between is not
    silently replaced: the page says who decided and the first decision stands."""
    from selenium.webdriver.common.by import By

    from phoneapp.services.reviews import upload_group_review
    from tests.factories import make_user

    upload = make_upload(alice, probability=0.5, name="shared.jpg")
    colleague = make_user("colleague", staff=True)
    log_in(browser, live_server, reviewer)
    browser.set_window_size(PHONE, 844)  # said where a reviewer on a phone sees it: in the sticky decision bar
    browser.get(f"{live_server.url}/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "seen-field"))

    upload_group_review(upload=upload, decision="not_phone", reviewer=colleague)
    browser.find_element(By.TAG_NAME, "body").send_keys("p")

    status = wait(browser, lambda b: "nothing was saved" in b.find_element(By.ID, "review-status").text)
    assert status
    said = browser.find_element(By.ID, "review-status")
    assert "colleague" in said.text and "(it is now not a phone)" in said.text
    bottom = browser.execute_script("return arguments[0].getBoundingClientRect().bottom", said)
    assert 0 < bottom <= browser.execute_script("return window.innerHeight"), bottom
    browser.set_window_size(DESKTOP, 900)
    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.reviewed_by) == ("not_phone", colleague)
    # The next key shows the colleague's decision (the page reloads) instead of answering the same 409 again.
    browser.find_element(By.TAG_NAME, "body").send_keys("p")
    note = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".reviewed-note"))
    assert "Reviewed as not a phone by colleague" in note[0].text
    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.reviewed_by) == ("not_phone", colleague)


def test_a_picture_a_colleague_has_open_is_handed_out_last_and_its_page_says_so(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Two reviewers at once: the queue hands this one the picture nobody has open first; the colleague's picture
    comes only when nothing else is left, with a note naming who has it."""
    from selenium.webdriver.common.by import By

    from phoneapp.services.review_claims import upload_review_claim
    from tests.factories import make_user

    colleagues_picture = make_upload(alice, probability=0.52, name="colleague.jpg")
    free_picture = make_upload(alice, probability=0.45, name="free.jpg")
    colleague = make_user("colleague", staff=True)
    assert upload_review_claim(upload_id=colleagues_picture.pk, reviewer=colleague) is None
    log_in(browser, live_server, reviewer)

    browser.get(f"{live_server.url}/review/")
    wait(browser, lambda b: b.current_url.endswith(f"/review/{free_picture.pk}/"))
    assert not browser.find_elements(By.ID, "open-with-note")
    browser.find_element(By.TAG_NAME, "body").send_keys("p")

    wait(browser, lambda b: b.current_url.endswith(f"/review/{colleagues_picture.pk}/"))
    note = wait(browser, lambda b: b.find_element(By.ID, "open-with-note"))
    assert "colleague has this picture open too" in note.text
    assert Upload.objects.get(pk=free_picture.pk).reviewed_label == "phone"


def test_the_models_guess_is_drawn_dashed_and_removed_from_the_keyboard(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """The queue drew the model's boxes like the reviewer's own (solid, no score), and its note asked to delete a
    guessed box with X, which did nothing until the box was clicked."""
    from selenium.webdriver.common.by import By

    guessed = {"box": [0.1, 0.2, 0.4, 0.6], "score": 0.35}
    upload = make_upload(alice, probability=0.97, name="guess.jpg", boxes=[guessed])
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    box = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box"))[0]
    assert "unsure-place" in (box.get_attribute("class") or "")
    assert box.find_element(By.TAG_NAME, "title").get_attribute("textContent") == (
        "the phone may be in the middle left, 30% of the picture wide (35%)"
    )

    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("x")
    [selected] = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box.selected"), 5)
    # Selected, it is drawn solid: it was red and dashed, and dashes mean "the model's guess" everywhere else.
    assert browser.execute_script("return getComputedStyle(arguments[0]).strokeDasharray", selected) == "none"
    body.send_keys("x")
    wait(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box"), 5)
    body.send_keys("p")

    wait(browser, lambda b: Upload.objects.get(pk=upload.pk).reviewed_label == "phone", 10)
    assert Upload.objects.get(pk=upload.pk).reviewed_boxes == []


def test_a_zoomed_picture_pans_with_the_wheel_and_a_finger_instead_of_zooming_or_drawing(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Zoomed, the wheel only zoomed (down to a quarter) and a swipe drew a box, so neither could move around the
    picture; and "full resolution" of a picture smaller than the frame shrank it."""
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.5, name="small.jpg", picture=draw_desk_with_phone(width=320, height=240))
    log_in(browser, live_server, reviewer)
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    browser.get(f"{live_server.url}/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    boxes = "#box-editor rect.user-box, #box-editor rect.draft-box"

    def swipe() -> None:
        middle = browser.execute_script(
            "const r = document.getElementById('box-editor').getBoundingClientRect();"
            "return [r.left + r.width / 2, r.top + r.height / 2];"
        )
        for kind, dx in (("touchStart", 0), ("touchMove", 40), ("touchMove", 80), ("touchEnd", 80)):
            points = [] if kind == "touchEnd" else [{"x": middle[0] - dx, "y": middle[1] - dx / 2}]
            browser.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    swipe()  # not zoomed: a finger draws a box (the touch events do reach the page)
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#box-editor rect.user-box")) == 1, 5)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("x")
    body.send_keys("x")
    wait(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, boxes), 5)

    picture_width = "return document.querySelector('#zoom-frame img.picture').getBoundingClientRect().width"
    fitted = browser.execute_script(picture_width)
    body.send_keys("z")
    wait(browser, lambda b: "zoomed" in (b.find_element(By.ID, "zoom-frame").get_attribute("class") or ""), 5)
    zoomed = browser.execute_script(picture_width)
    assert zoomed >= fitted - 1, (zoomed, fitted)

    browser.execute_script(
        "document.getElementById('zoom-frame').dispatchEvent(new WheelEvent('wheel', {deltaY: 120, bubbles: true,"
        " cancelable: true}));"
    )
    assert browser.execute_script(picture_width) == zoomed  # a plain wheel scrolls, it does not zoom

    swipe()  # zoomed: the same finger pans
    assert not browser.find_elements(By.CSS_SELECTOR, boxes)


def test_letter_shortcuts_can_be_switched_off_on_the_account_page(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """P, N, H… acted on any key press with no way to turn them off (WCAG 2.1.4: a speech-input user's words)."""
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.5, name="keys.jpg")
    open_logged_in(browser, live_server, reviewer, "/account/")
    switch = wait(browser, lambda b: b.find_element(By.ID, "single-key-shortcuts"), 5)
    assert switch.is_selected()
    switch.click()

    browser.get(f"{live_server.url}/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    browser.find_element(By.TAG_NAME, "body").send_keys("p")
    browser.find_element(By.TAG_NAME, "body").send_keys("z")
    assert "zoomed" not in (browser.find_element(By.ID, "zoom-frame").get_attribute("class") or "")
    assert Upload.objects.get(pk=upload.pk).reviewed_label == ""  # the letter did nothing

    browser.get(f"{live_server.url}/account/")
    wait(browser, lambda b: b.find_element(By.ID, "single-key-shortcuts"), 5).click()  # on again
    browser.get(f"{live_server.url}/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    browser.find_element(By.TAG_NAME, "body").send_keys("p")
    wait(browser, lambda b: Upload.objects.get(pk=upload.pk).reviewed_label == "phone", 10)


def test_on_a_touch_phone_the_review_page_shows_no_key_hints_and_ends_just_above_the_decision_bar(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """On a phone, Skip, Undo and the queue links sat ~300 px above the fixed decision bar (a fixed allowance for
    its height), and the box tools, the ground-truth switch and the note about the model's box showed keys (B, X,
    G) that a touch screen has not got."""
    upload = make_upload(
        alice,
        probability=0.97,
        name="desk.jpg",
        picture=draw_desk_with_phone(),
        boxes=[{"box": [0.05, 0.05, 0.2, 0.2], "score": 0.3}],  # phone, not sure where: the note names keys
    )
    log_in(browser, live_server, reviewer)
    metrics = {"width": PHONE, "height": 740, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        browser.get(f"{live_server.url}/review/{upload.pk}/")
        assert "unsure-place-note" in browser.page_source
        shown_keys = browser.execute_script(
            "return [...document.querySelectorAll('kbd')].filter((k) => k.getClientRects().length).map((k) =>"
            " k.textContent);"
        )
        assert shown_keys == []
        note = browser.execute_script("return document.getElementById('unsure-place-note').innerText;")
        assert "select it and delete it, then draw one around the phone:" in note

        def gap_above_bar() -> float:
            gap: float = browser.execute_script(
                "window.scrollTo(0, document.documentElement.scrollHeight);"
                "const bar = document.getElementById('decisions').getBoundingClientRect();"
                "const nav = document.querySelector('.queue-nav').getBoundingClientRect();"
                "const skip = document.getElementById('skip-button').getBoundingClientRect();"
                "return skip.bottom <= nav.top && nav.bottom <= bar.top ? bar.top - nav.bottom : -1;"
            )
            return gap

        wait(browser, lambda b: 0 <= gap_above_bar() < 48, 5)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
