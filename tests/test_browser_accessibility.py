"""The review queue with a keyboard alone, and on a 320 px screen, in a real browser (headless Chromium): zoom and
move around the picture, leave the box tool with Tab, shortcuts off means off, nothing focused hides under the
decision bar, nor under the whole screen at 400% zoom; focus kept after Delete box; a verdict arriving on a detail
page said aloud; the heat-map switch drawn in a high-contrast theme."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from inference.drawing import draw_desk_with_phone
from phoneapp.models import Upload, UploadStatus
from tests.factories import make_upload
from tests.test_browser_pages import log_in, open_logged_in, overlay_for, wait

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FOCUSED_ID = "return document.activeElement && document.activeElement.id"
PICTURE_WIDTH = "return document.querySelector('#zoom-frame img.picture').getBoundingClientRect().width"


def press(browser: Chrome, *keys: str) -> None:
    """Keys to whatever has focus, as a keyboard sends them (not to a chosen element)."""
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(browser).send_keys(key).perform()


def test_a_keyboard_user_zooms_moves_around_and_leaves_the_picture(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Z only fitted the picture (+ did nothing), the zoomed frame could not take focus, arrows opened the next
    picture instead of moving around it, and while a box was being drawn Tab stayed on the picture."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.5, name="big.jpg", picture=draw_desk_with_phone(width=1600, height=1200))
    make_upload(alice, probability=0.6, name="next.jpg")
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)

    press(browser, "z")
    wait(browser, lambda b: b.execute_script(FOCUSED_ID) == "zoom-frame", 5)
    frame = browser.find_element(By.ID, "zoom-frame")
    assert frame.get_attribute("role") == "region" and "arrow keys" in (frame.get_attribute("aria-label") or "")
    full = browser.execute_script(PICTURE_WIDTH)
    press(browser, "+")
    wait(browser, lambda b: b.execute_script(PICTURE_WIDTH) > full * 1.2, 5)
    press(browser, Keys.ARROW_DOWN, Keys.ARROW_RIGHT, Keys.PAGE_DOWN)
    wait(
        browser,
        lambda b: b.execute_script(
            "const f = document.getElementById('zoom-frame');return f.scrollTop > 0 && f.scrollLeft > 0;"
        ),
        5,
    )
    assert browser.current_url.endswith(f"/review/{upload.pk}/"), "an arrow opened another picture"
    press(browser, "-")
    wait(browser, lambda b: b.execute_script(PICTURE_WIDTH) < full * 1.1, 5)
    browser.execute_script(  # Ctrl + wheel zooms by the same step
        "document.getElementById('zoom-frame').dispatchEvent(new WheelEvent('wheel', {deltaY: -120, ctrlKey: true,"
        " bubbles: true, cancelable: true}));"
    )
    wait(browser, lambda b: b.execute_script(PICTURE_WIDTH) > full * 1.2, 5)
    press(browser, "-")

    press(browser, "b")
    said = wait(
        browser,
        lambda b: (
            "Drawing a box at the " in b.find_element(By.ID, "box-count").text
            and b.find_element(By.ID, "box-count").text
        ),
        5,
    )
    assert "Esc drops it" in said
    before = browser.execute_script(FOCUSED_ID)
    press(browser, Keys.TAB)
    assert browser.execute_script(FOCUSED_ID) != before, "Tab stayed on the picture while drawing"
    # Moved on, Enter belongs to the control with focus: on "Phone" it decides (it saved the box instead).
    browser.execute_script("document.querySelector('#decisions button[value=phone]').focus()")
    press(browser, Keys.ENTER)
    wait(browser, lambda b: not b.current_url.endswith(f"/review/{upload.pk}/"), 10)
    assert Upload.objects.get(pk=upload.pk).reviewed_label == "phone"


def test_the_heat_map_switch_stays_in_view_while_a_zoomed_picture_is_scrolled_to_its_far_corner(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Zoomed, the switch sat above the picture inside the scrolling frame: scrolled down or right it left the
    frame, and a reviewer had to scroll back to the top left to reach it (its caption was cut off on the left)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.5, name="big.jpg", picture=draw_desk_with_phone(width=1600, height=1200))
    overlay_for(upload, (0.5, 0.5))
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    press(browser, "z", "+")
    wait(browser, lambda b: "zoomed" in (b.find_element(By.ID, "zoom-frame").get_attribute("class") or ""), 5)
    browser.execute_script(
        "const f = document.getElementById('zoom-frame'); f.scrollTop = f.scrollHeight; f.scrollLeft = f.scrollWidth;"
    )
    wait(browser, lambda b: b.execute_script("return document.getElementById('zoom-frame').scrollLeft > 0"), 5)

    # Inside the frame's visible part, and on top there (not under the picture or its boxes).
    outside = browser.execute_script(
        "const f = document.getElementById('zoom-frame').getBoundingClientRect();"
        "return ['label[for=show-heatmap]', '.evidence figcaption'].filter((selector) => {"
        "  const r = document.querySelector(selector).getBoundingClientRect();"
        "  const top = document.elementFromPoint(r.left + 5, r.top + r.height / 2);"
        "  return r.left < f.left || r.right > f.right || r.top < f.top || r.bottom > f.bottom"
        "    || !document.querySelector(selector).contains(top);"
        "});"
    )
    assert not outside, f"out of view in the scrolled zoomed frame: {outside}"
    label = browser.find_element(By.CSS_SELECTOR, "label[for=show-heatmap]")
    ActionChains(browser).move_to_element(label).click().perform()
    overlay = browser.find_element(By.CSS_SELECTOR, ".picture-stack .heatmap")
    wait(browser, lambda b: overlay.value_of_css_property("opacity") == "1", 5)
    assert browser.execute_script("return document.getElementById('zoom-frame').scrollLeft > 0"), "scrolled back"


def test_b_pressed_after_leaving_the_zoomed_picture_draws_a_box_the_arrows_move_and_enter_saves(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Z twice left focus on the Zoom button; B then started a box that the arrows did not move, and Enter pressed
    Zoom instead of saving it, so every later key was taken by a box the reviewer could not place."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.5, name="plain.jpg")
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    press(browser, "z", "z")
    wait(browser, lambda b: b.execute_script(FOCUSED_ID) == "zoom-button", 5)

    press(browser, "b")
    started = browser.find_element(By.ID, "box-count").text
    assert started.startswith("Drawing a box at the centre"), started
    press(browser, *[Keys.ARROW_LEFT] * 10)
    assert "the middle left" in browser.find_element(By.ID, "box-count").text, "the arrows did not move the box"
    press(browser, Keys.ENTER)
    assert browser.find_element(By.ID, "box-count").text.startswith("1 box; selected: ")
    assert "zoomed" not in (browser.find_element(By.ID, "zoom-frame").get_attribute("class") or "")
    press(browser, "p")  # decision keys act again, and the box goes with the decision
    wait(browser, lambda b: Upload.objects.get(pk=upload.pk).reviewed_label == "phone", 10)
    assert Upload.objects.get(pk=upload.pk).reviewed_boxes


def test_on_a_phone_the_zoomed_picture_fits_above_the_decision_bar(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """The zoomed frame was 80% of the screen's height, so with the decision bar fixed over the screen's bottom
    its lower part (and the part of the picture scrolled there) was under the bar however the page was scrolled."""
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.5, name="big.jpg", picture=draw_desk_with_phone(width=1600, height=1200))
    log_in(browser, live_server, reviewer)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 560, "deviceScaleFactor": 1, "mobile": True}
    )
    browser.get(f"{live_server.url}/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    press(browser, "z")
    wait(browser, lambda b: b.execute_script(FOCUSED_ID) == "zoom-frame", 5)
    browser.execute_script("return new Promise((done) => requestAnimationFrame(() => setTimeout(done, 100)))")

    frame, bar = browser.execute_script(
        "return [document.getElementById('zoom-frame').getBoundingClientRect().toJSON(),"
        " document.getElementById('decisions').getBoundingClientRect().toJSON()];"
    )
    assert frame["top"] >= 0 and frame["bottom"] <= bar["top"] + 1, (frame, bar)
    assert frame["height"] >= 200, frame  # still a useful size


def test_with_single_key_shortcuts_off_u_does_not_undo_on_the_empty_queue(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.5, name="only.jpg")
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    press(browser, "p")
    wait(browser, lambda b: b.find_elements(By.ID, "undo-button") and not b.find_elements(By.ID, "review"))
    browser.execute_script("window.PhoneCheckShortcuts.set(false)")
    browser.refresh()
    wait(browser, lambda b: b.find_elements(By.ID, "undo-button"), 5)

    # Undo posts the form: record a post instead of sending it, so "nothing happened" is seen, not waited for.
    browser.execute_script(
        "window.undoPosted = false; HTMLFormElement.prototype.submit = function () { window.undoPosted = true; };"
    )
    press(browser, "u")
    assert browser.execute_script("return window.undoPosted") is False
    assert Upload.objects.get(pk=upload.pk).reviewed_label == "phone"
    browser.refresh()  # the real form.submit again
    wait(browser, lambda b: b.find_elements(By.ID, "undo-button"), 5)

    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()  # not a single key
    wait(browser, lambda b: b.find_elements(By.ID, "review"))
    assert Upload.objects.get(pk=upload.pk).reviewed_label == ""


def test_left_arrow_on_the_empty_queue_goes_back_to_the_last_decision(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """← walks back on every picture of the queue, and the empty queue shows "← Back to your last decision", but
    the key did nothing there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.5, name="only.jpg")
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    press(browser, "p")
    wait(browser, lambda b: b.find_elements(By.ID, "undo-button") and not b.find_elements(By.ID, "review"))
    press(browser, Keys.ARROW_LEFT)
    wait(browser, lambda b: b.current_url.endswith(f"/review/{upload.pk}/"), 5)
    assert Upload.objects.get(pk=upload.pk).reviewed_label == "phone"  # only went back, decided nothing


