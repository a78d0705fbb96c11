"""Labels that train the next model: second opinions on contradicted confident verdicts, a stable eval split,
ground truth, and reviewers' boxes -- in the review queue, the admin, the API and the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from phoneapp.models import ReviewSplit, SecondReview, Upload
from phoneapp.selectors.training import training_uploads
from phoneapp.services.ground_truth import uploads_mark_ground_truth
from phoneapp.services.reviews import review_split_of
from tests.conftest import client_for
from tests.factories import make_review, make_upload, make_user

if TYPE_CHECKING:
    # What the test client returns (a stubs-only name: the response with .json() and .templates added).
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse
    from pytest_django import DjangoAssertNumQueries


pytestmark = pytest.mark.django_db


def decide(client: Client, upload: Upload, decision: str, **extra: str) -> TestResponse:
    return client.post(f"/review/{upload.pk}/decide", {"decision": decision, **extra}, HTTP_ACCEPT="application/json")


def said_to(client: Client, upload: Upload) -> list[str]:
    """The messages the review page shows this reviewer next."""
    return [str(message) for message in client.get(f"/review/{upload.pk}/").context["messages"]]


def test_a_review_against_a_confident_verdict_waits_for_a_second_reviewer_before_it_trains(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    # A picture the stable split sends to training: held out of it only by the second review.
    train_sha256 = next(f"{n:064x}" for n in range(100) if review_split_of(sha256=f"{n:064x}") == ReviewSplit.TRAIN)
    confident_phone = make_upload(alice, probability=0.99, sha256=train_sha256)
    assert decide(client_for(reviewer), confident_phone, "not_phone").status_code == 200
    confident_phone.refresh_from_db()
    assert confident_phone.second_review == SecondReview.WAITING
    assert confident_phone.review_split == ReviewSplit.TRAIN
    assert confident_phone not in training_uploads()

    # The first reviewer does not see it again; another reviewer gets it first, ahead of unsure pictures.
    unsure = make_upload(alice, probability=0.5)
    assert client_for(reviewer).get("/review/")["Location"] == f"/review/{unsure.pk}/"
    other = client_for(second_reviewer)
    assert other.get("/review/")["Location"] == f"/review/{confident_phone.pk}/"
    assert "Second opinion needed" in other.get(f"/review/{confident_phone.pk}/").content.decode()

    decide(other, confident_phone, "not_phone")
    confident_phone.refresh_from_db()
    assert confident_phone.second_review == SecondReview.AGREED
    assert confident_phone.second_reviewed_by == second_reviewer
    assert confident_phone.reviewed_label == "not_phone"
    assert confident_phone in training_uploads()
    dashboard = client_for(reviewer).get("/dashboard/").content.decode()
    assert "1 of 1 (100%)" in dashboard


def test_a_second_reviewer_who_disagrees_keeps_the_picture_out_of_training(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    confident_phone = make_upload(alice, probability=0.99, name="desk.jpg")
    first, second = client_for(reviewer), client_for(second_reviewer)
    decide(first, confident_phone, "not_phone")
    assert said_to(first, confident_phone)[0].startswith(
        "Saved: desk.jpg is not a phone; it waits for a second reviewer before it trains."
    )
    decide(second, confident_phone, "phone")
    # Said as what happened: the page told the second reviewer "desk.jpg is not a phone", the opposite of their call.
    assert said_to(second, confident_phone)[-1].startswith(
        f"Saved: you disagree with {reviewer.get_username()}, who said desk.jpg is not a phone"
    )
    confident_phone.refresh_from_db()
    assert confident_phone.second_review == SecondReview.DISAGREED
    assert confident_phone.reviewed_label == "not_phone" and confident_phone.second_label == "phone"
    assert confident_phone not in training_uploads()


def test_agreeing_with_a_confident_verdict_or_deciding_an_unsure_one_needs_no_second_opinion(
    alice: User, reviewer: User
) -> None:
    confident = make_upload(alice, probability=0.99)
    unsure = make_upload(alice, probability=0.5)
    decide(client_for(reviewer), confident, "confirm")
    decide(client_for(reviewer), unsure, "not_phone")
    # Both decisions were saved (an unsaved one would also leave second_review at its starting value)...
    assert dict(Upload.objects.values_list("pk", "reviewed_label")) == {confident.pk: "phone", unsure.pk: "not_phone"}
    # ...and neither waits for a second reviewer or is held out of training.
    assert set(Upload.objects.values_list("second_review", flat=True)) == {SecondReview.NOT_NEEDED}
    assert Upload.objects.held_for_second_review().count() == 0


def test_the_split_is_fixed_at_review_time_by_the_picture_and_duplicates_share_it(
    alice: User, bob: User, reviewer: User
) -> None:
    copies = [make_upload(owner, probability=0.5, sha256="c" * 64) for owner in (alice, bob)]
    decide(client_for(reviewer), copies[0], "phone")
    splits = set(Upload.objects.filter(sha256="c" * 64).values_list("review_split", flat=True))
    assert splits == {review_split_of(sha256="c" * 64)}
    eval_share = sum(review_split_of(sha256=f"{index:064x}") == ReviewSplit.EVAL for index in range(2000)) / 2000
    assert 0.17 < eval_share < 0.23


def test_the_upgrade_gives_pictures_reviewed_before_splits_theirs_in_a_few_statements(
    alice: User, reviewer: User, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    """Migration 0005 splits the pictures reviewed before splits existed as a review now does, duplicates alike, in
    batches: a statement per picture made it take 66 s for 100,000 reviewed pictures on PostgreSQL (14 s batched)."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module(
        "phoneapp.migrations.0005_review_split_ground_truth_second_review_boxes_version_scores"
    )
    reviewed_at = timezone.now()
    pictures = [f"{index:064x}" for index in range(1200)]
    row = {"owner": alice, "size_bytes": 1, "width": 1, "height": 1, "content_type": "image/jpeg", "image": "x.jpg"}
    Upload.objects.bulk_create(
        [
            Upload(sha256=sha256, reviewed_label="phone", reviewed_by=reviewer, reviewed_at=reviewed_at, **row)
            for sha256 in pictures
        ]
        + [Upload(sha256=pictures[0], **row), Upload(sha256="f" * 64, **row)]  # a copy not reviewed; a picture not
    )

    with django_assert_max_num_queries(6):
        migration.assign_review_splits(apps, connection.schema_editor())

    splits = dict(Upload.objects.exclude(sha256="f" * 64).values_list("sha256", "review_split").distinct())
    assert splits == {sha256: review_split_of(sha256=sha256) for sha256 in pictures}
    assert set(Upload.objects.filter(sha256=pictures[0]).values_list("review_split", flat=True)) == {
        splits[pictures[0]]
    }
    assert Upload.objects.get(sha256="f" * 64).review_split == ""


