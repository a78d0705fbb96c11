"""Reviewers in the Django admin: staff only, filters that find what needs a look, bulk review actions."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.utils.html import strip_tags

from phoneapp.models import ModelVersion, SecondReview, Upload, UploadStatus, VersionScore
from phoneapp.selectors.review_queue import review_queue_first
from phoneapp.services.model_versions import model_version_active
from tests.factories import make_model_version_with_manifest, make_upload, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/phoneapp/upload/"


@pytest.fixture
def staff_client(reviewer: User) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def listed_names(client: Client, query: str = "") -> set[str]:
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    return {upload.original_name for upload in response.context["cl"].result_list}


def test_non_staff_user_cannot_reach_the_admin(alice_client: Client) -> None:
    response = alice_client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_anonymous_cannot_reach_the_admin(client: Client) -> None:
    assert client.get(CHANGELIST).status_code == 302


def test_filters_find_unsure_unreviewed_and_disagreements(staff_client: Client, alice: User) -> None:
    make_upload(
        alice,
        name="sure-phone.jpg",
        predicted_label="phone",
        probability=0.98,
        boxes=[{"box": [0.1, 0.1, 0.2, 0.3], "score": 0.35}],  # its place is a guess
    )
    make_upload(alice, name="unsure.jpg", predicted_label="not_phone", probability=0.45)
    make_upload(alice, name="disputed.jpg", predicted_label="phone", probability=0.9, reviewed="not_phone")
    make_upload(alice, name="agreed.jpg", predicted_label="not_phone", probability=0.02, reviewed="not_phone")

    assert listed_names(staff_client, "confidence=unsure") == {"unsure.jpg"}
    assert listed_names(staff_client, "confidence=place-unsure") == {"sure-phone.jpg"}
    assert listed_names(staff_client, "reviewed=no") == {"sure-phone.jpg", "unsure.jpg"}
    assert listed_names(staff_client, "agreement=disagree") == {"disputed.jpg"}
    assert listed_names(staff_client, "agreement=agree") == {"agreed.jpg"}
    assert listed_names(staff_client, "predicted_label__exact=phone") == {"sure-phone.jpg", "disputed.jpg"}
    version = ModelVersion.objects.get(name="model-a")  # the factory's default version
    assert len(listed_names(staff_client, f"model_version__id__exact={version.pk}")) == 4


def test_search_by_original_name_and_sha256(staff_client: Client, alice: User) -> None:
    upload = make_upload(alice, name="beach.jpg", predicted_label="not_phone", probability=0.1)
    make_upload(alice, name="office.jpg", predicted_label="phone", probability=0.9)
    assert listed_names(staff_client, "q=beach") == {"beach.jpg"}
    assert listed_names(staff_client, f"q={upload.sha256}") == {"beach.jpg"}


@pytest.mark.parametrize(
    ("action", "expected"),
    [("mark_as_phone", ["phone", "phone"]), ("mark_as_not_phone", ["not_phone", "not_phone"])],
)
def test_bulk_relabel_records_reviewer_and_time(
    staff_client: Client, reviewer: User, alice: User, action: str, expected: list[str]
) -> None:
    uploads = [
        make_upload(alice, name="a.jpg", predicted_label="phone", probability=0.8),
        make_upload(alice, name="b.jpg", predicted_label="not_phone", probability=0.3),
    ]
    response = staff_client.post(CHANGELIST, {"action": action, "_selected_action": [u.pk for u in uploads]})
    assert response.status_code == 302
    refreshed = list(Upload.objects.filter(pk__in=[u.pk for u in uploads]).order_by("original_name"))
    assert [u.reviewed_label for u in refreshed] == expected
    assert all(u.reviewed_by == reviewer and u.reviewed_at is not None for u in refreshed)


def test_confirm_model_verdict_copies_the_prediction(staff_client: Client, reviewer: User, alice: User) -> None:
    done = make_upload(alice, name="done.jpg", predicted_label="phone", probability=0.9)
    pending = make_upload(alice, name="pending.jpg", status=UploadStatus.PENDING)
    staff_client.post(CHANGELIST, {"action": "confirm_model_verdict", "_selected_action": [done.pk, pending.pk]})
    done.refresh_from_db()
    pending.refresh_from_db()
    assert (done.reviewed_label, done.reviewed_by) == ("phone", reviewer)
    assert pending.reviewed_label == ""  # nothing to confirm yet


def test_confirm_model_verdict_keeps_the_review_rules(staff_client: Client, reviewer: User, alice: User) -> None:
    """A bulk confirm is the queue's confirm: not on a verdict the model is unsure about, never over a review
    already made (two reviewers' agreement included), and other copies of the same picture get the label too."""
    unsure = make_upload(alice, name="unsure.jpg", probability=0.5)
    settled = make_upload(alice, name="settled.jpg", predicted_label="phone", probability=0.9, reviewed="not_phone")
    Upload.objects.filter(pk=settled.pk).update(second_review=SecondReview.AGREED, second_label="not_phone")
    sure = make_upload(alice, name="sure.jpg", predicted_label="phone", probability=0.95, sha256="same-picture")
    copy = make_upload(alice, name="copy.jpg", predicted_label="phone", probability=0.95, sha256="same-picture")

    response = staff_client.post(
        CHANGELIST,
        {"action": "confirm_model_verdict", "_selected_action": [unsure.pk, settled.pk, sure.pk]},
        follow=True,
    )

    reviewed = dict(Upload.objects.values_list("original_name", "reviewed_label"))
    assert reviewed == {"unsure.jpg": "", "settled.jpg": "not_phone", "sure.jpg": "phone", "copy.jpg": "phone"}
    assert Upload.objects.get(pk=settled.pk).second_review == SecondReview.AGREED
    assert Upload.objects.get(pk=copy.pk).reviewed_by == reviewer
    message = response.content.decode()
    assert "1 the model is unsure about" in message and "1 not classified yet or already reviewed" in message


def test_model_version_admin_shows_metrics_read_only(staff_client: Client) -> None:
    version = model_version_active()
    ModelVersion.objects.filter(pk=version.pk).update(metrics={"accuracy": 0.987})
    listing = staff_client.get("/admin/phoneapp/modelversion/").content.decode()
    assert "0.987" in listing
    change = staff_client.get(f"/admin/phoneapp/modelversion/{version.pk}/change/").content.decode()
    assert 'name="metrics"' not in change  # shown, not editable


def test_a_version_page_states_the_verdict_rule_the_pages_apply(staff_client: Client) -> None:
    """Our first retrain's candidate (threshold 0.5814, band to 0.9995) read "phone when P(phone) ≥ 0.581; unsure
    between 0.581 and 1.000": the pages call everything from 58% to 99.95% Unsure, and the band's top was rounded
    to 1, as if the version could never say "phone"."""
    version = make_model_version_with_manifest("retrain-first", threshold=0.5814, unsure_band=[0.5814, 0.9995])

    page = strip_tags(staff_client.get(f"/admin/phoneapp/modelversion/{version.pk}/change/").content.decode())

    assert "phone above 0.9995, not a phone below 0.5814, unsure from 0.5814 to 0.9995" in page
    assert "1.000" not in page


def _active_seen() -> dict[str, str]:
    """What the confirmation page sends back: the version active when it was shown."""
    return {"active_seen": str(model_version_active().pk)}


def test_activate_action_rolls_back_to_an_older_version(staff_client: Client) -> None:
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
    versions = list(ModelVersion.objects.order_by("name"))
    assert len(versions) >= 2, "the shipped models include at least two versions"
    inactive = next(version for version in versions if not version.is_active)

    response = staff_client.post(
        "/admin/phoneapp/modelversion/",
        {"action": "activate_version", "_selected_action": [inactive.pk], "post": "yes", **_active_seen()},
        follow=True,
    )

    assert response.redirect_chain[-1][1] == 302
    assert model_version_active() == inactive
    # The version's name as it is written (the admin capitalised a message that started with it: "Scene-lite0-v9").
    assert f"Activated {inactive.name}: workers switch" in response.content.decode()
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_activate_action_refuses_more_than_one_version(staff_client: Client) -> None:
    before = model_version_active()
    pks = list(ModelVersion.objects.values_list("pk", flat=True))
    staff_client.post("/admin/phoneapp/modelversion/", {"action": "activate_version", "_selected_action": pks})
    assert model_version_active() == before


@pytest.mark.writes_model_files  # rewrites a weights or manifest file in place
def test_activate_action_refuses_a_version_workers_could_not_load(staff_client: Client, settings) -> None:
    """Its files changed on disk: activating it would fail every upload after the retries; nothing changes."""
    from phoneapp.services.model_versions import model_dir_of, model_versions_sync_from_disk

    model_versions_sync_from_disk()
    before = model_version_active()
    broken = ModelVersion.objects.filter(is_active=False).order_by("name").first()
    assert broken is not None
    weights = next(path for path in model_dir_of(broken).iterdir() if path.name != "manifest.json")
    weights.write_bytes(weights.read_bytes()[:-1] + b"?")

    response = staff_client.post(
        "/admin/phoneapp/modelversion/",
        {"action": "activate_version", "_selected_action": [broken.pk], "post": "yes", **_active_seen()},
        follow=True,
    )

    assert model_version_active() == before
    assert f"Not activated: the files of {broken.name}" in response.content.decode()


def _scored(version: ModelVersion, picture_set: str, correct: int, count: int, digest: str) -> None:
    VersionScore.objects.create(
        version=version,
        picture_set=picture_set,
        count=count,
        correct=correct,
        accuracy=correct / count,
        pictures_digest=digest,
    )


def test_activating_a_version_worse_on_the_same_pictures_asks_first_saying_by_how_much(staff_client: Client) -> None:
    """A retrain candidate right on 7 of 10 ground-truth pictures against the active model's 10 of 10 was activated
    in one click: the action now shows both versions' scores on the same pictures and the retrain's decision, and
    activates only once confirmed."""
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
    active = model_version_active()
    candidate = ModelVersion.objects.filter(is_active=False).order_by("name").first()
    assert candidate is not None
    decision = "not promoted: too little ground truth to judge (it has 5 not_phone, 5 phone; ...)."
    ModelVersion.objects.filter(pk=candidate.pk).update(metrics={"decision": decision})
    _scored(candidate, "ground_truth", 7, 10, "a" * 64)
    _scored(active, "ground_truth", 10, 10, "a" * 64)
    _scored(candidate, "eval", 3, 4, "b" * 64)
    _scored(active, "eval", 4, 4, "b" * 64)
    _scored(active, "eval", 1, 4, "c" * 64)  # other pictures: not compared

    asked = staff_client.post(
        "/admin/phoneapp/modelversion/", {"action": "activate_version", "_selected_action": [candidate.pk]}
    )

    page = " ".join(asked.content.decode().split())
    assert asked.status_code == 200 and model_version_active() == active
    assert f"{candidate.name} is right on fewer of the same pictures than the active version, {active.name}." in page
    assert (
        f"Ground truth: {candidate.name} right on 7 of 10 pictures, the active version {active.name} on 10 of 10."
    ) in page
    assert f"Eval split: {candidate.name} right on 3 of 4 pictures, the active version {active.name} on 4 of 4." in page
    assert f"The retrain that registered it decided: {decision}" in page
    assert 'name="post" value="yes"' in page

    staff_client.post(
        "/admin/phoneapp/modelversion/",
        {"action": "activate_version", "_selected_action": [candidate.pk], "post": "yes", **_active_seen()},
    )
    assert model_version_active() == candidate


def test_a_confirmation_given_against_a_version_no_longer_active_asks_again(staff_client: Client) -> None:
    """The page compared the candidate with the version active when it was shown; another activated meanwhile,
    "Yes" activated the candidate over a version it was never compared with."""
    from phoneapp.services.model_versions import model_version_activate, model_versions_sync_from_disk

    model_versions_sync_from_disk()
    shown_against = _active_seen()
    candidate, other = ModelVersion.objects.filter(is_active=False).order_by("name")[:2]
    model_version_activate(version=other)

    answer = staff_client.post(
        "/admin/phoneapp/modelversion/",
        {"action": "activate_version", "_selected_action": [candidate.pk], "post": "yes", **shown_against},
    )

    assert answer.status_code == 200 and model_version_active() == other
    assert "The active version changed since the page you confirmed was shown" in answer.content.decode()


def test_activating_a_version_never_scored_with_the_active_one_says_nothing_comparable_is_known(
    staff_client: Client,
) -> None:
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
    active = model_version_active()
    other = ModelVersion.objects.filter(is_active=False).order_by("name").first()
    assert other is not None
    _scored(other, "ground_truth", 10, 10, "a" * 64)
    _scored(active, "ground_truth", 9, 12, "d" * 64)  # other pictures

    asked = staff_client.post(
        "/admin/phoneapp/modelversion/", {"action": "activate_version", "_selected_action": [other.pk]}
    )

    page = " ".join(asked.content.decode().split())
    assert f"Nothing comparable is known: {other.name} and the active version, {active.name}, were never scored" in page
    assert "right on fewer" not in page
    assert model_version_active() == active


def test_staff_with_view_permission_only_cannot_run_actions(alice: User) -> None:
    """Being allowed to read the registry and the uploads is not being allowed to switch the model or relabel."""
    from django.contrib.auth.models import Permission

    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
    viewer = make_user("vera", staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_modelversion", "view_upload"]))
    client = Client()
    client.force_login(viewer)
    before = model_version_active()
    inactive = ModelVersion.objects.filter(is_active=False).first()
    assert inactive is not None
    upload = make_upload(alice, name="a.jpg", predicted_label="phone", probability=0.8)

    assert client.get("/admin/phoneapp/modelversion/").status_code == 200  # they may look
    client.post("/admin/phoneapp/modelversion/", {"action": "activate_version", "_selected_action": [inactive.pk]})
    client.post(CHANGELIST, {"action": "mark_as_not_phone", "_selected_action": [upload.pk]})

    assert model_version_active() == before
    upload.refresh_from_db()
    assert upload.reviewed_label == ""


def test_retry_action_sends_failed_uploads_again_and_leaves_the_rest(
    staff_client: Client, alice: User, django_capture_on_commit_callbacks
) -> None:
    failed = make_upload(alice, name="failed.jpg", status=UploadStatus.PENDING)
    Upload.objects.filter(pk=failed.pk).update(status=UploadStatus.FAILED, error="The model is unavailable", attempts=3)
    done = make_upload(alice, name="done.jpg", predicted_label="phone", probability=0.9)
    done_before = Upload.objects.values().get(pk=done.pk)

    with django_capture_on_commit_callbacks(execute=True):  # no broker here: classified in this process
        response = staff_client.post(
            CHANGELIST, {"action": "retry_classification", "_selected_action": [failed.pk, done.pk]}, follow=True
        )

    failed.refresh_from_db()
    assert (failed.status, failed.error, failed.attempts) == (UploadStatus.DONE, "", 1)
    assert Upload.objects.values().get(pk=done.pk) == done_before
    assert "1 failed upload sent to be classified again" in response.content.decode()


def test_upload_list_searches_by_owner_and_has_a_date_drilldown(staff_client: Client, alice: User, bob: User) -> None:
    make_upload(alice, name="alices.jpg", predicted_label="phone", probability=0.9)
    make_upload(bob, name="bobs.jpg", predicted_label="phone", probability=0.9)
    assert listed_names(staff_client, "q=bob") == {"bobs.jpg"}
    page = staff_client.get(CHANGELIST).content.decode()
    assert "created__year=" in page  # the date drill-down


def test_upload_change_page_shows_the_full_picture_with_boxes_and_a_review_link(
    staff_client: Client, alice: User
) -> None:
    upload = make_upload(alice, probability=0.97, boxes=[{"box": [0.1, 0.2, 0.5, 0.9], "score": 0.97}])
    page = staff_client.get(f"/admin/phoneapp/upload/{upload.pk}/change/").content.decode()
    assert f'src="/uploads/{upload.pk}/image"' in page
    assert '<rect class="box" x="10.0" y="20.0" width="40.0" height="70.0"' in page
    assert f'href="/review/{upload.pk}/"' in page


def test_upload_change_page_says_a_picture_gone_from_storage_instead_of_drawing_it_broken(
    staff_client: Client, alice: User
) -> None:
    """The site's pages said so since a restore without the media; the admin still drew a broken image."""
    lost = make_upload(alice, probability=0.97, name="lost.jpg")
    lost.image.storage.delete(lost.image.name)

    page = staff_client.get(f"/admin/phoneapp/upload/{lost.pk}/change/").content.decode()

    assert "The picture file is missing from storage" in page
    assert f'src="/uploads/{lost.pk}/image"' not in page


def test_model_version_list_shows_headline_figures_from_the_manifest(staff_client: Client) -> None:
    from phoneapp.models import ModelVersion

    ModelVersion.objects.create(
        name="measured",
        path="measured",
        checksum="0" * 64,
        metrics={"cross_validation": {"shared_set": {"accuracy": 0.976, "f1": 0.97, "roc_auc": 0.995, "count": 9}}},
    )
    page = staff_client.get("/admin/phoneapp/modelversion/").content.decode()
    assert "0.976" in page and "0.970" in page and "0.995" in page
    version = ModelVersion.objects.get(name="measured")
    change = staff_client.get(f"/admin/phoneapp/modelversion/{version.pk}/change/").content.decode()
    assert '<th scope="row">cross_validation › shared_set</th>' in change


def test_a_model_version_is_neither_deleted_nor_saved_in_the_admin(staff_client: Client) -> None:
    """A deleted row came back at the next sync of MODELS_DIR (a deleted active version quietly gave way to
    trained_models/ACTIVE, undoing a rollback); and the change page offered Save for fields that are all read-only."""
    from phoneapp.models import ModelVersion

    version = ModelVersion.objects.create(name="kept", path="kept", checksum="0" * 64, is_active=True)

    change = staff_client.get(f"/admin/phoneapp/modelversion/{version.pk}/change/").content.decode()
    deleted = staff_client.post(f"/admin/phoneapp/modelversion/{version.pk}/delete/", {"post": "yes"})

    assert 'name="_save"' not in change and 'name="_continue"' not in change
    assert "/delete/" not in change
    assert deleted.status_code == 403 and ModelVersion.objects.filter(pk=version.pk).exists()


def test_clearing_a_review_in_the_admin_puts_the_picture_back_in_the_queue_and_is_logged(
    staff_client: Client, reviewer: User, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    upload = make_upload(alice, name="cleared.jpg", predicted_label="phone", probability=0.9, reviewed="phone")
    with caplog.at_level("INFO", logger="phoneapp.services.reviews"):
        response = staff_client.post(f"{CHANGELIST}{upload.pk}/change/", {"reviewed_label": "", "reviewed_boxes": ""})
    assert response.status_code == 302
    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.reviewed_by, upload.reviewed_at) == ("", None, None)
    assert review_queue_first(reviewer_id=reviewer.pk) == upload
    cleared = [record for record in caplog.records if record.getMessage() == "reviews cleared"]
    # the service logs them as ``extra`` fields, attributes LogRecord's type does not declare
    assert [(record.__dict__["count"], record.__dict__["reviewer_id"]) for record in cleared] == [(1, reviewer.pk)]


def test_relabelling_a_confident_verdict_in_the_admin_waits_for_a_second_reviewer(
    staff_client: Client, alice: User
) -> None:
    """The same rule as the review queue's (docs/retraining.md): the admin is not a way round it."""
    confident = make_upload(alice, name="confident.jpg", predicted_label="phone", probability=0.99)
    unsure = make_upload(alice, name="unsure.jpg", predicted_label="phone", probability=0.55)

    marked = staff_client.post(
        CHANGELIST, {"action": "mark_as_not_phone", "_selected_action": [confident.pk, unsure.pk]}, follow=True
    )
    # Said, not left for the reviewer to find out in the queue.
    said = " ".join(marked.content.decode().split())
    assert "Marked 2 uploads as not phone; 1 against a confident verdict waits for a second reviewer" in said
    staff_client.post(f"{CHANGELIST}{confident.pk}/change/", {"reviewed_label": "not_phone", "reviewed_boxes": ""})

    confident.refresh_from_db()
    unsure.refresh_from_db()
    assert (confident.reviewed_label, confident.second_review) == ("not_phone", SecondReview.WAITING)
    assert (unsure.reviewed_label, unsure.second_review) == ("not_phone", SecondReview.NOT_NEEDED)


def test_the_admin_says_one_label_waits_and_two_labels_wait_for_a_second_reviewer(
    staff_client: Client, alice: User
) -> None:
    one = make_upload(alice, name="one.jpg", probability=0.99)
    two = [make_upload(alice, name=f"two-{index}.jpg", probability=0.99) for index in range(2)]

    said_one = staff_client.post(CHANGELIST, {"action": "mark_as_not_phone", "_selected_action": [one.pk]}, follow=True)
    said_two = staff_client.post(
        CHANGELIST, {"action": "mark_as_not_phone", "_selected_action": [upload.pk for upload in two]}, follow=True
    )

    assert "; 1 against a confident verdict waits for a second reviewer" in said_one.content.decode()
    assert "; 2 against a confident verdict wait for a second reviewer" in said_two.content.decode()


def test_the_upload_list_says_the_chance_of_a_phone_as_the_pages_do_never_100_or_0_percent(
    staff_client: Client, alice: User
) -> None:
    """It said "Phone 100%" and "Not a phone 0%", a certainty the pages never claim ("over 99%", "under 1%")."""
    make_upload(alice, name="sure.jpg", probability=0.997)
    make_upload(alice, name="none.jpg", probability=0.003)
    make_upload(alice, name="middle.jpg", probability=0.52)

    page = staff_client.get(CHANGELIST).content.decode()

    said = {strip_tags(cell) for cell in re.findall(r'<td class="field-verdict_display">(.*?)</td>', page)}
    assert said == {"Phone — over 99%", "Not a phone — under 1%", "Unsure — 52%"}


def test_saving_an_upload_without_changing_its_label_keeps_who_reviewed_it(staff_client: Client, alice: User) -> None:
    from tests.factories import make_user

    first = make_user("fred", staff=True)
    upload = make_upload(
        alice, name="kept.jpg", predicted_label="phone", probability=0.9, reviewed="phone", reviewer=first
    )
    stamped = Upload.objects.values("reviewed_by", "reviewed_at").get(pk=upload.pk)

    response = staff_client.post(
        f"{CHANGELIST}{upload.pk}/change/",
        {"reviewed_label": "phone", "reviewed_boxes": '[{"box": [0.1, 0.1, 0.3, 0.4]}]'},
    )

    assert response.status_code == 302
    upload.refresh_from_db()
    assert upload.reviewed_boxes == [{"box": [0.1, 0.1, 0.3, 0.4]}]
    assert Upload.objects.values("reviewed_by", "reviewed_at").get(pk=upload.pk) == stamped


def test_marking_one_copy_of_a_picture_says_how_many_uploads_it_labelled(staff_client: Client, alice: User) -> None:
    """One picture has one label: marking one upload labels its copies too, and the message counted only the
    uploads ticked ("Marked 1 upload" while two changed)."""
    ticked = make_upload(alice, name="sent.jpg", probability=0.6, sha256="ab" * 32)
    copy = make_upload(alice, name="sent-again.jpg", probability=0.6, sha256="ab" * 32)

    marked = staff_client.post(CHANGELIST, {"action": "mark_as_phone", "_selected_action": [ticked.pk]}, follow=True)

    said = " ".join(marked.content.decode().split())
    assert "Marked 2 uploads as phone (1 other upload of the same picture)." in said
    assert Upload.objects.get(pk=copy.pk).reviewed_label == "phone"


def test_the_upload_list_says_which_reviews_wait_for_a_second_reviewer(
    staff_client: Client, reviewer: User, alice: User
) -> None:
    """A label against a confident verdict trains nothing until a second reviewer agrees: the list said only the
    label, so it read as settled."""
    confident = make_upload(alice, name="confident.jpg", probability=0.99)
    make_upload(alice, name="settled.jpg", probability=0.2, reviewed="not_phone", reviewer=reviewer)
    staff_client.post(CHANGELIST, {"action": "mark_as_not_phone", "_selected_action": [confident.pk]})

    page = staff_client.get(CHANGELIST).content.decode()
    assert page.count("Not a phone (waiting for a second reviewer)") == 1
    assert page.count('<td class="field-review_display">Not a phone</td>') == 1  # settled.jpg


def test_upload_change_page_shows_an_unsure_verdict_as_unsure_and_no_boxes_as_empty(
    staff_client: Client, alice: User
) -> None:
    """The change page showed the stored label (the side of the threshold: "Phone" for a 52% unsure verdict) and
    the word ``null`` in the boxes field when the reviewer drew none."""
    upload = make_upload(alice, probability=0.52)
    assert upload.reviewed_boxes is None

    page = staff_client.get(f"{CHANGELIST}{upload.pk}/change/").content.decode()

    assert "Unsure — 52%" in strip_tags(page)
    assert re.search(r'id="id_reviewed_boxes">\s*</textarea>', page)  # empty, not "null"


def test_clearing_a_review_waiting_for_a_second_reviewer_clears_it_on_every_copy_of_the_picture(
    staff_client: Client, alice: User, bob: User, second_reviewer: User
) -> None:
    """Cleared, the first review left its second review "waiting": the picture came first in the queue as a second
    opinion on nothing ("a reviewer said" an empty label), and the other copies of the picture kept their label."""
    confident = make_upload(alice, name="confident.jpg", predicted_label="phone", probability=0.99, sha256="ab" * 32)
    copy = make_upload(bob, name="same-picture.jpg", predicted_label="phone", probability=0.99, sha256="ab" * 32)
    staff_client.post(f"{CHANGELIST}{confident.pk}/change/", {"reviewed_label": "not_phone", "reviewed_boxes": ""})
    copy.refresh_from_db()
    assert (copy.reviewed_label, copy.second_review) == ("not_phone", SecondReview.WAITING)

    staff_client.post(f"{CHANGELIST}{confident.pk}/change/", {"reviewed_label": "", "reviewed_boxes": ""})

    for upload in (confident, copy):
        upload.refresh_from_db()
        assert (upload.reviewed_label, upload.reviewed_by, upload.second_review, upload.second_label) == (
            "",
            None,
            SecondReview.NOT_NEEDED,
            "",
        )
    page = Client()
    page.force_login(second_reviewer)
    shown = page.get(f"/review/{confident.pk}/")
    assert shown.status_code == 200
    assert "Second opinion" not in shown.content.decode()


def test_a_migration_takes_the_second_review_off_reviews_cleared_before_it_did() -> None:
    """Uploads left "waiting" by an earlier clearing become plain unreviewed uploads; a real wait is kept."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("phoneapp.migrations.0010_clear_second_reviews_of_cleared_reviews")
    owner = make_user("olga")
    stranded = make_upload(owner, name="stranded.jpg", predicted_label="phone", probability=0.99)
    waiting = make_upload(owner, name="waiting.jpg", predicted_label="phone", probability=0.99, reviewed="not_phone")
    Upload.objects.filter(pk__in=[stranded.pk, waiting.pk]).update(second_review=SecondReview.WAITING)

    # The function changes rows only: its schema editor is never entered (SQLite's refuses inside a test's transaction).
    migration.second_reviews_of_cleared_reviews_clear(apps, connection.schema_editor())

    stranded.refresh_from_db()
    waiting.refresh_from_db()
    assert stranded.second_review == SecondReview.NOT_NEEDED
    assert (waiting.reviewed_label, waiting.second_review) == ("not_phone", SecondReview.WAITING)


def test_every_model_change_has_its_migration() -> None:
    from django.core.management import call_command

    call_command("makemigrations", "phoneapp", "--check", "--dry-run", verbosity=0)


def _searchable_admins() -> list[str]:
    """The label of every model whose admin has a search box (uploads, API tokens, users, groups, any added later)."""
    from django.contrib import admin

    return sorted(model._meta.label for model, model_admin in admin.site._registry.items() if model_admin.search_fields)


@pytest.mark.parametrize("label", _searchable_admins())
@pytest.mark.parametrize("term", ["beach\x00", "\x00"], ids=["name-then-nul", "only-nul"])
def test_every_admin_search_with_a_nul_finds_nothing_instead_of_failing(
    rf: RequestFactory, reviewer: User, alice: User, label: str, term: str
) -> None:
    # PostgreSQL refuses text holding NUL (psycopg's DataError, a 500) and no stored text holds one, so nothing
    # matches, as in the history's and the API's name searches. On SQLite the query ran: this fails without the fix
    # on PostgreSQL only.
    from django.apps import apps
    from django.contrib import admin

    make_upload(alice, name="beach.jpg")
    model = apps.get_model(label)
    request = rf.get("/admin/")
    request.user = reviewer
    found, _ = admin.site._registry[model].get_search_results(request, model._default_manager.all(), term)
    assert list(found) == []


def test_the_admin_autocomplete_with_a_nul_finds_nothing_instead_of_failing(staff_client: Client, alice: User) -> None:
    # The change list's search box refuses a NUL itself ("Null characters are not allowed."); the autocomplete
    # endpoint passed it to the database, a 500 on PostgreSQL.
    response = staff_client.get("/admin/autocomplete/?app_label=phoneapp&model_name=upload&field_name=owner&term=%00")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_comparing_with_the_active_version_takes_the_same_queries_however_many_scores_there_are() -> None:
    """It asked the database once per score of the version until one matched the active version's pictures:
    each retrain against another active version adds a score that does not, and each one a query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from phoneapp.selectors.model_versions import model_version_compare_with_active
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
    active = model_version_active()
    candidate = ModelVersion.objects.filter(is_active=False).order_by("name").first()
    assert candidate is not None
    _scored(candidate, "ground_truth", 7, 10, "a" * 64)  # the oldest, on the active version's pictures
    _scored(active, "ground_truth", 9, 10, "a" * 64)
    _scored(active, "ground_truth", 10, 10, "a" * 64)  # the active version's newest on them: the one compared

    def compared() -> tuple[int, list[tuple[str, int, int]]]:
        with CaptureQueriesContext(connection) as queries:
            sets = model_version_compare_with_active(version=candidate).sets
        return len(queries), [(scores.picture_set, scores.correct, scores.active_correct) for scores in sets]

    few_queries, few = compared()
    for index in range(10):  # newer scores on pictures the active version was never scored on
        _scored(candidate, "ground_truth", 1, 10, f"{index:064d}")
        _scored(candidate, "eval", 1, 10, f"{index:064d}")
    many_queries, many = compared()

    assert few == many == [("ground_truth", 7, 10)]
    assert (few_queries, many_queries) == (3, 3)  # the active version, then its scores and the candidate's
