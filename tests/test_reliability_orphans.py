"""A second delivery of an upload a live worker is on does nothing; an upload whose worker died is taken back
within seconds (worker heartbeats, phoneapp/services/worker_presence.py); two sweeps never run at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.utils import timezone

from phoneapp.models import Upload, UploadStatus
from phoneapp.services import worker_presence
from phoneapp.services.classification import upload_classify, uploads_requeue_stale
from phoneapp.services.uploads import uploads_create
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_heatmaps(heatmaps_off: None) -> None:
    """Overlays play no part here."""


def processing_upload(alice: User, *, claimed_seconds_ago: float, color: int = 10) -> Upload:
    """An upload a worker claimed ``claimed_seconds_ago`` and has not finished (as if it is on it, or died)."""
    [upload] = uploads_create(owner=alice, files=[uploaded_file(f"{color}.jpg", picture_bytes(color=(color, 9, 9)))])
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING,
        processing_started=timezone.now() - timedelta(seconds=claimed_seconds_ago),
        attempts=1,
        predicted_label="",
        probability=None,
        model_version=None,
        processed=None,
    )
    return Upload.objects.get(pk=upload.pk)


@pytest.fixture
def heartbeats(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The live workers' heartbeats, as the services read them (edit the dict to say who is on what)."""
    alive: dict[str, list[int]] = {}
    monkeypatch.setattr(worker_presence, "workers_alive", lambda: alive)
    return alive


def test_second_delivery_of_an_upload_a_live_worker_is_on_does_nothing(
    alice: User, heartbeats: dict[str, list[int]]
) -> None:
    upload = processing_upload(alice, claimed_seconds_ago=60)
    heartbeats["worker-a"] = [upload.pk]

    assert upload_classify(upload_id=upload.pk, worker="worker-b") is None

    upload.refresh_from_db()
    assert (upload.status, upload.attempts) == (UploadStatus.PROCESSING, 1)


def test_second_delivery_right_after_the_claim_does_nothing_even_before_the_heartbeat_lists_it(
    alice: User, heartbeats: dict[str, list[int]]
) -> None:
    upload = processing_upload(alice, claimed_seconds_ago=1)

    assert upload_classify(upload_id=upload.pk, worker="worker-b") is None
    assert Upload.objects.get(pk=upload.pk).attempts == 1


def test_upload_whose_worker_died_is_taken_by_the_next_delivery(alice: User, heartbeats: dict[str, list[int]]) -> None:
    upload = processing_upload(alice, claimed_seconds_ago=15)
    heartbeats["worker-b"] = []  # alive, on nothing: worker-a's heartbeat expired

    done = upload_classify(upload_id=upload.pk, worker="worker-b")

    assert done is not None and done.status == UploadStatus.DONE
    assert Upload.objects.get(pk=upload.pk).attempts == 2


def test_a_retry_or_a_handed_back_message_continues_its_own_attempt(
    alice: User, heartbeats: dict[str, list[int]]
) -> None:
    upload = processing_upload(alice, claimed_seconds_ago=1)

    done = upload_classify(upload_id=upload.pk, takeover=True, worker="worker-a")

    assert done is not None and done.status == UploadStatus.DONE


def test_an_orphan_another_worker_takes_over_while_this_one_decides_is_left_to_it(
    alice: User, heartbeats: dict[str, list[int]]
) -> None:
    """Two deliveries find the same orphan: the one that claims it second claims nothing (one attempt counted)."""
    upload = processing_upload(alice, claimed_seconds_ago=15)
    taken_over: list[int] = []

    def other_worker_claims_after_the_first_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not taken_over and sql.startswith("SELECT") and "phoneapp_upload" in sql:
            taken_over.append(upload.pk)
            Upload.objects.filter(pk=upload.pk).update(processing_started=timezone.now(), attempts=F("attempts") + 1)
        return result

    with connection.execute_wrapper(other_worker_claims_after_the_first_read):
        assert upload_classify(upload_id=upload.pk, worker="worker-b") is None

    assert taken_over == [upload.pk]
    stored = Upload.objects.get(pk=upload.pk)
    assert (stored.status, stored.attempts) == (UploadStatus.PROCESSING, 2)


