"""In a real browser: verdicts never flash before they are known and agree with the model's own threshold, the
review queue's undo and duplicate grouping, the API token page used from curl, Swagger UI offline, previews of
chosen files, and the history's CSV export.

Headless Debian Chromium against pytest-django's live server (no broker: uploads are classified in its thread).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from inference.drawing import draw_desk_with_phone, draw_red_mug
from phoneapp.models import ModelVersion, Upload, UploadStatus
from tests.factories import chance_shown, make_model_version_with_manifest, make_upload
from tests.test_browser_pages import (
    DESKTOP,
    PHONE,
    SCREENSHOT_FLAGS,
    VERDICT_TIMEOUT,
    log_in,
    open_logged_in,
    save_pictures,
    screenshot,
    wait,
)

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver import Chrome


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_flags() -> tuple[str, ...]:
    """Screenshots without scrollbars, at the desktop width (the ``browser`` fixture is in conftest.py)."""
    return SCREENSHOT_FLAGS


# Every text the verdict of a card shows, recorded as it changes: a flash of a made-up verdict would be caught.
RECORD_VERDICT_TEXTS = """
window.verdictTexts = [];
new MutationObserver(() => {
  document.querySelectorAll("#results .verdict").forEach((verdict) => {
    const text = verdict.innerText.trim();
    if (window.verdictTexts[window.verdictTexts.length - 1] !== text) window.verdictTexts.push(text);
  });
}).observe(document.getElementById("results"), {subtree: true, childList: true, characterData: true});
"""


def test_upload_shows_no_verdict_before_the_real_one_and_it_matches_the_stored_probability(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    phone_path, _ = save_pictures(tmp_path)
    open_logged_in(browser, live_server, alice)
    browser.execute_script(RECORD_VERDICT_TEXTS)
    browser.find_element(By.ID, "id_image").send_keys(str(phone_path))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)

    upload = Upload.objects.get(owner=alice)
    final = browser.find_element(By.CSS_SELECTOR, "#results .verdict .verdict-word").text
    assert upload.probability is not None and f"— {chance_shown(upload.probability)} chance of a phone" in final
    texts = browser.execute_script("return window.verdictTexts")
    assert not any("NaN" in text or "model unknown" in text for text in texts), texts
    # Before the final verdict only progress words were shown, never a verdict.
    before = [text for text in texts if " chance of a phone" not in text]
    assert texts.index(next(text for text in texts if " chance of a phone" in text)) == len(before)
    assert all(
        text.rstrip("…").split("\n")[0] in {"Waiting to upload", "Uploading", "Pending", "Processing"}
        for text in before
    ), before


def test_a_live_card_says_the_stored_size_and_date_as_the_page_does_after_a_reload(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path, settings: SettingsFixture
) -> None:
    """The file chosen carries a location and camera data the server removes: the card shows what was kept, and
    the date in the server's time zone (one with a half-hour offset, so a date taken as UTC would read otherwise)."""
    from selenium.webdriver.common.by import By

    from tests.test_privacy_metadata import jpeg_with_gps

    settings.TIME_ZONE = "Asia/Kolkata"
    path = tmp_path / "street.jpg"
    path.write_bytes(jpeg_with_gps(width=400, height=300))
    open_logged_in(browser, live_server, alice)
    browser.find_element(By.ID, "id_image").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#results .verdict[data-status=done]"), VERDICT_TIMEOUT)
    live = browser.find_element(By.CSS_SELECTOR, "#results .result-size").text

    upload = Upload.objects.get(owner=alice)
    assert upload.size_bytes < path.stat().st_size  # the metadata was removed: the sizes differ
    browser.refresh()
    reloaded = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, f"[data-upload-id='{upload.pk}'] .result-size"))
    assert live == reloaded.text
    assert " · " in live  # size and date, as the page writes them


def test_a_card_pending_for_long_keeps_saying_why_it_waits_as_it_polls(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    from datetime import timedelta

    from django.utils import timezone
    from selenium.webdriver.common.by import By

    waiting = make_upload(alice, status=UploadStatus.PENDING, probability=None, version=None, name="waiting.jpg")
    Upload.objects.filter(pk=waiting.pk).update(created=timezone.now() - timedelta(minutes=5))
    just_sent = make_upload(alice, status=UploadStatus.PENDING, probability=None, version=None, name="new.jpg")
    open_logged_in(browser, live_server, alice, "/history/")
    # Marks that upload.js's next answer replaces: then the text is the script's, not the server's.
    browser.execute_script(
        "document.querySelectorAll('[data-verdict-for]').forEach((v) => v.append(Object.assign("
        "document.createElement('i'), {className: 'server-drawn'})));"
    )
    wait(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, ".server-drawn"), 10)

    def verdict_text(upload: Upload) -> str:
        return browser.find_element(By.CSS_SELECTOR, f'[data-verdict-for="{upload.pk}"]').text

    assert "The classifier is busy or paused" in verdict_text(waiting)
    assert verdict_text(just_sent) == "Pending…"