def test_boxes_posted_with_a_decision_are_stored_and_returned_by_the_api(alice: User, reviewer: User) -> None:
    upload = make_upload(alice, probability=0.5, boxes=[{"box": [0.1, 0.1, 0.3, 0.3], "score": 0.5}])
    response = decide(client_for(reviewer), upload, "phone", boxes="[[0.2, 0.25, 0.5, 0.75]]")
    assert response.status_code == 200
    upload.refresh_from_db()
    assert upload.reviewed_boxes == [{"box": [0.2, 0.25, 0.5, 0.75]}]
    data = client_for(alice).get(f"/api/uploads/{upload.pk}/").json()
    assert data["reviewed_boxes"] == [{"box": [0.2, 0.25, 0.5, 0.75]}]
    assert data["boxes"] == [{"box": [0.1, 0.1, 0.3, 0.3], "score": 0.5}]  # the model's stay as they were


@pytest.mark.parametrize(
    "boxes", ["[[0.5, 0.5, 0.2, 0.9]]", "[[0, 0, 1.5, 1]]", "not json", '[["a", 1, 2, 3]]', "[[" + "9" * 5000 + "]]"]
)
def test_bad_boxes_are_refused_with_a_reason_and_nothing_is_saved(alice: User, reviewer: User, boxes: str) -> None:
    upload = make_upload(alice, probability=0.5)
    response = decide(client_for(reviewer), upload, "phone", boxes=boxes)
    assert response.status_code == 400
    assert "ox" in response.json()["error"]
    upload.refresh_from_db()
    assert upload.reviewed_label == "" and upload.reviewed_boxes is None