def test_on_a_320_px_screen_tab_never_leaves_focus_under_the_decision_bar_and_the_shortcuts_fit(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.5, name="narrow.jpg")
    log_in(browser, live_server, reviewer)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 320, "height": 640, "deviceScaleFactor": 1, "mobile": True}
    )
    browser.get(f"{live_server.url}/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    wait(
        browser,
        lambda b: b.execute_script(
            "return getComputedStyle(document.documentElement).getPropertyValue('--decision-bar-height') !== ''"
        ),
        5,
    )

    hidden = []
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    for _ in range(40):
        press(browser, Keys.TAB)
        covered = browser.execute_script(
            "const el = document.activeElement; const bar = document.getElementById('decisions');"
            "if (!el || el === document.body || bar.contains(el)) return null;"
            "const r = el.getBoundingClientRect(); const top = bar.getBoundingClientRect().top;"
            "return r.top >= top - 1 ? (el.id || el.tagName + ':' + el.textContent.trim().slice(0, 30)) : null;"
        )
        if covered:
            hidden.append(covered)
    assert not hidden, f"focused under the decision bar: {hidden}"

    browser.execute_script("document.querySelector('details.shortcuts').open = true")
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths


def test_a_verdict_arriving_on_the_detail_page_is_announced_and_given_to_the_pictures_alt_text(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """After "Try again" (or a link followed from a pending card) the detail page waits for the verdict: it arrived
    on screen in silence, and the picture's alt text kept saying "(pending)"."""
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, name="desk.jpg", picture=draw_desk_with_phone())
    verdict = Upload.objects.filter(pk=upload.pk).values("probability", "predicted_label", "model_version").get()
    Upload.objects.filter(pk=upload.pk).update(status=UploadStatus.PENDING)
    open_logged_in(browser, live_server, alice, f"/uploads/{upload.pk}/")
    picture = browser.find_element(By.CSS_SELECTOR, "img.picture")
    assert picture.get_attribute("alt") == "desk.jpg (pending)"

    Upload.objects.filter(pk=upload.pk).update(status=UploadStatus.DONE, **verdict)  # as a worker writes it
    wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".verdict").get_attribute("data-status") == "done", 30)
    announcers = browser.find_elements(By.CSS_SELECTOR, "[role=status]")
    said = " ".join(element.get_attribute("textContent") or "" for element in announcers)
    assert "desk.jpg: Phone, 90% chance of a phone." in said, said
    assert picture.get_attribute("alt") == "desk.jpg: judged phone, 90% chance of a phone"


