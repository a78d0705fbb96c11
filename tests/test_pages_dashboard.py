"""The staff dashboard: the numbers behind each chart, the charts themselves, and who may see them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from phoneapp import charts
from phoneapp.models import UploadStatus
from phoneapp.selectors.dashboard import (
    confusion_matrix,
    probability_histogram,
    reviewed_accuracy_by_model,
    reviewer_counts,
    uploads_per_day,
    verdict_split,
)
from tests.factories import make_upload, make_user

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(reviewer: User) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def test_uploads_per_day_counts_each_day_and_fills_quiet_days_with_zero(alice: User) -> None:
    today = timezone.localdate()
    now = timezone.now()
    make_upload(alice, created=now)
    make_upload(alice, created=now)
    make_upload(alice, created=now - timedelta(days=2))
    make_upload(alice, created=now - timedelta(days=40))  # outside the window
    days = uploads_per_day(days=7, today=today)
    assert [day.day for day in days] == [today - timedelta(days=offset) for offset in range(6, -1, -1)]
    assert [day.count for day in days] == [0, 0, 0, 0, 1, 0, 2]


def test_verdict_split_separates_unsure_from_confident_verdicts(alice: User, settings: SettingsFixture) -> None:
    settings.UNSURE_BAND = (0.3, 0.7)
    for probability in (0.95, 0.8, 0.1, 0.5, 0.69):
        make_upload(alice, probability=probability)
    make_upload(alice, status=UploadStatus.PENDING)
    make_upload(alice, status=UploadStatus.FAILED)
    split = verdict_split()
    assert (split.phone, split.not_phone, split.unsure, split.waiting, split.failed) == (2, 1, 2, 1, 1)


def test_reviewed_accuracy_and_confusion_matrix_per_model_version(alice: User, reviewer: User) -> None:
    # model-a: right twice (phone, not phone), wrong once (said phone, was not).
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.1, reviewed="not_phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.8, reviewed="not_phone", reviewer=reviewer, version="model-a")
    # model-b: wrong once (missed a phone); one unreviewed upload does not count.
    make_upload(alice, probability=0.2, reviewed="phone", reviewer=reviewer, version="model-b")
    make_upload(alice, probability=0.2, version="model-b")
    accuracy = {row.model_version: (row.reviewed, row.correct) for row in reviewed_accuracy_by_model()}
    assert accuracy == {"model-a": (3, 2), "model-b": (1, 0)}
    everything = confusion_matrix()
    assert everything.count("phone", "phone") == 1
    assert everything.count("not_phone", "phone") == 1
    assert everything.count("not_phone", "not_phone") == 1
    assert everything.count("phone", "not_phone") == 1
    assert confusion_matrix(model_version="model-b").counts == {("phone", "not_phone"): 1}


def test_an_unsure_verdict_has_its_own_column_not_the_side_of_the_threshold_it_fell_on(
    staff_client: Client, alice: User, reviewer: User, settings: SettingsFixture
) -> None:
    """The pages told the user "unsure" for these; the matrix counted them as confident right or wrong verdicts."""
    settings.UNSURE_BAND = (0.3, 0.7)
    make_upload(alice, probability=0.65, reviewed="phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.6, reviewed="not_phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="model-a")

    assert confusion_matrix().counts == {("phone", "unsure"): 1, ("not_phone", "unsure"): 1, ("phone", "phone"): 1}
    chart = staff_client.get("/dashboard/").content.decode().split('id="chart-confusion"', 1)[1].split("</svg>")[0]
    assert ">Unsure</text>" in chart
    assert f'fill="{charts.UNSURE}"' in chart
    numbers = staff_client.get("/dashboard/").content.decode().split('id="h-confusion"', 1)[1].split("</section>")[0]
    assert '<th scope="row">Phone</th><td>1</td><td>1</td><td>0</td>' in numbers
    assert '<th scope="row">Not a phone</th><td>0</td><td>1</td><td>0</td>' in numbers


def test_reviewed_accuracy_counts_an_unsure_verdict_as_unsure_not_as_the_side_it_fell_on(
    staff_client: Client, alice: User, reviewer: User, settings: SettingsFixture
) -> None:
    """Our first retrain's dashboard said scene-lite0-v10 was right on 79 of 80 reviewed pictures (99%) beside a
    confusion matrix in which 9 of them were unsure: the accuracy read the label behind the unsure verdict."""
    settings.UNSURE_BAND = (0.3, 0.7)
    # Unsure, on the phone side of the threshold: the reviewer says phone, but the pages said "Unsure".
    make_upload(alice, probability=0.6, reviewed="phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="model-a")

    [row] = reviewed_accuracy_by_model()

    assert (row.reviewed, row.correct) == (2, 1)
    assert row.unsure == 1
    chart = staff_client.get("/dashboard/").content.decode().split('id="chart-accuracy"', 1)[1].split("</svg>")[0]
    assert "model-a (1 unsure)" in chart and "50% of 2" in chart


def test_a_picture_sent_many_times_is_one_review_and_unsettled_labels_are_not_yet_truth(
    alice: User, reviewer: User
) -> None:
    """One decision on a calculator sent 26 times showed as 26 reviews, 27 in one cell of the confusion matrix and
    the model's accuracy at 4%; and a label waiting for a second reviewer counted as the truth."""
    from phoneapp.models import SecondReview, Upload

    for _ in range(26):
        make_upload(alice, probability=0.1, sha256="c" * 64, reviewed="phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="model-a")
    waiting = make_upload(alice, probability=0.95, reviewed="not_phone", reviewer=reviewer, version="model-a")
    Upload.objects.filter(pk=waiting.pk).update(second_review=SecondReview.WAITING)

    assert {row.model_version: (row.reviewed, row.correct) for row in reviewed_accuracy_by_model()} == {
        "model-a": (2, 1)
    }
    assert confusion_matrix().counts == {("phone", "not_phone"): 1, ("phone", "phone"): 1}
    [counted] = reviewer_counts()
    assert (counted.reviewer, counted.total) == ("rita", 3)  # the reviewer's three decisions, one still waiting


def test_probability_histogram_puts_each_done_upload_in_its_bin(alice: User) -> None:
    for probability in (0.0, 0.04, 0.05, 0.5, 0.999, 1.0):
        make_upload(alice, probability=probability)
    make_upload(alice, status=UploadStatus.PENDING)
    counts = probability_histogram(bins=20)
    assert sum(counts) == 6
    assert counts[0] == 2 and counts[1] == 1 and counts[10] == 1 and counts[19] == 2


def test_dashboard_draws_every_chart_as_inline_svg(staff_client: Client, alice: User, reviewer: User) -> None:
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="zero-shot-v1")
    make_upload(alice, probability=0.6)
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    for chart_id in ("chart-per-day", "chart-split", "chart-histogram", "chart-accuracy", "chart-confusion"):
        assert f'<svg class="chart" id="{chart_id}"' in page, chart_id
    assert "100% of 1" in page  # accuracy bar caption of zero-shot-v1
    assert "Unsure: 1 (50%)" in page
    assert "<script" not in page.split("<main", 1)[1].split("</main>", 1)[0]