def test_ground_truth_from_the_review_queue_and_the_admin(alice: User, reviewer: User) -> None:
    from_queue = make_upload(alice, probability=0.5)
    decide(client_for(reviewer), from_queue, "phone", ground_truth="1")
    from_queue.refresh_from_db()
    assert from_queue.ground_truth_label == "phone" and from_queue.ground_truth_by == reviewer

    reviewed = make_upload(alice, probability=0.2, reviewed="not_phone", reviewer=reviewer)
    twin = make_upload(alice, probability=0.2, sha256=reviewed.sha256)
    client_for(reviewer).post(
        "/admin/phoneapp/upload/",
        {"action": "confirm_as_ground_truth", "_selected_action": [reviewed.pk]},
    )
    assert Upload.objects.get(pk=reviewed.pk).ground_truth_label == "not_phone"
    assert Upload.objects.get(pk=twin.pk).ground_truth_label == "not_phone"  # the same picture, sent again


def test_confirming_reviewed_labels_as_ground_truth_leaves_unsettled_ones_alone(alice: User, reviewer: User) -> None:
    """A first review still waiting for, or disputed by, a second reviewer is not a settled label: the bulk
    "confirm the reviewed label" leaves it alone (staff name the label with "Ground truth: phone / not phone")."""
    from phoneapp.models import SecondReview

    settled = make_upload(alice, probability=0.2, reviewed="not_phone", reviewer=reviewer)
    waiting = make_upload(alice, probability=0.9, reviewed="not_phone", reviewer=reviewer)
    disputed = make_upload(alice, probability=0.9, reviewed="not_phone", reviewer=reviewer)
    Upload.objects.filter(pk=waiting.pk).update(second_review=SecondReview.WAITING)
    Upload.objects.filter(pk=disputed.pk).update(second_review=SecondReview.DISAGREED, second_label="phone")

    response = client_for(reviewer).post(
        "/admin/phoneapp/upload/",
        {"action": "confirm_as_ground_truth", "_selected_action": [settled.pk, waiting.pk, disputed.pk]},
        follow=True,
    )

    truths = {pk: Upload.objects.get(pk=pk).ground_truth_label for pk in (settled.pk, waiting.pk, disputed.pk)}
    assert truths == {settled.pk: "not_phone", waiting.pk: "", disputed.pk: ""}
    assert "2 upload(s) left alone" in response.content.decode()


