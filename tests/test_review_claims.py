"""Reviewers working at once are handed different pictures: opening one claims it for a few minutes."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from phoneapp.models import Upload
from phoneapp.services.review_claims import upload_review_claim
from tests.factories import client_for, make_upload, make_user

pytestmark = pytest.mark.django_db


def open_queue(client: Client) -> int:
    """Start the queue as a reviewer does and open the picture it hands out; its id."""
    location = client.get("/review/")["Location"]
    page = client.get(location)
    assert page.status_code == 200
    return page.context["upload"].pk


def test_two_reviewers_starting_at_once_are_handed_different_pictures(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    most_unsure = make_upload(alice, probability=0.52)
    next_unsure = make_upload(alice, probability=0.45)
    first, second = client_for(reviewer), client_for(second_reviewer)

    assert open_queue(first) == most_unsure.pk
    assert open_queue(second) == next_unsure.pk
    assert "has this picture open too" not in second.get(f"/review/{next_unsure.pk}/").content.decode()


def test_a_reviewer_whose_choice_was_claimed_a_moment_earlier_by_another_gets_the_next_picture(
    alice: User, reviewer: User, second_reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both start the queue at the same moment and both see the same head; the other reviewer's claim lands first.
    The choice is claimed at once, and a lost claim chooses again, instead of sending both to one picture."""
    from phoneapp.web import review

    head = make_upload(alice, probability=0.52)
    following = make_upload(alice, probability=0.45)
    real_first = review.review_queue_first
    seen_before_the_other_claimed = [head]

    def stale_then_real(**kwargs: Any) -> Upload | None:
        return seen_before_the_other_claimed.pop() if seen_before_the_other_claimed else real_first(**kwargs)

    monkeypatch.setattr(review, "review_queue_first", stale_then_real)
    assert upload_review_claim(upload_id=head.pk, reviewer=reviewer) is None  # the other reviewer's claim lands first

    assert client_for(second_reviewer).get("/review/")["Location"] == f"/review/{following.pk}/"
    assert Upload.objects.get(pk=following.pk).review_claimed_by == second_reviewer
    assert Upload.objects.get(pk=head.pk).review_claimed_by == reviewer


