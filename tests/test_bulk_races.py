"""Staff's bulk actions (the admin's actions on a selection, an account's deletion) and other writers on the same
uploads at the same moment.

Real commits and two connections (transactional tests) on PostgreSQL, where row locks are taken and waited for as
in production (SQLite has one writer at a time, so these races cannot happen there). Every writer of several
uploads locks them in one order, by id (as a review decision does: ``phoneapp.services.reviews._picture_lock``),
so two writers take turns instead of each holding a row the other waits for, which PostgreSQL ends by failing one
of them (an error page).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from phoneapp.models import Label, Upload
from phoneapp.services.ground_truth import GroundTruthOutcome, uploads_mark_ground_truth
from tests.factories import make_upload
from tests.live_services import postgres_require
from tests.test_review_races import another_connection_waits_for_a_lock, at_once


def stop_after_the_first_lock(locked: threading.Event) -> Callable[..., Any]:
    """An ``execute_wrapper`` that, after the connection's first statement taking row locks, sets ``locked`` and
    waits (up to 5 s) until another connection waits for a lock: the moment the other writer is stuck behind it."""

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if "UPDATE" in sql and not locked.is_set():  # an UPDATE, a DELETE's SELECT ... FOR UPDATE
            locked.set()
            deadline = time.monotonic() + 5
            while not another_connection_waits_for_a_lock() and time.monotonic() < deadline:
                time.sleep(0.02)
        return result

    return wrapper


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