def test_a_desktop_window_zoomed_to_400_percent_shows_the_review_picture_and_verdict_not_only_the_decision_bar(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """At 400% a 1280 x 900 window is 320 x 225 CSS px: the decision bar, fixed to the bottom as on a phone, was
    231 px tall there, so it covered the whole screen and no scrolling brought the picture or its verdict out."""
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.9, name="zoomed.jpg", picture=draw_desk_with_phone())
    log_in(browser, live_server, reviewer)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 320, "height": 225, "deviceScaleFactor": 4, "mobile": False}
    )
    try:
        browser.get(f"{live_server.url}/review/{upload.pk}/")
        wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
        seen: dict[str, bool] = {}
        for name, selector in (("picture", "#zoom-frame img.picture"), ("verdict", ".review-panel .verdict-word")):
            seen[name] = browser.execute_script(
                "const el = document.querySelector(arguments[0]); el.scrollIntoView({block: 'center'});"
                "const r = el.getBoundingClientRect();"
                "const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 8));"
                "return Boolean(hit) && !document.getElementById('decisions').contains(hit);",
                selector,
            )
        assert seen == {"picture": True, "verdict": True}, seen
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_delete_box_pressed_from_the_keyboard_leaves_focus_on_the_box_tools_not_the_page(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Delete box is disabled once its box is gone, and a disabled button drops focus to <body>: a screen reader
    lost its place, and the next key went to the page instead of the tools."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.9, name="boxed.jpg", boxes=[{"box": [0.1, 0.1, 0.3, 0.4], "score": 0.8}])
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    press(browser, "x")  # selects the model's box
    delete = browser.find_element(By.ID, "delete-box-button")
    wait(browser, lambda b: delete.is_enabled(), 5)
    delete.send_keys(Keys.ENTER)

    wait(browser, lambda b: b.find_element(By.ID, "box-count").text == "0 boxes", 5)
    assert browser.execute_script(FOCUSED_ID) == "draw-box-button"


def test_in_a_high_contrast_theme_the_heat_map_switch_is_drawn_and_shows_on_and_off(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """Forced colours (Windows' high-contrast themes) drop backgrounds and shadows, which is all the switch was drawn
    with (the real checkbox is invisible): its label read as plain text, the same on as off."""
    import io

    from PIL import Image, ImageChops
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.9, name="contrast.jpg", picture=draw_desk_with_phone())
    overlay_for(upload, (0.5, 0.5))
    open_logged_in(browser, live_server, alice)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "forced-colors", "value": "active"}]})
    try:
        browser.get(f"{live_server.url}/uploads/{upload.pk}/")
        label = browser.find_element(By.CSS_SELECTOR, "label[for=show-heatmap]")

        def switch() -> Image.Image:
            shot = Image.open(io.BytesIO(label.screenshot_as_png)).convert("RGB")
            return shot.crop((0, 0, min(shot.width, 36), shot.height))  # the drawn switch (2.4rem), left of the words

        off = switch()
        label.click()
        wait(browser, lambda b: b.find_element(By.ID, "show-heatmap").is_selected(), 5)
        on = switch()
        blank = Image.new("RGB", off.size, off.getpixel((0, 0)))
        assert ImageChops.difference(off, blank).getbbox() is not None, "the switch is not drawn at all"
        assert ImageChops.difference(off, on).getbbox() is not None, "on and off look the same"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_moving_a_box_being_drawn_says_only_where_it_is_now_the_keys_once(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """Each arrow press said the box's place and then all the keys again ("arrows move it, Shift+arrows size it,
    Enter saves it, Esc drops it"): a screen reader queued ~20 words per step."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload = make_upload(alice, probability=0.5, name="plain.jpg")
    open_logged_in(browser, live_server, reviewer, f"/review/{upload.pk}/")
    wait(browser, lambda b: b.find_element(By.ID, "review").get_attribute("data-zoom-ready") == "true", 5)
    press(browser, "b")
    assert "Enter saves it" in browser.find_element(By.ID, "box-count").text
    press(browser, *[Keys.ARROW_UP] * 10)
    said = browser.find_element(By.ID, "box-count").text
    assert said == "Drawing a box at the top centre, 20% of the picture wide.", said


def test_the_admin_pictures_link_to_the_review_queue_is_underlined_not_told_by_colour_alone(
    live_server: LiveServer, browser: Chrome, alice: User, reviewer: User
) -> None:
    """ "Decide on it in the review queue" sat in the picture's caption in the admin's link blue, 2.6:1 against the
    caption's grey and not underlined: without seeing colour, nothing showed it was a link."""
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, probability=0.9, name="admin.jpg")
    open_logged_in(browser, live_server, reviewer, f"/admin/phoneapp/upload/{upload.pk}/change/")
    link = browser.find_element(By.CSS_SELECTOR, ".admin-picture figcaption a")
    assert link.text == "Decide on it in the review queue"
    assert "underline" in link.value_of_css_property("text-decoration-line")