def test_after_a_decision_the_next_picture_is_not_one_another_reviewer_has_open(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    uploads = [make_upload(alice, probability=p) for p in (0.52, 0.55, 0.4, 0.3)]
    first, second = client_for(reviewer), client_for(second_reviewer)
    assert open_queue(first) == uploads[0].pk
    assert open_queue(second) == uploads[1].pk

    answer = first.post(f"/review/{uploads[0].pk}/decide", {"decision": "phone"}, HTTP_ACCEPT="application/json").json()

    # uploads[1] comes next in the queue's order, but the second reviewer has it open.
    assert answer["next_id"] == uploads[2].pk


def test_a_claim_past_its_time_or_given_up_hands_the_picture_out_again(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    most_unsure = make_upload(alice, probability=0.52)
    other = make_upload(alice, probability=0.3)
    first, second = client_for(reviewer), client_for(second_reviewer)
    assert open_queue(first) == most_unsure.pk

    Upload.objects.filter(pk=most_unsure.pk).update(review_claimed_until=timezone.now() - timedelta(seconds=1))
    assert open_queue(second) == most_unsure.pk  # the first reviewer walked away
    # And it is now the second reviewer's: the lapsed claim was taken over, not merely looked past.
    assert Upload.objects.get(pk=most_unsure.pk).review_claimed_by == second_reviewer

    # Opening another picture gives the earlier claim up at once: the first reviewer gets it back when it is free.
    assert first.get(f"/review/{other.pk}/").status_code == 200
    second.get(f"/review/{other.pk}/")  # sam moves on: most_unsure is free again, other is the first reviewer's
    assert Upload.objects.get(pk=most_unsure.pk).review_claimed_by is None
    assert open_queue(first) == most_unsure.pk


def test_when_only_pictures_open_with_others_are_left_one_is_handed_out_and_the_page_says_who_has_it(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    only = make_upload(alice, probability=0.52)
    first, second = client_for(reviewer), client_for(second_reviewer)
    assert open_queue(first) == only.pk

    assert second.get("/review/")["Location"] == f"/review/{only.pk}/"
    page = second.get(f"/review/{only.pk}/").content.decode()
    assert f"{reviewer.get_username()} has this picture open too" in page
    # Looking does not take the picture from the reviewer who has it.
    assert Upload.objects.get(pk=only.pk).review_claimed_by == reviewer


def test_a_deleted_reviewers_claim_does_not_hold_the_picture(alice: User, second_reviewer: User) -> None:
    leaving = make_user("leaving", staff=True)
    most_unsure = make_upload(alice, probability=0.52)
    make_upload(alice, probability=0.3)
    assert open_queue(client_for(leaving)) == most_unsure.pk
    leaving.delete()

    second = client_for(second_reviewer)
    assert open_queue(second) == most_unsure.pk
    assert Upload.objects.get(pk=most_unsure.pk).review_claimed_by == second_reviewer


def open_at_the_same_moment(upload: Upload, reviewers: list[User]) -> dict[str, object]:
    """Each reviewer opens ``upload`` from their own thread and connection, released together; what each call
    answered (``None``: the picture is theirs; else who holds it), by username."""
    from django.db import connection

    from phoneapp.services.review_claims import upload_review_claim

    meeting = threading.Barrier(len(reviewers), timeout=10)
    answers: dict[str, object] = {}

    def open_picture(user: User) -> None:
        try:
            meeting.wait()
            answers[user.get_username()] = upload_review_claim(upload_id=upload.pk, reviewer=user)
        finally:
            connection.close()

    threads = [threading.Thread(target=open_picture, args=(user,)) for user in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


@pytest.mark.django_db(transaction=True)
def test_of_two_reviewers_opening_a_picture_at_the_same_moment_exactly_one_holds_it(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """Real commits and two connections on PostgreSQL: the claim is one conditional update, not a read then a
    write, so the database decides who got there first."""
    from django.db import connection

    from tests.live_services import postgres_require

    postgres_require(connection)
    for _ in range(5):
        upload = make_upload(alice, probability=0.52)
        answers = open_at_the_same_moment(upload, [reviewer, second_reviewer])

        winner = Upload.objects.get(pk=upload.pk).review_claimed_by
        assert winner is not None and answers[winner.get_username()] is None
        [loser] = [name for name in answers if name != winner.get_username()]
        assert answers[loser] == winner


def test_the_next_link_passes_over_a_picture_another_reviewer_has_open(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    uploads = [make_upload(alice, probability=p) for p in (0.52, 0.55, 0.4)]
    first, second = client_for(reviewer), client_for(second_reviewer)
    assert open_queue(first) == uploads[0].pk
    assert open_queue(second) == uploads[1].pk

    # uploads[1] follows in the queue's order, but the second reviewer has it open.
    assert first.get(f"/review/{uploads[0].pk}/").context["place"].next_id == uploads[2].pk
    # Where only pictures open with others follow, "Next" still leads to one.
    assert second.get(f"/review/{uploads[2].pk}/").status_code == 200  # the second reviewer now holds uploads[2]
    assert first.get(f"/review/{uploads[1].pk}/").context["place"].next_id == uploads[2].pk


def test_back_from_a_picture_passes_over_one_another_reviewer_has_open(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """The ← link from an undecided picture goes to the one passed over before it, as "Next →" does the other way:
    not to a picture a colleague has open meanwhile (two reviewers on one picture)."""
    from phoneapp.selectors.review_queue import review_queue

    for probability in (0.52, 0.45, 0.6):
        make_upload(alice, probability=probability)
    first, taken, third = review_queue(reviewer_id=reviewer.pk).values_list("pk", flat=True)
    mine, theirs = client_for(reviewer), client_for(second_reviewer)
    assert open_queue(mine) == first
    theirs.get(f"/review/{taken}/")  # the colleague opens the second picture

    page = mine.get(f"/review/{third}/")

    assert page.context["place"].previous_id == first
    assert Upload.objects.get(pk=taken).review_claimed_by == second_reviewer
