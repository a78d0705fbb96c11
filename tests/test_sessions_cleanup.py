"""Sign-in sessions past their end leave the database (celery beat, daily), those of a deleted account included."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.utils import timezone

from tests.factories import client_for

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture

pytestmark = pytest.mark.django_db


def sessions_of(user_id: int) -> list[Session]:
    return [row for row in Session.objects.all() if row.get_decoded().get("_auth_user_id") == str(user_id)]


def test_a_deleted_accounts_other_sessions_are_gone_once_expired_not_kept_for_good(alice: User, bob: User) -> None:
    from phoneapp.tasks import sessions_clear_expired_task

    here, elsewhere = client_for(alice), client_for(alice)
    client_for(bob)
    alice_id = alice.pk
    deleted = here.post("/account/delete/", {"password": "alice-password-1"})
    assert deleted.status_code == 302
    assert elsewhere.get("/account/").status_code == 302  # refused at once: signed out
    [kept] = sessions_of(alice_id)  # ...but its row stayed (Django never deletes an expired session itself)

    # Two weeks on (SESSION_COOKIE_AGE), the daily sweep runs.
    Session.objects.filter(pk=kept.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    sessions_clear_expired_task()

    assert sessions_of(alice_id) == []
    assert len(sessions_of(bob.pk)) == 1  # a live session stays


def test_the_session_sweep_is_on_the_beat_schedule(settings: SettingsFixture) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "phoneapp.tasks.sessions_clear_expired_task" in tasks


def test_housekeeping_runs_when_beat_starts_not_one_whole_interval_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery runs a task new to beat's schedule file one interval after the start: a beat restarted daily with a
    fresh file (the Procfile keeps it in the working directory) never cleared a session (soak test, helper-93)."""
    from celery import beat
    from celery.signals import beat_init

    from phoneapp.celery import app

    sent: list[str] = []
    monkeypatch.setattr(app, "send_task", lambda name, *args, **kwargs: sent.append(name))
    scheduler = beat.Scheduler(app, lazy=False)  # no schedule file yet: a new working directory
    beat_init.send(sender=scheduler)
    due_at_start = [entry.task for entry in scheduler.schedule.values() if entry.is_due().is_due]

    assert {
        "phoneapp.tasks.sessions_clear_expired_task",
        "phoneapp.tasks.upload_requests_forget_expired_task",
        "phoneapp.tasks.uploads_delete_expired_task",
    } <= set(sent + due_at_start)
    assert "phoneapp.tasks.uploads_requeue_stale_task" not in sent  # every 10 s anyway