# What a verdict bar says on hover of its band and mark (its SVG title), read from the element passed.
BAR_LEGEND = "return arguments[0].querySelector('svg.bar title').textContent"


def judged_while_the_upload_page_waits(
    browser: Chrome, live_server: LiveServer, owner: User, *, name: str, probability: float, version: ModelVersion
) -> tuple[Upload, str]:
    """A pending upload of ``owner``'s on the upload page, which lists it pending and polls; its verdict (not a
    phone at ``probability``, by ``version``) is then written as a worker would write it. Returns the upload and
    its card's selector once the card shows the verdict."""
    from selenium.webdriver.common.by import By

    waiting = make_upload(owner, status=UploadStatus.PENDING, name=name, picture=draw_desk_with_phone())
    log_in(browser, live_server, owner)
    browser.get(f"{live_server.url}/")
    card = f"#results .verdict[data-verdict-for='{waiting.pk}']"
    assert browser.find_element(By.CSS_SELECTOR, card).get_attribute("data-status") == "pending"
    Upload.objects.filter(pk=waiting.pk).update(
        status=UploadStatus.DONE, probability=probability, predicted_label="not_phone", model_version=version
    )
    wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, card).get_attribute("data-status") == "done", 30)
    return waiting, card


def test_probability_between_the_band_and_the_threshold_reads_unsure_on_every_page(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    from selenium.webdriver.common.by import By

    # 94.49% is "94" from the server, and 0.3265 a band edge Python's round() and JavaScript's Math.round took apart.
    band = [0.3265, 0.9449]
    strict = make_model_version_with_manifest("strict", threshold=0.93, unsure_band=band)
    waiting, card = judged_while_the_upload_page_waits(
        browser, live_server, alice, name="borderline.jpg", probability=0.85, version=strict
    )
    assert browser.find_element(By.CSS_SELECTOR, f"{card} .verdict-word").text == "Unsure — 85% chance of a phone"
    # The bar says on hover what its band and mark mean, in the same words on the live card and the pages.
    live_legend = browser.execute_script(BAR_LEGEND, browser.find_element(By.CSS_SELECTOR, card))
    # upload.js rounded the bar's 94.5 again and said "95".
    assert live_legend == "Phone above 94%, not a phone below 33%, unsure in between (the shaded band)"
    band_x = "return arguments[0].querySelector('svg.bar .bar-band').getAttribute('x')"
    live_band_x = browser.execute_script(band_x, browser.find_element(By.CSS_SELECTOR, card))
    for page in (f"/uploads/{waiting.pk}/", "/history/"):
        browser.get(f"{live_server.url}{page}")
        assert browser.find_element(By.CSS_SELECTOR, ".verdict .verdict-word").text == "Unsure — 85% chance of a phone"
        assert browser.execute_script(BAR_LEGEND, browser.find_element(By.CSS_SELECTOR, ".verdict")) == live_legend
        assert float(browser.execute_script(band_x, browser.find_element(By.CSS_SELECTOR, ".verdict"))) == float(
            live_band_x
        )
    # The bar marks the threshold at 93%.
    assert browser.find_element(By.CSS_SELECTOR, ".verdict .bar-threshold").get_attribute("x") == "93.0"


def test_a_live_card_says_a_band_ending_near_certainty_as_the_page_does(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """upload.js said "Phone above 100%" for our first retrain's band (to 0.9995), as the server did."""
    from selenium.webdriver.common.by import By

    band = [0.5814, 0.9995]
    first_retrain = make_model_version_with_manifest("retrain-first", threshold=0.5814, unsure_band=band)
    _, card = judged_while_the_upload_page_waits(
        browser, live_server, alice, name="retrained.jpg", probability=0.5813, version=first_retrain
    )

    live_legend = browser.execute_script(BAR_LEGEND, browser.find_element(By.CSS_SELECTOR, card))

    assert live_legend == "Phone above 99.95%, not a phone below 58%, unsure in between (the shaded band)"


def test_review_undo_and_duplicates_in_the_browser(
    live_server: LiveServer, browser: Chrome, alice: User, bob: User, reviewer: User
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    copies = [
        make_upload(owner, probability=0.5, sha256="b" * 64, name="same.jpg", picture=draw_desk_with_phone())
        for owner in (alice, bob, alice)
    ]
    other = make_upload(
        alice,
        probability=0.9,
        name="mug.jpg",
        picture=draw_red_mug(),
        boxes=[{"box": [0.3, 0.3, 0.7, 0.75], "score": 0.9}],
    )
    log_in(browser, live_server, reviewer)

    def current_id() -> int | None:
        shown = browser.execute_script("const r = document.getElementById('review'); return r && r.dataset.uploadId;")
        return int(shown) if shown else None

    browser.get(f"{live_server.url}/review/")
    assert current_id() == copies[0].pk
    assert "Sent 3 times" in browser.find_element(By.ID, "duplicates-note").text
    # Unsure: no confirm button; C does nothing but say so.
    assert not browser.find_elements(By.CSS_SELECTOR, "button[value=confirm]")
    browser.find_element(By.TAG_NAME, "body").send_keys("c")
    wait(browser, lambda b: "press P or N" in b.find_element(By.ID, "review-status").text, 5)
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    wait(browser, lambda b: current_id() == other.pk)
    assert {upload.reviewed_label for upload in Upload.objects.filter(sha256="b" * 64)} == {"not_phone"}
    assert len(browser.find_elements(By.CSS_SELECTOR, ".picture-stack svg.boxes rect.box")) == 1
    # Zoom: the picture at full resolution in a scrolling frame.
    browser.find_element(By.TAG_NAME, "body").send_keys("z")
    wait(browser, lambda b: "zoomed" in (b.find_element(By.ID, "zoom-frame").get_attribute("class") or ""), 5)
    width = browser.execute_script(
        "return document.querySelector('#zoom-frame img.picture').getBoundingClientRect().width"
    )
    assert round(width) == other.width
    screenshot(browser, "review-zoomed-boxes", width=DESKTOP)
    # Undo (Ctrl+Z) goes back to the grouped picture and clears all three labels.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.CONTROL, "z")
    wait(browser, lambda b: current_id() == copies[0].pk)
    assert {upload.reviewed_label for upload in Upload.objects.filter(sha256="b" * 64)} == {""}
    screenshot(browser, "review-phone-after-undo", width=PHONE)
    # Once the queue is empty, U still undoes the last decision (the empty page loaded no script before).
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    wait(browser, lambda b: current_id() == other.pk)
    browser.find_element(By.TAG_NAME, "body").send_keys("p")
    wait(browser, lambda b: b.find_elements(By.ID, "undo-button") and current_id() is None)
    assert Upload.objects.get(pk=other.pk).reviewed_label == "phone"
    browser.find_element(By.TAG_NAME, "body").send_keys("u")
    wait(browser, lambda b: current_id() == other.pk)
    assert Upload.objects.get(pk=other.pk).reviewed_label == ""


def test_token_page_gives_a_key_that_works_from_curl(live_server: LiveServer, browser: Chrome, alice: User) -> None:
    from selenium.webdriver.common.by import By

    make_upload(alice, probability=0.97, name="from-curl.jpg")
    open_logged_in(browser, live_server, alice, "/account/api-token/")
    browser.find_element(By.ID, "token-password").send_keys("alice-password-1")
    browser.find_element(By.ID, "regenerate-token").click()
    key = wait(browser, lambda b: b.find_element(By.ID, "api-token").get_attribute("value"), 10)
    assert key and key in browser.find_element(By.ID, "curl-example").text
    screenshot(browser, "api-token", width=DESKTOP)
    # On a phone the whole key fits in its field (it was cut off, to be scrolled blind while copying it).
    browser.set_window_size(PHONE, 900)
    field = browser.find_element(By.ID, "api-token")
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", field)
    browser.set_window_size(DESKTOP, 900)
    # A reload reads the page again: it no longer sends the form, which made a new key and stopped this one.
    browser.refresh()
    assert key not in browser.page_source and key[:6] in browser.find_element(By.ID, "token-prefix").text
    answer = subprocess.run(
        ["curl", "-s", "-H", f"Authorization: Token {key}", f"{live_server.url}/api/uploads/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    [result] = json.loads(answer.stdout)["results"]
    assert (result["original_name"], result["verdict"]) == ("from-curl.jpg", "phone")
    # Leaving the page: the key is not shown again.
    browser.get(f"{live_server.url}/account/api-token/")
    assert key not in browser.page_source and key[:6] in browser.find_element(By.ID, "token-prefix").text
    # Revoking asks once more, then stops the key.
    browser.find_element(By.ID, "revoke-token").click()
    wait(browser, lambda b: b.find_element(By.ID, "confirm-revoke"), 10).click()
    assert (
        "Your API token was revoked." in wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".messages"), 10).text
    )
    assert browser.find_element(By.ID, "no-token")


def test_swagger_ui_renders_from_local_files_only(live_server: LiveServer, browser: Chrome, alice: User) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/api/docs/")
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")) >= 3, 30)
    assert "/api/uploads/" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    hosts = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => new URL(entry.name).host)"
    )
    assert set(hosts) <= {live_server.url.split("//")[1]}, hosts
    screenshot(browser, "api-docs", width=DESKTOP, max_height=1400)


def test_the_browsable_api_uploads_several_pictures_from_its_form(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    """DRF drew only a raw text box for the upload (no file picker); its page also refused its own inline style
    under the site's CSP and was 980 px wide on a phone."""
    from selenium.webdriver.common.by import By

    pictures = save_pictures(tmp_path)
    log_in(browser, live_server, alice)
    browser.set_window_size(PHONE, 900)
    browser.get(f"{live_server.url}/api/uploads/")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE
    assert not [entry for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]

    browser.find_element(By.ID, "api-pictures").send_keys("\n".join(str(picture) for picture in pictures))
    browser.find_element(By.CSS_SELECTOR, "#post-object-form form button").click()

    wait(browser, lambda b: "HTTP 201 Created" in b.find_element(By.CLASS_NAME, "response-info").text, 30)
    sent = sorted(Upload.objects.filter(owner=alice).values_list("original_name", flat=True))
    assert sent == ["phone-on-desk.jpg", "red-mug.jpg"]


def test_redoc_renders_from_local_files_only(live_server: LiveServer, browser: Chrome) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/api/redoc/")
    wait(browser, lambda b: "/api/uploads/" in b.find_element(By.TAG_NAME, "body").text, 30)
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter((entry) => entry.responseStatus !== 0).map((entry) => new URL(entry.name).host)"
    )
    assert set(fetched) <= {live_server.url.split("//")[1]}, fetched
    # ReDoc's own styles pass its page's policy; only its logo from cdn.redoc.ly is refused (never fetched).
    refused = [
        entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]
    ]
    assert all("cdn.redoc.ly" in message for message in refused), refused
    screenshot(browser, "api-redoc", width=DESKTOP, max_height=1400)


