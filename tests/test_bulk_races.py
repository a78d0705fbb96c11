"""Staff's bulk actions (the admin's actions on a selection, an account's deletion) and other writers on the same
uploads at the same moment.

Real commits and two connections (transactional tests) on PostgreSQL, where row locks are taken and waited for as
in production (SQLite has one writer at a time, so these races cannot happen there). Every writer of several
uploads locks them in one order, by id (``phoneapp.services.upload_locks``, as a review decision does),
so two writers take turns instead of each holding a row the other waits for, which PostgreSQL ends by failing one
of them (an error page).
"""

from __future__ import annotations

import itertools
import random
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction

from phoneapp.errors import UploadNotFound
from phoneapp.models import Label, Upload, UploadStatus
from phoneapp.services import upload_deletion
from phoneapp.services.accounts import DeletedAccount, account_delete
from phoneapp.services.ground_truth import (
    GroundTruthOutcome,
    uploads_mark_ground_truth,
    uploads_unmark_ground_truth,
)
from phoneapp.services.reviews import upload_review_decide
from tests.factories import make_upload
from tests.live_services import postgres_require
from tests.races import at_once, connections_waiting_for_a_lock, stop_after_the_first_lock, until


def iterated(shas: list[str], *, shuffle: random.Random) -> list[str]:
    """The order in which a set of (sha256, reviewed label) pairs, as the ground-truth action once gathered them,
    gives back the pictures ``shas`` (unreviewed), added in a shuffled order."""
    pairs = [(sha, "") for sha in shas]
    shuffle.shuffle(pairs)
    return [sha for sha, _ in set(pairs)]


def two_pictures_iterated_in_opposite_orders() -> tuple[str, str, list[str]]:
    """Pictures ``first`` and ``second``, and six more, such that a set of the two gives ``first`` first and a set of
    all eight (a larger table) gives ``second`` first, whatever order they were added in: two staff's overlapping
    selections walked in opposite orders, as any two selections of different sizes may be (and the same one in
    two web processes, whose string hashes differ)."""
    others = [f"{index:064x}" for index in range(1, 7)]
    shuffle = random.Random(0)
    for index in itertools.count():
        first, second = f"a{index:063x}", f"b{index:063x}"
        small = [iterated([first, second], shuffle=shuffle) for _ in range(20)]
        large = [iterated([first, second, *others], shuffle=shuffle) for _ in range(20)]
        if all(order == [first, second] for order in small) and all(
            order.index(second) < order.index(first) for order in large
        ):
            return first, second, others
    raise AssertionError("unreachable")


@pytest.mark.django_db(transaction=True)
def test_two_staff_marking_overlapping_selections_as_ground_truth_at_once_take_turns_instead_of_deadlocking(
    alice: User, bob: User, reviewer: User, second_reviewer: User
) -> None:
    """Rita marks two pictures as ground truth "phone" in the admin while Sam marks those two and six more "not a
    phone". Each picture's uploads were updated one picture after another, in the order of a Python set, which
    differs between selections (and web processes): Rita held the first picture's rows and waited for the second's,
    which Sam held while waiting for the first's, and PostgreSQL failed one of them (an error page). Every upload
    of the selected pictures is now locked first, in id order, so one waits for the other."""
    postgres_require(connection)
    first, second, others = two_pictures_iterated_in_opposite_orders()
    for sha in (first, second):
        make_upload(alice, probability=0.5, sha256=sha)
        make_upload(bob, probability=0.5, sha256=sha)
    for sha in others:
        make_upload(alice, probability=0.5, sha256=sha)
    ritas_holds_a_picture = threading.Event()

    def rita() -> object:
        with connection.execute_wrapper(stop_after_the_first_lock(ritas_holds_a_picture)):
            selection = Upload.objects.filter(sha256__in=[first, second], owner=alice)
            return uploads_mark_ground_truth(uploads=selection, by=reviewer, label=Label.PHONE)

    def sam_once_rita_started() -> object:
        ritas_holds_a_picture.wait(timeout=5)
        selection = Upload.objects.filter(owner=alice)
        return uploads_mark_ground_truth(uploads=selection, by=second_reviewer, label=Label.NOT_PHONE)

    outcomes = at_once(rita, sam_once_rita_started)

    assert outcomes == [GroundTruthOutcome(marked=2, left_alone=0), GroundTruthOutcome(marked=8, left_alone=0)]
    truths = set(Upload.objects.filter(sha256__in=[first, second]).values_list("ground_truth_label", flat=True))
    assert truths == {Label.NOT_PHONE}  # Sam's, saved after Rita's


