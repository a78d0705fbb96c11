"""``make run`` asks for the first user on a new database, so a newcomer's two commands are enough to sign in."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tests.factories import make_user

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    """Standard input as a person at a terminal."""

    def isatty(self) -> bool:
        return True


def answers(*typed: str) -> Iterator[str]:
    yield from typed


def test_at_a_terminal_a_new_database_asks_for_the_first_user_and_makes_a_superuser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.contrib.auth.management.commands import createsuperuser

    monkeypatch.setattr("sys.stdin", Terminal())
    typed = answers("ada", "ada@example.com")
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    monkeypatch.setattr(createsuperuser.getpass, "getpass", lambda prompt="": "a-long-pass-phrase-7")
    out = io.StringIO()

    call_command("ensure_first_user", stdout=out)

    user = get_user_model().objects.get()
    assert (user.get_username(), user.is_superuser, user.is_staff) == ("ada", True, True)
    assert user.check_password("a-long-pass-phrase-7")
    assert "No user yet" in out.getvalue()


def test_without_a_terminal_it_only_says_how_to_create_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint names the interpreter the command runs under, relative to the project when it is inside it (pinned
    here: pytest-xdist's processes run ``.venv/bin/python3.11``, a plain run ``.venv/bin/python``)."""
    monkeypatch.setattr("sys.stdin", io.StringIO())
    monkeypatch.setattr("sys.executable", str(Path.cwd() / ".venv" / "bin" / "python"))
    out = io.StringIO()
    call_command("ensure_first_user", stdout=out)
    assert "Create one to sign in with:  .venv/bin/python manage.py createsuperuser" in out.getvalue()
    assert not get_user_model().objects.exists()


def test_once_there_is_a_user_it_asks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    make_user("existing")
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail("asked for a user"))
    out = io.StringIO()
    call_command("ensure_first_user", stdout=out)
    assert out.getvalue() == ""
    assert get_user_model().objects.count() == 1
