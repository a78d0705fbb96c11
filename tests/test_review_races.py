"""Two reviewers (or a reviewer and an owner) acting on the same picture at the same moment.

Real commits and two connections (transactional tests) on PostgreSQL, where row locks are taken and waited for as
in production (SQLite has one writer at a time, so these races cannot happen there).
"""

from __future__ import annotations

import contextlib
import html
import re
import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from phoneapp.models import Upload
from phoneapp.services import reviews
from phoneapp.services.ground_truth import ground_truth_restore
from phoneapp.services.reviews import (
    ReviewConflict,
    upload_review_decide,
    upload_review_state,
    uploads_review_restore,
)
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.web import review as review_views
from tests.factories import client_for, make_upload
from tests.live_services import postgres_require
from tests.races import at_once, stop_after_the_first_lock


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_two_uploads_of_one_picture_at_once_are_answered_a_conflict_not_a_deadlock(
    alice: User, bob: User, reviewer: User, second_reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice and Bob sent the same picture; two reviewers, each shown one of the uploads, decide at the same moment
    with different labels. One decision is saved on both uploads, the other is refused as a conflict (409). Each
    used to lock its own upload and then wait for the other's: PostgreSQL broke the deadlock by failing one
    decision with an OperationalError, which the site answers as an outage (503)."""
    postgres_require(connection)
    both_looked = threading.Barrier(2, timeout=1.5)
    is_second_opinion = reviews._is_second_opinion

    def meet_the_other_reviewer_first(**kwargs: Any) -> bool:
        # Both have locked what they lock before looking at the picture's review (or one waits for the other's).
        with contextlib.suppress(threading.BrokenBarrierError):  # the other waits for this one's lock
            both_looked.wait()
        return is_second_opinion(**kwargs)

    monkeypatch.setattr(reviews, "_is_second_opinion", meet_the_other_reviewer_first)
    alices = make_upload(alice, probability=0.5, sha256="c" * 64)
    bobs = make_upload(bob, probability=0.5, sha256="c" * 64)
    alices_seen, bobs_seen = upload_review_state(upload=alices), upload_review_state(upload=bobs)

    outcomes = at_once(
        lambda: upload_review_decide(upload=alices, decision="phone", reviewer=reviewer, seen_state=alices_seen),
        lambda: upload_review_decide(upload=bobs, decision="not_phone", reviewer=second_reviewer, seen_state=bobs_seen),
    )

    errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert [type(error) for error in errors] == [ReviewConflict], errors
    [saved] = [outcome for outcome in outcomes if isinstance(outcome, reviews.ReviewDecision)]
    labels = set(Upload.objects.filter(sha256="c" * 64).values_list("reviewed_label", flat=True))
    assert labels == {saved.label}


@pytest.mark.django_db
def test_a_decision_on_a_picture_its_owner_deletes_meanwhile_is_answered_not_found_not_a_server_error(
    alice: User, reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner deletes the upload between the decision's read of it and its lock (or while the deletion holds the
    row): the decision saves nothing and answers 404, as one sent a moment later does; it was an unhandled
    ``Upload.DoesNotExist``, a 500."""
    upload = make_upload(alice, probability=0.9)
    read_upload = review_views.review_upload_get

    def read_then_deleted_by_its_owner(*, upload_id: int) -> Upload:
        found = read_upload(upload_id=upload_id)
        if Upload.objects.filter(pk=upload_id).exists():
            upload_delete(upload=found)
        return found

    monkeypatch.setattr(review_views, "review_upload_get", read_then_deleted_by_its_owner)
    client = client_for(reviewer)
    client.raise_request_exception = False

    answer = client.post(f"/review/{upload.pk}/decide", {"decision": "phone"})

    assert answer.status_code == 404
    assert not Upload.objects.filter(pk=upload.pk).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("undone", ["review", "ground truth"])
def test_an_undo_and_another_reviewers_decision_on_the_same_picture_at_once_both_go_through(
    undone: str, alice: User, bob: User, reviewer: User, second_reviewer: User
) -> None:
    """A reviewer takes back a decision on a picture sent three times (the review, or the ground truth set with it)
    while another reviewer decides on it. The undo updated the uploads one by one, newest first; the decision locks
    them oldest first: each held a row the other waited for, and PostgreSQL failed one (a 503). The undo now locks
    them in the decision's order first, so one waits for the other. Made to happen every time: the undo stops after
    its first statement until the decision waits for a row it holds."""
    postgres_require(connection)
    uploads = [make_upload(owner, probability=0.5, sha256="d" * 64) for owner in (alice, bob, alice)]
    decided = upload_review_decide(upload=uploads[0], decision="phone", reviewer=reviewer, as_ground_truth=True)
    undo_holds_a_row = threading.Event()

    def undo() -> int:
        with connection.execute_wrapper(stop_after_the_first_lock(undo_holds_a_row)):
            if undone == "review":
                return uploads_review_restore(prior=decided.prior, reviewer=reviewer)
            return ground_truth_restore(prior=decided.prior_ground_truth, by=reviewer)

    def decide_once_the_undo_started() -> object:
        undo_holds_a_row.wait(timeout=5)
        return upload_review_decide(upload=uploads[1], decision="not_phone", reviewer=second_reviewer)

    outcomes = at_once(undo, decide_once_the_undo_started)

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    assert outcomes[0] == 3


@pytest.mark.django_db
def test_an_admin_form_opened_before_another_reviewers_decision_does_not_overwrite_it(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """Rita opens a picture in the admin to draw its boxes; meanwhile Sam decides "not a phone" in the review queue.
    Rita's form still says "phone" and is sent with it: the admin read that as a relabelling and put "phone" back
    over Sam's decision, unseen (the queue refuses such a stale decision with a 409). The form is shown again,
    saying who decided meanwhile, and nothing is saved."""
    upload = make_upload(alice, probability=0.55, reviewed="phone", reviewer=reviewer)
    staff = client_for(reviewer)
    form_page = staff.get(f"/admin/phoneapp/upload/{upload.pk}/change/").content.decode()
    form = dict(re.findall(r'<input type="hidden" name="(review_seen)" value="([^"]*)"', form_page))
    upload_review_decide(
        upload=upload, decision="not_phone", reviewer=second_reviewer, seen_state=upload_review_state(upload=upload)
    )

    answer = staff.post(
        f"/admin/phoneapp/upload/{upload.pk}/change/",
        {**form, "reviewed_label": "phone", "reviewed_boxes": '[{"box": [0.1, 0.1, 0.5, 0.5]}]'},
    )

    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.reviewed_by, upload.reviewed_boxes) == ("not_phone", second_reviewer, None)
    assert answer.status_code == 200
    assert "sam decided on this picture while you had it open" in html.unescape(answer.content.decode())