def test_an_empty_chart_says_so_in_its_name_which_is_all_a_screen_reader_hears_of_it(staff_client: Client) -> None:
    """role="img" hides the words drawn inside a chart ("Nothing reviewed yet"), and the page shows no table of
    numbers for an empty accuracy chart or confusion matrix: a screen reader heard only "Reviewed accuracy per model
    version, image"."""
    page = staff_client.get("/dashboard/").content.decode()
    titles = dict(re.findall(r'<title id="(chart-[a-z-]+)-title">([^<]*)</title>', page))
    assert titles["chart-accuracy"] == "Reviewed accuracy per model version: nothing reviewed yet"
    assert titles["chart-confusion"] == "Confusion matrix of reviewed uploads: nothing reviewed yet"
    assert titles["chart-split"] == "Verdict split of all uploads: no uploads yet"


def test_dashboard_filters_the_confusion_matrix_by_model_version(
    staff_client: Client, alice: User, reviewer: User
) -> None:
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="model-a")
    make_upload(alice, probability=0.9, reviewed="not_phone", reviewer=reviewer, version="model-b")
    assert staff_client.get("/dashboard/?model=model-b").context["data"].confusion.total == 1
    assert staff_client.get("/dashboard/?model=no-such-model").context["data"].confusion.total == 2


def test_chart_text_is_escaped(staff_client: Client, alice: User, reviewer: User) -> None:
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="<img src=x onerror=alert(1)>")
    page = staff_client.get("/dashboard/").content.decode()
    assert "<img src=x" not in page
    assert "&lt;img src=x" in page


def test_dashboard_is_for_staff_only(alice_client: Client) -> None:
    response = alice_client.get("/dashboard/")
    # The app's own "not open to you" page, not the admin's login form.
    assert response.status_code == 403
    assert "This page is not open to you" in response.content.decode()


