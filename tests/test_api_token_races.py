"""Two token regenerations for one user at once (a double click, two scripts): both answer, one key works.

Real commits and two database connections, on PostgreSQL (a SQLite in-memory test database cannot hold two
writing threads).
"""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection

from phoneapp.models import ApiToken
from phoneapp.services import api_tokens
from phoneapp.services.api_tokens import api_token_authenticate, api_token_regenerate
from tests.live_services import postgres_require

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_regenerations_at_once_both_answer_and_leave_one_working_key(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_require(connection)
    api_token_regenerate(user=alice)
    # Both calls meet just before inserting, when both would have deleted the old token without the user's lock;
    # with it the second waits for the first to commit, and the meeting times out.
    meeting = threading.Barrier(2, timeout=1.5)
    create = ApiToken.objects.create

    def create_after_meeting(**fields: object) -> ApiToken:
        with contextlib.suppress(threading.BrokenBarrierError):
            meeting.wait()
        return create(**fields)

    monkeypatch.setattr(api_tokens.ApiToken.objects, "create", create_after_meeting)
    keys: list[str] = []
    errors: list[BaseException] = []

    def regenerate() -> None:
        try:
            keys.append(api_token_regenerate(user=alice))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=regenerate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(keys) == 2
    assert ApiToken.objects.filter(user=alice).count() == 1
    assert [api_token_authenticate(key=key) for key in keys].count(alice) == 1
