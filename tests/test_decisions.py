"""Verdicts judged by each model version's own threshold and unsure band: the word never contradicts the number."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload, UploadStatus
from phoneapp.selectors.decisions import model_version_decision_rule, upload_display_state
from tests.factories import make_model_version_with_manifest, make_upload

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


pytestmark = pytest.mark.django_db


def shown_verdict(client: Client, upload_id: int) -> str:
    page = client.get(f"/uploads/{upload_id}/").content.decode()
    match = re.search(r'<span class="verdict-word">((?:[^<]|<span[^>]*>[^<]*</span>)*)</span>', page)
    assert match, page
    return re.sub(r"<[^>]+>", "", match.group(1))  # the word and its chance, as a reader sees them


def test_probability_between_the_old_band_and_the_threshold_reads_unsure_not_a_confident_no(
    alice: User, alice_client: Client
) -> None:
    make_model_version_with_manifest("strict", threshold=0.93)
    upload = make_upload(alice, probability=0.85, threshold=0.93, version="strict")
    assert shown_verdict(alice_client, upload.pk) == "Unsure — 85% chance of a phone"
    api = alice_client.get(f"/api/uploads/{upload.pk}/").json()
    assert (api["verdict"], api["threshold"]) == ("unsure", 0.93)
    assert api["unsure_band"][0] < 0.85 < api["unsure_band"][1]
    # The bar's band and threshold mark, put in words on hover (log-odds ±1 around 0.93: 83%-97%).
    page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert "<title>Phone above 97%, not a phone below 83%, unsure in between (the shaded band)</title>" in page


def test_a_band_ending_near_certainty_is_not_said_to_end_at_100_percent(alice: User, alice_client: Client) -> None:
    """Our first retrain's candidate (band 0.5814-0.9995) had its uploads' bars say "Phone above 100%": a version
    that could never say phone, where it does above 99.95%."""
    make_model_version_with_manifest("retrain-first", threshold=0.5814, unsure_band=[0.5814, 0.9995])
    upload = make_upload(alice, probability=0.5813, threshold=0.5814, version="retrain-first")

    page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()

    assert "<title>Phone above 99.95%, not a phone below 58%, unsure in between (the shaded band)</title>" in page


def test_a_picture_scored_at_the_threshold_is_never_shown_as_not_a_phone(alice: User, alice_client: Client) -> None:
    make_model_version_with_manifest("strict", threshold=0.93)
    at_threshold = make_upload(alice, probability=0.93, threshold=0.93, version="strict")
    clear = make_upload(alice, probability=0.995, threshold=0.93, version="strict")
    low = make_upload(alice, probability=0.4, threshold=0.93, version="strict")
    assert shown_verdict(alice_client, at_threshold.pk).startswith("Unsure")
    assert shown_verdict(alice_client, clear.pk) == "Phone — over 99% chance of a phone"
    assert shown_verdict(alice_client, low.pk) == "Not a phone — 40% chance of a phone"


def test_the_ends_of_the_scale_are_not_said_as_certainties(alice: User, alice_client: Client) -> None:
    """0.996 was shown as "100% chance of a phone": no model is certain, and the number is meant to be a chance."""
    for probability, said in (
        (0.996, "Phone — over 99% chance of a phone"),
        (0.994, "Phone — 99% chance of a phone"),
        (1.0, "Phone — over 99% chance of a phone"),
        (0.006, "Not a phone — 1% chance of a phone"),
        (0.004, "Not a phone — under 1% chance of a phone"),
        (0.0, "Not a phone — under 1% chance of a phone"),
    ):
        upload = make_upload(alice, probability=probability, threshold=0.5)
        assert shown_verdict(alice_client, upload.pk) == said, probability


def test_manifest_unsure_band_is_used_as_written(alice: User, alice_client: Client) -> None:
    version = make_model_version_with_manifest("banded", threshold=0.8, unsure_band=[0.6, 0.9])
    rule = model_version_decision_rule(version=version)
    assert (rule.threshold, rule.unsure_low, rule.unsure_high, rule.source) == (0.8, 0.6, 0.9, "manifest")
    inside = make_upload(alice, probability=0.62, threshold=0.8, version="banded")
    outside = make_upload(alice, probability=0.55, threshold=0.8, version="banded")
    assert shown_verdict(alice_client, inside.pk).startswith("Unsure")
    assert shown_verdict(alice_client, outside.pk).startswith("Not a phone")


def test_band_derived_from_the_threshold_when_the_manifest_has_none() -> None:
    rule = model_version_decision_rule(version=make_model_version_with_manifest("plain", threshold=0.5))
    assert rule.source == "derived"
    assert rule.unsure_low == pytest.approx(0.269, abs=0.001) and rule.unsure_high == pytest.approx(0.731, abs=0.001)
    strict = model_version_decision_rule(version=make_model_version_with_manifest("strict", threshold=0.93))
    assert strict.unsure_low < 0.93 < strict.unsure_high


def test_override_setting_still_contains_the_threshold(settings: SettingsFixture) -> None:
    settings.UNSURE_BAND = (0.3, 0.7)
    rule = model_version_decision_rule(version=make_model_version_with_manifest("strict", threshold=0.93))
    assert (rule.unsure_low, rule.unsure_high, rule.source) == (0.3, 0.93, "setting")


def test_each_upload_is_judged_by_the_version_that_produced_it(alice: User, alice_client: Client) -> None:
    make_model_version_with_manifest("strict", threshold=0.93)
    make_model_version_with_manifest("lenient", threshold=0.5)
    by_strict = make_upload(alice, probability=0.85, threshold=0.93, version="strict")
    by_lenient = make_upload(alice, probability=0.85, threshold=0.5, version="lenient")
    assert shown_verdict(alice_client, by_strict.pk).startswith("Unsure")
    assert shown_verdict(alice_client, by_lenient.pk) == "Phone — 85% chance of a phone"


def test_missing_manifest_falls_back_to_the_default_threshold_without_error(alice: User, alice_client: Client) -> None:
    upload = make_upload(alice, probability=0.99, version="folder-removed")
    assert shown_verdict(alice_client, upload.pk) == "Phone — 99% chance of a phone"


def test_review_queue_puts_the_band_first_closest_to_the_threshold(alice: User, reviewer: User) -> None:
    make_model_version_with_manifest("strict", threshold=0.93)
    near = make_upload(alice, probability=0.9, threshold=0.93, version="strict")
    coin_flip = make_upload(alice, probability=0.5, threshold=0.93, version="strict")
    sure_yes = make_upload(alice, probability=0.999, threshold=0.93, version="strict")
    client = Client()
    client.force_login(reviewer)
    seen = []
    url = client.get("/review/")["Location"]
    while url:
        page = client.get(url)
        seen.append(page.context["upload"].pk)
        url = f"/review/{page.context['place'].next_id}/" if page.context["place"].next_id else ""
    # |p - 0.5| would have put the coin flip first; against a 0.93 threshold, 0.9 is the borderline case.
    assert seen == [near.pk, coin_flip.pk, sure_yes.pk]


def test_admin_low_confidence_filter_uses_each_versions_band(alice: User, reviewer: User) -> None:
    make_model_version_with_manifest("strict", threshold=0.93)
    make_upload(alice, probability=0.85, threshold=0.93, version="strict", name="borderline.jpg")
    make_upload(alice, probability=0.5, threshold=0.93, version="strict", name="clear-no.jpg")
    client = Client()
    client.force_login(reviewer)
    page = client.get("/admin/phoneapp/upload/?confidence=unsure").content.decode()
    assert "borderline.jpg" in page and "clear-no.jpg" not in page


def test_dashboard_histogram_marks_the_active_models_threshold(reviewer: User, alice: User) -> None:
    from phoneapp.services.model_versions import model_version_activate

    model_version_activate(version=make_model_version_with_manifest("strict", threshold=0.93))
    make_upload(alice, probability=0.85, threshold=0.93, version="strict")
    client = Client()
    client.force_login(reviewer)
    page = client.get("/dashboard/").content.decode()
    histogram = page[page.index('id="chart-histogram"') :]
    histogram = histogram[: histogram.index("</svg>")]
    assert "threshold 0.93" in histogram and 'class="chart-marker"' in histogram
    assert ">1.0</text>" in histogram  # the axis reaches 1
    assert '<span class="kpi-value">1</span> unsure' in page


def test_the_database_verdict_agrees_with_the_page_word_for_every_version_and_status(alice: User) -> None:
    """``Upload.objects.with_verdict()`` (history filters, admin, dashboard) is the same rule as the page's word."""
    make_model_version_with_manifest("strict", threshold=0.93)
    make_model_version_with_manifest("banded", threshold=0.8, unsure_band=[0.6, 0.9])
    for version, threshold in (("strict", 0.93), ("banded", 0.8), ("folder-removed", 0.5)):
        for probability in (0.0, 0.02, 0.3, 0.55, 0.62, 0.8, 0.85, 0.93, 0.95, 0.995, 1.0):
            make_upload(alice, probability=probability, threshold=threshold, version=version)
    for status in (UploadStatus.PENDING, UploadStatus.PROCESSING, UploadStatus.FAILED):
        make_upload(alice, status=status)
    rows = list(Upload.objects.with_verdict())
    # with_verdict() annotates ``verdict``: a column the model's type does not declare
    verdicts = [getattr(row, "verdict") for row in rows]  # noqa: B009
    assert set(verdicts) == {"phone", "not_phone", "unsure", "pending", "processing", "failed"}
    assert verdicts == [upload_display_state(upload=row) for row in rows]
    unsure = {row.pk for row, verdict in zip(rows, verdicts, strict=True) if verdict == "unsure"}
    assert set(Upload.objects.unsure().values_list("pk", flat=True)) == unsure
    confident = {row.pk for row, verdict in zip(rows, verdicts, strict=True) if verdict in ("phone", "not_phone")}
    assert set(Upload.objects.confident().values_list("pk", flat=True)) == confident


def test_only_a_classified_upload_with_a_probability_has_a_verdict(alice: User) -> None:
    from phoneapp.selectors.decisions import upload_has_verdict, upload_verdict

    judged = make_upload(alice, probability=0.9)
    waiting = make_upload(alice, status=UploadStatus.PENDING)
    failed = make_upload(alice, status=UploadStatus.FAILED)

    assert upload_has_verdict(upload=judged) and upload_verdict(upload=judged) is not None
    for upload in (waiting, failed):
        assert not upload_has_verdict(upload=upload) and upload_verdict(upload=upload) is None