def test_column_chart_scales_bars_to_a_round_maximum() -> None:
    svg = charts.column_chart(["a", "b"], [3, 6], title="t", chart_id="c", height=200)
    # Axis top is 10 (the round number above 6): the bars are 30% and 60% of the 160 px plot.
    assert 'height="48.0"' in svg and 'height="96.0"' in svg
    assert ">10</text>" in svg


def test_dashboard_counts_reviews_per_reviewer(staff_client: Client, alice: User, reviewer: User) -> None:
    other = make_user("omar", staff=True)
    for _ in range(3):
        make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer)
    make_upload(alice, probability=0.1, reviewed="not_phone", reviewer=other)
    make_upload(alice, probability=0.5)
    page = staff_client.get("/dashboard/").content.decode()
    table = page[page.index('<table class="reviewers">') :]
    assert "<tr><td>rita</td><td>3</td><td>3</td></tr>" in table
    assert "<tr><td>omar</td><td>1</td><td>1</td></tr>" in table
    assert table.index("rita") < table.index("omar")


# A column chart's bars (x, width, label) and its labelled ticks (tick x, text x, text anchor, label).
BAR = re.compile(
    r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="[^"]+" rx="1.5"><title>([^<:]+):'
)
TICK_AND_LABEL = re.compile(
    r'<line x1="([\d.]+)" x2="[\d.]+" y1="[\d.]+" y2="[\d.]+" stroke="[^"]+"/>'
    r'<text x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)" fill="[^"]+" font-size="12">([^<]+)</text>'
)


def test_each_day_label_is_ticked_under_its_own_days_bar_and_today_is_labelled(
    staff_client: Client, alice: User
) -> None:
    """The old chart labelled every 7th bar from the oldest, so the last label ("30 Nov") sat beside today's
    ("1 Dec") bar and read as its label. Now labels count from today, each with a tick under its own bar."""
    now = timezone.now()
    for days_ago in (0, 0, 3, 7):
        make_upload(alice, created=now - timedelta(days=days_ago))
    svg = staff_client.get("/dashboard/").context["charts"]["per_day"]
    bars = {label: (float(x), float(x) + float(width)) for x, width, label in BAR.findall(svg)}
    days = list(bars)
    assert len(days) == 30 and days[-1] == timezone.localdate().strftime("%d %b")
    labelled = TICK_AND_LABEL.findall(svg)
    assert [label for *_, label in labelled] == days[::-1][::7][::-1]  # today and every 7th day before it
    slot = bars[days[1]][0] - bars[days[0]][0]
    for tick_x, text_x, anchor, label in labelled:
        left, right = bars[label]
        assert left < float(tick_x) < right, (label, tick_x, bars[label])
        # Centred on its bar, or (today's, at the right end) ending at its bar's slot: never past the chart.
        assert anchor == ("end" if label == days[-1] else "middle")
        assert left < float(text_x) <= right + slot / 2, (label, text_x)


def test_probability_histogram_axis_runs_from_0_to_1_with_labels_on_bin_edges(
    staff_client: Client, alice: User
) -> None:
    make_upload(alice, probability=0.99)
    svg = staff_client.get("/dashboard/").context["charts"]["histogram"]
    bars = [(float(x), float(width)) for x, width, _ in BAR.findall(svg)]
    assert len(bars) == 20
    slot = bars[1][0] - bars[0][0]
    first_edge = bars[0][0] - slot * 0.12  # bars are 76% of their bin, centred
    edges = {label: float(tick_x) for tick_x, _, _, label in TICK_AND_LABEL.findall(svg)}
    assert list(edges) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    for label, x in edges.items():
        assert x == pytest.approx(first_edge + float(label) * 20 * slot, abs=0.15), (label, x)


def test_a_version_without_settled_reviews_asked_for_says_the_matrix_shows_all(
    staff_client: Client, alice: User, reviewer: User
) -> None:
    """It silently showed every version's matrix under the name asked for."""
    make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer, version="zero-shot-v1")

    asked = staff_client.get("/dashboard/?model=scene-lite0-v9").content.decode()
    known = staff_client.get("/dashboard/?model=zero-shot-v1").content.decode()

    assert "No settled reviews of pictures scene-lite0-v9 judged: showing all versions." in asked
    assert 'id="model-ignored"' not in known


def test_the_waiting_tile_says_what_waits(staff_client: Client, alice: User) -> None:
    """ "0 waiting" sat beside "labels settled" while 2 reviews waited for a second reviewer: it counts uploads."""
    make_upload(alice, status=UploadStatus.PENDING)
    page = staff_client.get("/dashboard/").content.decode()
    assert '<span class="kpi-value">1</span> waiting to be classified' in page