def test_a_failed_upload_is_tried_again_from_its_page(live_server: LiveServer, browser: Chrome, alice: User) -> None:
    from selenium.webdriver.common.by import By

    upload = make_upload(alice, name="desk.jpg", status=UploadStatus.PENDING)
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.FAILED, error="The model is unavailable, so this picture could not be classified."
    )
    open_logged_in(browser, live_server, alice)
    browser.get(f"{live_server.url}/uploads/{upload.pk}/")
    assert "Failed" in browser.find_element(By.CSS_SELECTOR, ".verdict").text

    browser.find_element(By.ID, "retry").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".verdict[data-status=done]"), VERDICT_TIMEOUT)

    assert "desk.jpg was classified again." in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.ID, "retry")
    assert Upload.objects.get(pk=upload.pk).status == UploadStatus.DONE


def test_chosen_files_are_previewed_with_names_and_sizes_before_upload(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    phone_path, mug_path = save_pictures(tmp_path)
    broken = tmp_path / "iphone.heic"
    broken.write_bytes(b"not drawable by a browser")
    open_logged_in(browser, live_server, alice)
    browser.find_element(By.ID, "id_image").send_keys(f"{phone_path}\n{mug_path}\n{broken}")
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#chosen .chosen-file")) == 3, 5)
    names = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#chosen .chosen-file")]
    # Sizes read as the history shows them after a reload (Django's filesizeformat), a tiny file in bytes.
    from django.template.defaultfilters import filesizeformat

    for path in (phone_path, broken):
        shown = filesizeformat(path.stat().st_size).replace("\xa0", " ")
        assert any(path.name in name and shown in name for name in names), (shown, names)
    assert "3 pictures chosen" in browser.find_element(By.ID, "chosen-summary").text
    # "press Upload to send": the button is right under that line, not after every preview.
    button = browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]")
    first_preview = browser.find_element(By.CSS_SELECTOR, "#chosen .chosen-file")
    assert button.rect["y"] < first_preview.rect["y"]
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#chosen .no-preview"), 5)  # the undrawable one
    assert not Upload.objects.exists()  # nothing sent until Upload is pressed
    screenshot(browser, "upload-chosen", width=DESKTOP)