def test_sweep_takes_back_orphans_within_seconds_and_leaves_live_workers_alone(
    alice: User, heartbeats: dict[str, list[int]], settings
) -> None:
    settings.PROCESSING_TIMEOUT_SECONDS = 300
    orphan = processing_upload(alice, claimed_seconds_ago=12, color=1)
    busy = processing_upload(alice, claimed_seconds_ago=12, color=2)
    fresh = processing_upload(alice, claimed_seconds_ago=2, color=3)
    heartbeats["worker-a"] = [busy.pk]

    sent = uploads_requeue_stale()

    assert sent == 1
    assert Upload.objects.get(pk=orphan.pk).status == UploadStatus.DONE
    assert Upload.objects.get(pk=busy.pk).status == UploadStatus.PROCESSING
    assert Upload.objects.get(pk=fresh.pk).status == UploadStatus.PROCESSING


def test_without_heartbeats_to_read_only_the_processing_timeout_takes_uploads_back(
    alice: User, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    monkeypatch.setattr(worker_presence, "workers_alive", lambda: None)  # no Redis broker, or Redis unreachable
    settings.PROCESSING_TIMEOUT_SECONDS = 300
    recent = processing_upload(alice, claimed_seconds_ago=60, color=1)
    timed_out = processing_upload(alice, claimed_seconds_ago=400, color=2)

    assert uploads_requeue_stale() == 1
    assert Upload.objects.get(pk=recent.pk).status == UploadStatus.PROCESSING
    assert Upload.objects.get(pk=timed_out.pk).status == UploadStatus.DONE


def test_heartbeats_round_trip_through_redis_and_expire(redis_broker: str) -> None:
    worker_presence.worker_heartbeat_write(hostname="worker-a", upload_ids=[3, 1])
    worker_presence.worker_heartbeat_write(hostname="worker-b", upload_ids=[])

    assert worker_presence.workers_alive() == {"worker-a": [1, 3], "worker-b": []}
    assert worker_presence.uploads_being_classified(except_worker="worker-a") == set()
    redis = worker_presence.broker_redis()
    assert redis is not None
    ttl = redis.ttl(worker_presence.HEARTBEAT_PREFIX + "worker-a")
    assert 0 < ttl <= worker_presence.HEARTBEAT_TTL
    worker_presence.worker_heartbeat_clear(hostname="worker-a")
    assert set(worker_presence.workers_alive() or {}) == {"worker-b"}


def test_a_worker_beating_slower_than_the_default_is_not_seen_dead_between_two_beats(
    redis_broker: str, settings
) -> None:
    settings.WORKER_HEARTBEAT_SECONDS = 5.0
    worker_presence.worker_heartbeat_write(hostname="worker-a", upload_ids=[3])
    redis = worker_presence.broker_redis()
    assert redis is not None
    # The key must still be there when the next beat comes, and after a missed one or two.
    assert redis.ttl(worker_presence.HEARTBEAT_PREFIX + "worker-a") >= 3 * 5


def test_holdings_outlive_the_heartbeat_and_a_clean_stop_clears_them(redis_broker: str, settings) -> None:
    settings.PROCESSING_TIMEOUT_SECONDS = 300
    worker_presence.worker_heartbeat_write(hostname="worker-a", upload_ids=[3], held_ids=[4])
    worker_presence.worker_heartbeat_write(hostname="worker-b", upload_ids=[], held_ids=[7])
    redis = worker_presence.broker_redis()
    assert redis is not None
    assert 8 < redis.ttl(worker_presence.HOLDINGS_PREFIX + "worker-a") <= 300
    assert worker_presence.uploads_held_by_dead_workers() == {}  # both alive

    redis.delete(worker_presence.HEARTBEAT_PREFIX + "worker-a")  # its heartbeat expired: killed
    assert worker_presence.uploads_held_by_dead_workers() == {"worker-a": [3, 4]}  # in hand and not started
    worker_presence.worker_heartbeat_clear(hostname="worker-b")  # a clean stop leaves nothing behind
    worker_presence.worker_heartbeat_write(hostname="worker-c", upload_ids=[], held_ids=[])
    assert worker_presence.uploads_held_by_dead_workers() == {"worker-a": [3, 4]}
    assert not redis.exists(worker_presence.HOLDINGS_PREFIX + "worker-c")


def test_sweep_sends_at_once_the_pending_uploads_a_dead_worker_had_received(
    alice: User, redis_broker: str, monkeypatch, settings
) -> None:
    """A prefork worker takes a message per process; one killed before claiming its upload leaves it ``pending``
    with a recent ``queued_at``, which the broker hands back only after its visibility timeout (10 minutes)."""
    settings.PROCESSING_TIMEOUT_SECONDS = 300
    sends: list[list[int]] = []

    def enqueue(*, upload_ids: list[int]) -> int:
        sends.append(list(upload_ids))
        return len(upload_ids)

    monkeypatch.setattr("phoneapp.services.classification.classification_enqueue", enqueue)
    uploads = uploads_create(
        owner=alice, files=[uploaded_file(f"{n}.jpg", picture_bytes(color=(n, 9, 9))) for n in (1, 2, 3)]
    )
    lost, with_live_worker, in_queue = (upload.pk for upload in uploads)
    Upload.objects.filter(pk__in=[lost, with_live_worker, in_queue]).update(
        status=UploadStatus.PENDING, queued_at=timezone.now() - timedelta(seconds=20)
    )
    worker_presence.worker_heartbeat_write(hostname="killed", upload_ids=[], held_ids=[lost])
    worker_presence.worker_heartbeat_write(hostname="alive", upload_ids=[], held_ids=[with_live_worker])
    redis = worker_presence.broker_redis()
    assert redis is not None
    redis.delete(worker_presence.HEARTBEAT_PREFIX + "killed")

    assert uploads_requeue_stale() == 1
    assert sends == [[lost]]
    assert uploads_requeue_stale() == 0  # sent once: the dead worker's holdings are done with
    assert worker_presence.uploads_held_by_dead_workers() == {}


def test_a_sweep_does_nothing_while_another_holds_the_lock(alice: User, redis_broker: str, monkeypatch) -> None:
    sends: list[list[int]] = []

    def enqueue(*, upload_ids: list[int]) -> int:
        sends.append(list(upload_ids))
        return len(upload_ids)

    monkeypatch.setattr("phoneapp.services.classification.classification_enqueue", enqueue)
    Upload.objects.all().delete()
    processing_upload(alice, claimed_seconds_ago=400)
    client = worker_presence.broker_redis()
    assert client is not None
    other_sweep = client.lock(worker_presence.SWEEP_LOCK_KEY, timeout=30)
    assert other_sweep.acquire(blocking=False)
    try:
        assert uploads_requeue_stale() == 0
        assert sends == []
    finally:
        other_sweep.release()

    assert uploads_requeue_stale() == 1
    assert len(sends) == 1


def test_a_worker_lists_in_hand_what_its_processes_run_and_holds_also_what_they_have_not_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import weakref

    from celery.worker import state

    from phoneapp import celery as worker_app

    class Request:
        def __init__(self, name: str, *args: object) -> None:
            self.name, self.args = name, args

    running = Request("phoneapp.tasks.upload_classify_task", 5)
    received = Request("phoneapp.tasks.upload_classify_task", 6)
    sweep = Request("phoneapp.tasks.uploads_requeue_stale_task")
    # Celery keeps a request in ``reserved_requests`` from its receipt until it is done, and in ``active_requests``
    # once a pool process has accepted it.
    monkeypatch.setattr(state, "reserved_requests", weakref.WeakSet([running, received, sweep]))
    monkeypatch.setattr(state, "active_requests", weakref.WeakSet([running, sweep]))

    in_hand, held = worker_app._uploads_of_this_worker()

    assert in_hand == [5]
    assert sorted(held) == [5, 6]