@pytest.mark.django_db(transaction=True)
def test_removing_a_picture_from_ground_truth_while_a_reviewer_decides_on_it_takes_turns_instead_of_deadlocking(
    alice: User, bob: User, reviewer: User, second_reviewer: User
) -> None:
    """Rita removes a picture sent twice from ground truth in the admin while Sam decides on it in the queue. The
    removal was one UPDATE, which locks the rows in the order it finds them (not id order once a row was updated);
    the decision locks them in id order: each could hold a row the other waited for, and PostgreSQL failed one.
    The removal now locks the picture's uploads in id order first, as marking does. Made to happen every time: a
    third transaction holds the older upload until the decision waits for it, then the removal."""
    postgres_require(connection)
    older = make_upload(alice, probability=0.9, sha256="f" * 64)
    newer = make_upload(bob, probability=0.9, sha256="f" * 64)
    uploads_mark_ground_truth(uploads=Upload.objects.filter(pk=older.pk), by=reviewer, label=Label.PHONE)
    # Classified again (an indexed column changed, so the row moved in the sha256 index too): stored after the newer.
    for status in (UploadStatus.PENDING, UploadStatus.DONE):
        Upload.objects.filter(pk=older.pk).update(status=status)
    assert list(Upload.objects.filter(sha256__in=["f" * 64]).order_by().values_list("pk", flat=True)) == [
        newer.pk,
        older.pk,
    ]
    holding = threading.Event()

    def hold_the_older_upload_until_both_wait() -> object:
        with transaction.atomic():
            list(Upload.objects.select_for_update().filter(pk=older.pk))
            holding.set()
            until(lambda: connections_waiting_for_a_lock() >= 2)
        return None

    def decide() -> object:
        holding.wait(timeout=5)
        return upload_review_decide(upload=newer, decision="not_phone", reviewer=second_reviewer)

    def remove_once_the_decision_waits() -> object:
        holding.wait(timeout=5)
        until(lambda: connections_waiting_for_a_lock() >= 1)
        return uploads_unmark_ground_truth(uploads=Upload.objects.filter(pk=older.pk))

    outcomes = at_once(hold_the_older_upload_until_both_wait, decide, remove_once_the_decision_waits)

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    assert outcomes[2] == 2
    assert set(Upload.objects.filter(sha256="f" * 64).values_list("ground_truth_label", "reviewed_label")) == {
        ("", Label.NOT_PHONE)
    }


@pytest.mark.django_db(transaction=True)
def test_deleting_an_account_while_a_reviewer_decides_on_two_of_its_uploads_takes_turns_instead_of_deadlocking(
    alice: User, reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice deletes her account (over 500 pictures, deleted in batches, one transaction) while a reviewer decides
    on a picture she sent twice. The batches were cut from her uploads in the order the database found them, which
    is not id order once rows have been updated (a verdict, a review), and each batch's locks are held until the
    account is gone: the deletion held the newer copy and waited for the older one, which the decision (locking a
    picture's uploads in id order) held while waiting for the newer. PostgreSQL failed one of them. The batches now
    go in id order, so the decision waits, then finds the picture deleted (a 404, as a moment later)."""
    postgres_require(connection)
    monkeypatch.setattr(upload_deletion, "BATCH_SIZE", 1)  # two batches of one, as 501 uploads make two
    older = make_upload(alice, probability=0.9, sha256="e" * 64)
    newer = make_upload(alice, probability=0.9, sha256="e" * 64)
    Upload.objects.filter(pk=older.pk).update(error="")  # its row version is now stored after the newer one's
    assert list(Upload.objects.filter(owner=alice).order_by().values_list("pk", flat=True)) == [newer.pk, older.pk]
    deletion_holds_an_upload = threading.Event()

    def delete_the_account() -> object:
        with connection.execute_wrapper(stop_after_the_first_lock(deletion_holds_an_upload)):
            return account_delete(user=User.objects.get(pk=alice.pk))

    def decide_once_the_deletion_started() -> object:
        deletion_holds_an_upload.wait(timeout=5)
        return upload_review_decide(upload=older, decision="phone", reviewer=reviewer)

    outcomes = at_once(delete_the_account, decide_once_the_deletion_started)

    assert outcomes[0] == DeletedAccount(pictures=2, had_api_token=False), outcomes
    assert isinstance(outcomes[1], UploadNotFound), outcomes
    assert not Upload.objects.filter(sha256="e" * 64).exists()