def test_history_csv_exports_the_filtered_rows(live_server: LiveServer, browser: Chrome, alice: User) -> None:
    from selenium.webdriver.common.by import By

    make_upload(alice, probability=0.97, name="desk-phone.jpg")
    make_upload(alice, probability=0.5, name="desk-blur.jpg")
    make_upload(alice, probability=0.02, name="mug.jpg")
    open_logged_in(browser, live_server, alice, "/history/")
    browser.find_element(By.NAME, "q").send_keys("desk")
    browser.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()
    wait(browser, lambda b: "q=desk" in b.current_url, 10)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".history-grid .card")) == 2
    href = browser.find_element(By.ID, "export-csv").get_attribute("href")
    body = browser.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then((r) => r.text()).then(done);", href
    )
    lines = body.strip().splitlines()
    assert lines[0].startswith("id,original_name,created,status,verdict,probability")
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["desk-blur.jpg", "desk-phone.jpg"]
    screenshot(browser, "history-filtered", width=DESKTOP)


def test_upload_pressed_with_nothing_chosen_says_so_in_words(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """The hidden file input was ``required``: marked invalid before anything was done, and its browser bubble
    covered the Choose button."""
    from selenium.webdriver.common.by import By

    open_logged_in(browser, live_server, alice)
    assert browser.find_element(By.ID, "id_image").get_attribute("required") is None

    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()

    said = wait(browser, lambda b: b.find_element(By.ID, "chosen-summary").text, 5)
    assert said == "No picture chosen yet: choose one or more pictures, then press Upload."
    assert not Upload.objects.exists()


def test_upload_looks_ready_only_once_pictures_are_chosen_and_pressed_before_leads_to_the_chooser(
    live_server: LiveServer, browser: Chrome, alice: User, tmp_path: Path
) -> None:
    """Upload was offered enabled and in full colour before anything was chosen: pressed, it only then said to
    choose, and left the keyboard on the button."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    phone_path, mug_path = save_pictures(tmp_path)
    open_logged_in(browser, live_server, alice)
    button = browser.find_element(By.ID, "upload-button")
    wait(browser, lambda b: button.get_attribute("aria-disabled") == "true", 5)
    assert float(button.value_of_css_property("opacity")) < 1  # looks not ready yet
    assert button.text == "Upload"

    button.send_keys(Keys.ENTER)  # still reachable and pressable: it says what to do and goes to the chooser
    said = wait(browser, lambda b: b.find_element(By.ID, "chosen-summary").text, 5)
    assert said == "No picture chosen yet: choose one or more pictures, then press Upload."
    assert browser.execute_script("return document.activeElement.id") == "id_image"

    browser.find_element(By.ID, "id_image").send_keys(f"{phone_path}\n{mug_path}")
    wait(browser, lambda b: button.get_attribute("aria-disabled") is None, 5)
    assert button.text == "Upload 2 pictures" and float(button.value_of_css_property("opacity")) == 1
    button.click()
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#results .result")) == 2, 10)
    wait(browser, lambda b: button.get_attribute("aria-disabled") == "true" and button.text == "Upload", 5)
    wait(browser, lambda b: Upload.objects.filter(owner=alice).count() == 2, VERDICT_TIMEOUT)


def test_on_a_phone_the_history_filters_fold_while_none_is_set(
    live_server: LiveServer, browser: Chrome, alice: User
) -> None:
    """Seven filters filled a phone's first screen before any picture."""
    from selenium.webdriver.common.by import By

    make_upload(alice, probability=0.97, name="desk-phone.jpg")
    open_logged_in(browser, live_server, alice)
    browser.set_window_size(PHONE, 800)
    try:
        browser.get(f"{live_server.url}/history/")
        panel = browser.find_element(By.ID, "filters-panel")
        wait(browser, lambda b: panel.get_attribute("open") is None, 5)
        first_card = browser.find_element(By.CSS_SELECTOR, ".history-grid .card")
        assert first_card.rect["y"] < browser.execute_script("return window.innerHeight")
        assert browser.find_element(By.ID, "export-csv").is_displayed()  # not folded away with the filters

        browser.get(f"{live_server.url}/history/?q=desk")  # a filter set: kept in view
        assert browser.find_element(By.ID, "filters-panel").get_attribute("open") is not None
    finally:
        browser.set_window_size(DESKTOP, 900)
    browser.get(f"{live_server.url}/history/")  # and on a wide screen, open as ever
    assert browser.find_element(By.ID, "filters-panel").get_attribute("open") is not None