def test_undo_of_a_ground_truth_decision_takes_the_ground_truth_back_too(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """G then a wrong key then U: the picture must not stay ground truth with the label taken back; a ground truth
    someone else set earlier on the same picture comes back as it was."""
    fresh = make_upload(alice, probability=0.5)
    client = client_for(reviewer)
    decide(client, fresh, "not_phone", ground_truth="1")
    assert Upload.objects.get(pk=fresh.pk).ground_truth_label == "not_phone"
    client.post("/review/undo", HTTP_ACCEPT="application/json")
    fresh.refresh_from_db()
    assert (fresh.reviewed_label, fresh.ground_truth_label, fresh.ground_truth_by, fresh.ground_truth_at) == (
        "",
        "",
        None,
        None,
    )

    settled = make_upload(alice, probability=0.5)
    twin = make_upload(alice, probability=0.5, sha256=settled.sha256, reviewed="phone", reviewer=second_reviewer)
    decide(client_for(second_reviewer), twin, "phone", ground_truth="1")
    before = Upload.objects.values("ground_truth_label", "ground_truth_by", "ground_truth_at").get(pk=settled.pk)
    decide(client, settled, "not_phone", ground_truth="1")
    assert Upload.objects.get(pk=twin.pk).ground_truth_label == "not_phone"
    client.post("/review/undo", HTTP_ACCEPT="application/json")
    for upload in (settled, twin):
        assert (
            Upload.objects.values("ground_truth_label", "ground_truth_by", "ground_truth_at").get(pk=upload.pk)
            == before
        )


def test_undo_of_a_second_opinion_puts_the_picture_back_to_waiting(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    confident_phone = make_upload(alice, probability=0.99)
    decide(client_for(reviewer), confident_phone, "not_phone")
    other = client_for(second_reviewer)
    decide(other, confident_phone, "phone")
    other.post("/review/undo", HTTP_ACCEPT="application/json")
    confident_phone.refresh_from_db()
    assert confident_phone.second_review == SecondReview.WAITING
    assert confident_phone.second_label == "" and confident_phone.reviewed_label == "not_phone"


def test_undo_of_a_first_review_leaves_a_second_opinion_given_since_in_place(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """A's review waits; B agrees; A presses Undo afterwards: B's agreement stands (the picture does not go back to
    the queue with B's decision erased)."""
    confident_phone = make_upload(alice, probability=0.99)
    first = client_for(reviewer)
    decide(first, confident_phone, "not_phone")
    decide(client_for(second_reviewer), confident_phone, "not_phone")

    undone = first.post("/review/undo", HTTP_ACCEPT="application/json").json()

    confident_phone.refresh_from_db()
    assert confident_phone.reviewed_label == "not_phone"
    # And A is told so, not "Undone" (nothing was restored).
    assert undone["restored"] == 0
    assert said_to(first, confident_phone)[-1].startswith("Not undone: another reviewer has decided on this picture")
    assert confident_phone.second_review == SecondReview.AGREED
    assert confident_phone.second_reviewed_by == second_reviewer


def test_the_same_reviewer_deciding_twice_is_no_second_opinion_and_the_picture_still_waits(
    alice: User, reviewer: User
) -> None:
    """A reviewer who pressed the key again on their own waiting picture counted as their own second opinion."""
    confident_phone = make_upload(alice, probability=0.99)
    client = client_for(reviewer)
    assert decide(client, confident_phone, "not_phone").status_code == 200
    assert decide(client, confident_phone, "not_phone").status_code == 200

    confident_phone.refresh_from_db()
    assert confident_phone.second_review == SecondReview.WAITING
    assert confident_phone.second_reviewed_by is None and confident_phone.second_label == ""
    assert confident_phone not in training_uploads()


def test_undo_leaves_a_later_reviewers_decision_alone(alice: User, reviewer: User, second_reviewer: User) -> None:
    """A's undo after B had decided again put back the label from before A, erasing B's decision."""
    unsure = make_upload(alice, probability=0.5)
    first = client_for(reviewer)
    decide(first, unsure, "phone")
    decide(client_for(second_reviewer), unsure, "not_phone")

    undone = first.post("/review/undo", HTTP_ACCEPT="application/json").json()

    unsure.refresh_from_db()
    assert (unsure.reviewed_label, unsure.reviewed_by) == ("not_phone", second_reviewer)
    assert undone["restored"] == 0


def test_undo_of_a_ground_truth_leaves_a_later_reviewers_ground_truth_alone(alice: User, reviewer: User) -> None:
    """A's undo after B had set the picture's ground truth again put back what it was before A, erasing B's."""
    later = make_user("gina", staff=True, superuser=True)  # ground truth takes the admin's permission
    unsure = make_upload(alice, probability=0.5)
    first = client_for(reviewer)
    assert decide(first, unsure, "phone", ground_truth="1").status_code == 200
    assert decide(client_for(later), unsure, "not_phone", ground_truth="1").status_code == 200

    first.post("/review/undo", HTTP_ACCEPT="application/json")

    unsure.refresh_from_db()
    assert (unsure.ground_truth_label, unsure.ground_truth_by) == ("not_phone", later)
    assert unsure.ground_truth_at is not None


def test_a_train_split_picture_marked_ground_truth_never_trains(alice: User, reviewer: User) -> None:
    """Ground truth scores every version: a reviewed train-split picture marked as ground truth still trained."""
    train_sha256 = next(f"{n:064x}" for n in range(100) if review_split_of(sha256=f"{n:064x}") == ReviewSplit.TRAIN)
    reviewed = make_review(make_upload(alice, probability=0.5, sha256=train_sha256), label="phone", reviewer=reviewer)
    assert reviewed.review_split == ReviewSplit.TRAIN
    assert reviewed in training_uploads()

    uploads_mark_ground_truth(uploads=Upload.objects.filter(pk=reviewed.pk), by=reviewer)

    assert reviewed not in training_uploads()


def test_a_decision_made_on_a_page_another_reviewer_has_since_decided_is_refused(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """Two reviewers open the same picture; the second to press a key gets a 409 naming who decided, and the first
    decision stands (it was silently replaced, boxes and all)."""
    import re

    upload = make_upload(alice, probability=0.5)
    first, second = client_for(reviewer), client_for(second_reviewer)
    pages = [client.get(f"/review/{upload.pk}/").content.decode() for client in (first, second)]
    found = [re.search(r'name="seen" id="seen-field" value="([^"]*)"', page) for page in pages]
    assert all(found)
    [seen_by_first, seen_by_second] = [match[1] for match in found if match]

    assert decide(first, upload, "phone", seen=seen_by_first).status_code == 200
    late = decide(second, upload, "not_phone", seen=seen_by_second)

    assert late.status_code == 409
    assert reviewer.get_username() in late.json()["error"] and "nothing was saved" in late.json()["error"]
    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.reviewed_by) == ("phone", reviewer)


def test_a_reviewer_who_decided_in_another_tab_is_told_so_not_named(alice: User, reviewer: User) -> None:
    """Two tabs of one reviewer: the older one's refusal named the reader as if someone else had decided."""
    import re

    upload = make_upload(alice, probability=0.5)
    client = client_for(reviewer)
    page = client.get(f"/review/{upload.pk}/").content.decode()
    seen = re.search(r'name="seen" id="seen-field" value="([^"]*)"', page)
    assert seen

    assert decide(client, upload, "phone", seen=seen[1]).status_code == 200
    late = decide(client, upload, "not_phone", seen=seen[1])

    assert late.status_code == 409
    error = late.json()["error"]
    assert error.startswith("You decided on this picture elsewhere") and reviewer.get_username() not in error


def test_admin_edits_boxes_as_json_and_refuses_bad_ones(alice: User, reviewer: User) -> None:
    upload = make_upload(alice, probability=0.9, reviewed="phone", reviewer=reviewer)
    url = f"/admin/phoneapp/upload/{upload.pk}/change/"
    client = client_for(reviewer)
    client.post(url, {"reviewed_label": "phone", "reviewed_boxes": '[{"box": [0.1, 0.2, 0.3, 0.4]}]'})
    upload.refresh_from_db()
    assert upload.reviewed_boxes == [{"box": [0.1, 0.2, 0.3, 0.4]}]
    refused = client.post(url, {"reviewed_label": "not_phone", "reviewed_boxes": "[[0.5, 0.2, 0.3, 0.4]]"})
    upload.refresh_from_db()
    assert upload.reviewed_boxes == [{"box": [0.1, 0.2, 0.3, 0.4]}]
    # Said beside the field, the typed text kept, and nothing else on the form saved: it was said after saving,
    # next to "was changed successfully", and the text was lost.
    page = refused.content.decode()
    assert refused.status_code == 200 and "is not inside the picture" in page and "[[0.5, 0.2, 0.3, 0.4]]" in page
    assert upload.reviewed_label == "phone"


def test_a_review_waiting_for_a_second_opinion_is_next_even_when_it_came_while_the_reviewer_worked(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """It sits at the head of the queue, before the picture the reviewer is on: walking on from that picture
    reached it only once everything else was done."""
    unsure = [make_upload(alice, probability=p) for p in (0.52, 0.45, 0.4)]
    confident_phone = make_upload(alice, probability=0.99)
    first, second = client_for(reviewer), client_for(second_reviewer)
    assert first.get("/review/")["Location"] == f"/review/{unsure[0].pk}/"

    decide(second, confident_phone, "not_phone")  # against a confident verdict: waits for a second reviewer
    answer = decide(first, unsure[0], "phone").json()

    assert answer["next_id"] == confident_phone.pk


def test_a_disagreement_settled_as_ground_truth_is_not_told_to_be_settled(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """The staff member who decided with G was told "it trains nothing until staff settle it (admin, ground
    truth)": what they had just done."""
    confident_phone = make_upload(alice, probability=0.99, name="desk.jpg")
    decide(client_for(second_reviewer), confident_phone, "not_phone")
    settling = client_for(reviewer)

    decide(settling, confident_phone, "phone", ground_truth="1")

    [said] = said_to(settling, confident_phone)
    assert said.startswith(
        "Saved as ground truth: desk.jpg is a phone; it scores every model version and never trains."
    )
    assert "settle" not in said


def test_ground_truth_settles_a_picture_waiting_for_a_second_reviewer_in_the_counts(
    alice: User, reviewer: User
) -> None:
    """Marked ground truth by staff, a picture still counted as "waiting for a second reviewer" on the dashboard and
    as held for second review in the retrain report, as if its dispute were open."""
    from phoneapp.models import SecondReview
    from phoneapp.selectors.training import review_agreement, uploads_held_for_second_review_count

    upload = make_upload(alice, probability=0.95, reviewed="not_phone", reviewer=reviewer)
    Upload.objects.filter(pk=upload.pk).update(second_review=SecondReview.WAITING)
    assert (review_agreement().waiting, uploads_held_for_second_review_count()) == (1, 1)

    Upload.objects.filter(pk=upload.pk).update(ground_truth_label="not_phone")

    assert (review_agreement().waiting, uploads_held_for_second_review_count()) == (0, 0)


def test_a_bulk_relabelling_counts_the_copies_it_labelled_and_the_labels_left_waiting(
    alice: User, reviewer: User
) -> None:
    from phoneapp.services.reviews import uploads_review

    confident = make_upload(alice, predicted_label="phone", probability=0.99, sha256="cd" * 32)
    make_upload(alice, predicted_label="phone", probability=0.99, sha256="cd" * 32)  # the same picture, sent again
    unsure = make_upload(alice, predicted_label="phone", probability=0.55)

    outcome = uploads_review(
        uploads=Upload.objects.filter(pk__in=[confident.pk, unsure.pk]), label="not_phone", reviewer=reviewer
    )

    assert (len(outcome.labelled), outcome.selected, outcome.copies, outcome.waiting) == (3, 2, 1, 2)


def test_confirming_ground_truth_counts_the_pictures_marked_and_the_uploads_left_alone(
    alice: User, reviewer: User
) -> None:
    from phoneapp.services.ground_truth import uploads_mark_ground_truth

    settled = make_upload(alice, probability=0.2, reviewed="not_phone", reviewer=reviewer)
    waiting = make_upload(alice, probability=0.9, reviewed="not_phone", reviewer=reviewer)
    unreviewed = make_upload(alice, probability=0.9)
    Upload.objects.filter(pk=waiting.pk).update(second_review=SecondReview.WAITING)
    chosen = Upload.objects.filter(pk__in=[settled.pk, waiting.pk, unreviewed.pk])

    confirmed = uploads_mark_ground_truth(uploads=chosen, by=reviewer)
    named = uploads_mark_ground_truth(uploads=chosen, by=reviewer, label="phone")

    assert (confirmed.marked, confirmed.left_alone) == (1, 2)
    assert (named.marked, named.left_alone) == (3, 0)


def _disputed(alice: User, first: User, second: User, *, name: str = "shoe.jpg") -> Upload:
    """A picture the model called not a phone with confidence, which ``first`` said is a phone and ``second``
    not: disputed."""
    shoe = make_upload(alice, probability=0.01, name=name)
    decide(client_for(first), shoe, "phone")
    decide(client_for(second), shoe, "not_phone")
    shoe.refresh_from_db()
    assert shoe.second_review == SecondReview.DISAGREED
    return shoe


def test_neither_side_of_a_dispute_settles_it_with_a_plain_decision(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """The reviewer who disagreed opened the picture again (the page said only "Reviewed as phone by rita"),
    pressed N, and the dispute was gone: the picture trained on one reviewer's word."""
    shoe = _disputed(alice, second_reviewer, reviewer)
    for side in (reviewer, second_reviewer):
        page = client_for(side).get(f"/review/{shoe.pk}/").content.decode()
        assert "Disputed: sam said phone, rita not a phone." in page

        refused = decide(client_for(side), shoe, "not_phone")

        assert refused.status_code == 409
        assert refused.json()["error"].startswith("sam said phone, rita not a phone: a disputed picture is settled")
    shoe.refresh_from_db()
    assert (shoe.reviewed_label, shoe.second_review) == ("phone", SecondReview.DISAGREED)
    assert shoe not in training_uploads()


def test_staff_settle_a_dispute_as_ground_truth_and_the_owner_then_sees_that_answer(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """Settled as ground truth "not a phone", the owner's final answer stayed the disputed "phone" (API, history
    filter and the picture's page)."""
    shoe = _disputed(alice, second_reviewer, make_user("tom", staff=True))
    owner = client_for(alice)
    # While disputed, the model's answer stands for the owner.
    assert owner.get(f"/api/uploads/{shoe.pk}/").json()["final_label"] == "not_phone"
    assert (
        "disputed by a second reviewer; until staff settle it the model"
        in owner.get(f"/uploads/{shoe.pk}/").content.decode()
    )

    assert decide(client_for(reviewer), shoe, "not_phone", ground_truth="1").status_code == 200

    shoe.refresh_from_db()
    assert (shoe.ground_truth_label, shoe.second_review) == ("not_phone", SecondReview.NOT_NEEDED)
    assert owner.get(f"/api/uploads/{shoe.pk}/").json()["final_label"] == "not_phone"
    listed = owner.get("/api/uploads/", {"label": "phone"}).json()["results"]
    assert listed == []
    assert "Not a phone, confirmed by staff" in owner.get(f"/uploads/{shoe.pk}/").content.decode()


def test_the_final_answer_is_ground_truth_then_a_settled_review_then_the_models(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    from phoneapp.selectors.decisions import upload_final_label

    model_only = make_upload(alice, probability=0.01, name="model.jpg")
    settled = make_upload(alice, probability=0.5, name="settled.jpg", reviewed="phone", reviewer=reviewer)
    waiting = make_upload(alice, probability=0.01, name="waiting.jpg")
    decide(client_for(reviewer), waiting, "phone")
    disputed = _disputed(alice, reviewer, second_reviewer, name="disputed.jpg")
    truth = make_upload(alice, probability=0.99, name="truth.jpg", reviewed="phone", reviewer=reviewer)
    Upload.objects.filter(pk=truth.pk).update(ground_truth_label="not_phone")
    pending = make_upload(alice, probability=None, status="pending", version=None, name="pending.jpg")

    expected = {
        "model.jpg": "not_phone",
        "settled.jpg": "phone",
        "waiting.jpg": "not_phone",  # the reviewer's "phone" waits for a second reviewer
        "disputed.jpg": "not_phone",
        "truth.jpg": "not_phone",
        "pending.jpg": None,
    }
    uploads = Upload.objects.filter(owner=alice)
    assert {upload.original_name: upload_final_label(upload=upload) for upload in uploads} == expected
    owner = client_for(alice)
    for label in ("phone", "not_phone"):
        listed = {row["original_name"] for row in owner.get("/api/uploads/", {"label": label}).json()["results"]}
        assert listed == {name for name, final in expected.items() if final == label}, label
    assert {model_only.pk, settled.pk, waiting.pk, disputed.pk, truth.pk, pending.pk} == set(
        uploads.values_list("pk", flat=True)
    )


def test_the_admin_leaves_a_disputed_picture_alone_and_says_how_to_settle_it(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    shoe = _disputed(alice, second_reviewer, make_user("tom", staff=True))
    admin = client_for(reviewer)

    response = admin.post(
        "/admin/phoneapp/upload/",
        {"action": "mark_as_not_phone", "_selected_action": [shoe.pk]},
        follow=True,
    )

    said = [str(message) for message in response.context["messages"]]
    assert any(
        "left as they were: two reviewers disagree on" in text and "Ground truth: not phone" in text for text in said
    ), said
    shoe.refresh_from_db()
    assert (shoe.reviewed_label, shoe.second_review) == ("phone", SecondReview.DISAGREED)


def test_the_dashboard_counts_disputes_left_for_staff(alice: User, reviewer: User, second_reviewer: User) -> None:
    """It said "Waiting for a second reviewer: 0" while two pictures waited for staff to settle them."""
    shoe = _disputed(alice, second_reviewer, make_user("tom", staff=True))
    _disputed(alice, second_reviewer, make_user("una", staff=True), name="wallet.jpg")

    def disputed_cell() -> str:
        page = client_for(reviewer).get("/dashboard/").content.decode()
        return page.split('id="disputed">', 1)[1].split("</td>", 1)[0]

    assert ">2</a>" in disputed_cell()
    Upload.objects.filter(pk=shoe.pk).update(ground_truth_label="not_phone")
    assert ">1</a>" in disputed_cell()


def test_the_first_reviewer_reopening_a_waiting_label_is_told_it_waits(alice: User, reviewer: User) -> None:
    shoe = make_upload(alice, probability=0.01)
    decide(client_for(reviewer), shoe, "phone")

    page = client_for(reviewer).get(f"/review/{shoe.pk}/").content.decode()

    assert "You said <strong>phone</strong>, against the model's confident verdict: it trains nothing" in page


def test_clearing_a_review_takes_the_reviewers_boxes_too(alice: User, reviewer: User) -> None:
    """Left behind, the queue showed them on the "unreviewed" picture as if they were the model's, and confirming
    the model saved them onto every copy."""
    from phoneapp.services.reviews import uploads_clear_review

    phone = make_upload(alice, probability=0.95, boxes=[{"box": [0.1, 0.1, 0.3, 0.4], "score": 0.9}])
    decide(client_for(reviewer), phone, "phone", boxes='[{"box": [0.5, 0.5, 0.7, 0.9]}]')
    phone.refresh_from_db()
    assert phone.reviewed_boxes == [{"box": [0.5, 0.5, 0.7, 0.9]}]

    uploads_clear_review(uploads=Upload.objects.filter(pk=phone.pk), reviewer=reviewer)

    phone.refresh_from_db()
    assert (phone.reviewed_label, phone.reviewed_boxes) == ("", None)


def test_agreement_with_ground_truth_leaves_out_reviews_made_ground_truth_by_their_reviewer(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """A decision made ground truth in the queue (G) is a review and the ground truth at once: counted, the
    dashboard's "Reviewers agree with ground truth" read 30 of 30 (100%) after a first retrain's set-up, however
    the reviewers labelled. Only a review checked by someone else's ground truth says how good reviewers are."""
    from phoneapp.selectors.training import review_agreement

    own = make_upload(alice, probability=0.5, name="own.jpg")
    decide(client_for(reviewer), own, "phone", ground_truth="1")
    checked = make_upload(alice, probability=0.5, name="checked.jpg")
    decide(client_for(second_reviewer), checked, "phone")
    uploads_mark_ground_truth(uploads=Upload.objects.filter(pk=checked.pk), label="not_phone", by=reviewer)

    agreement = review_agreement()

    assert (agreement.agreed_with_ground_truth, agreement.ground_truth_reviewed) == (0, 1)
