"""Password guessing is throttled per account and per address on every login door (page, admin, backend)."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

GUESSER = "203.0.113.7"
OTHER_ADDRESS = "198.51.100.20"


def try_login(path: str, username: str, password: str, *, address: str = GUESSER) -> int:
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password}).status_code


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_eleventh_wrong_password_in_a_minute_is_refused(path: str, reviewer: User) -> None:
    wrong = [try_login(path, "rita", f"guess-{n}") for n in range(10)]
    eleventh = Client(REMOTE_ADDR=GUESSER).post(path, {"username": "rita", "password": "guess-11"})

    assert wrong == [200] * 10  # the form again, "didn't match"
    assert eleventh.status_code == 429
    assert "Too many failed logins" in eleventh.content.decode()
    assert 1 <= int(eleventh["Retry-After"]) <= 60


def test_the_token_endpoint_refuses_the_eleventh_wrong_password_with_429_json(alice: User) -> None:
    wrong = [try_login("/api/token/", "alice", f"guess-{n}") for n in range(10)]
    eleventh = Client(REMOTE_ADDR=GUESSER).post("/api/token/", {"username": "alice", "password": "alice-password-1"})

    assert wrong == [400] * 10  # DRF's "unable to log in" for a wrong password
    assert eleventh.status_code == 429
    assert "Too many failed logins" in eleventh.json()["error"]
    assert 1 <= int(eleventh["Retry-After"]) <= 60
    assert "token" not in eleventh.json()


def test_while_refused_even_the_right_password_from_elsewhere_does_not_log_in(alice: User) -> None:
    for n in range(10):
        try_login("/accounts/login/", "alice", f"guess-{n}")
    client = Client(REMOTE_ADDR=OTHER_ADDRESS)

    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 429  # per account: another address does not help the guesser
    assert "_auth_user_id" not in client.session


def test_one_address_guessing_many_accounts_is_refused_too(alice: User, bob: User) -> None:
    statuses = [try_login("/accounts/login/", f"user{n}", "guess") for n in range(10)]

    assert statuses == [200] * 10
    assert try_login("/accounts/login/", "bob", "bob-password-1") == 429
    # Bob himself, from his own address, is not affected.
    assert try_login("/accounts/login/", "bob", "bob-password-1", address=OTHER_ADDRESS) == 302


def test_a_few_mistakes_do_not_lock_anyone_out(alice: User) -> None:
    for n in range(9):
        try_login("/accounts/login/", "alice", f"typo-{n}")

    assert try_login("/accounts/login/", "alice", "alice-password-1") == 302


def test_every_password_check_is_throttled_even_without_the_decorator(alice: User, bob: User, rf) -> None:
    """A door that calls authenticate() directly (DRF's token endpoint does) is covered by the backend."""
    request = rf.post("/any-door/", REMOTE_ADDR=GUESSER)
    for n in range(10):
        assert authenticate(request, username="alice", password=f"guess-{n}") is None

    assert (
        authenticate(rf.post("/any-door/", REMOTE_ADDR=GUESSER), username="alice", password="alice-password-1") is None
    )
    # Another person, from another address, is not caught by alice's guesser.
    assert (
        authenticate(rf.post("/any-door/", REMOTE_ADDR="192.0.2.77"), username="bob", password="bob-password-1") == bob
    )


def test_limit_is_configurable(alice: User, settings) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/minute"
    statuses = [try_login("/accounts/login/", "alice", f"guess-{n}") for n in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw(alice: User, bob: User, settings) -> None:
    """The client may prepend anything to X-Forwarded-For; only the last entry (our proxy's) counts."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for n in range(10):
        forged = f"10.0.0.{n}, {GUESSER}"
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forged, HTTP_X_FORWARDED_PROTO="https").post(
            "/accounts/login/", {"username": f"user{n}", "password": "guess"}, secure=True
        )

    refused = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.9.9.9, {GUESSER}").post(
        "/accounts/login/", {"username": "alice", "password": "alice-password-1"}, secure=True
    )
    assert refused.status_code == 429
    # Everyone comes through the same proxy (REMOTE_ADDR): someone else, seen by the proxy at another address, still
    # logs in. Counting by REMOTE_ADDR would lock every user out after one guesser's ten tries.
    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"{GUESSER}, 198.51.100.23").post(
        "/accounts/login/", {"username": "bob", "password": "bob-password-1"}, secure=True
    )
    assert other.status_code == 302


def test_guesses_sent_at_once_are_counted_before_their_passwords_are_checked(
    alice: User, rf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 wrong passwords sent in parallel all reached the password check (the count was read before the hash and
    the failure added after it), and the right one came in behind them. Here each attempt's password check starts
    the next attempt before it ends -- 30 attempts in flight at once, without threads."""
    from django.contrib.auth.backends import ModelBackend

    checked: list[str] = []
    real_check = ModelBackend.authenticate

    def check_while_others_arrive(self, request, username=None, password=None, **kwargs):
        checked.append(password)
        if len(checked) < 30:
            authenticate(request, username="alice", password=f"guess-{len(checked)}")
        return real_check(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", check_while_others_arrive)
    request = rf.post("/accounts/login/", REMOTE_ADDR=GUESSER)

    authenticate(request, username="alice", password="guess-0")

    assert len(checked) == 10  # LOGIN_FAILURE_LIMIT: the 11th in flight is refused before its hash
    monkeypatch.setattr(ModelBackend, "authenticate", real_check)  # only this one: the throttle's clock stays
    assert authenticate(rf.post("/", REMOTE_ADDR=OTHER_ADDRESS), username="alice", password="alice-password-1") is None


def test_right_passwords_are_not_counted_as_failures(alice: User) -> None:
    """Every attempt is counted before its password is checked; a right one is given back, so signing in often
    (a script asking for a token, a shared office address) never locks anyone out."""
    statuses = [try_login("/api/token/", "alice", "alice-password-1") for _ in range(12)]

    assert statuses == [200] * 12


def test_an_attempt_whose_password_could_not_be_checked_is_not_a_failure(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database blip during the check left each attempt counted: clients retrying with the right password through
    a 30-second outage were locked out for a window after the database came back."""
    from django.contrib.auth.backends import ModelBackend
    from django.db import OperationalError

    def database_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("could not connect to server")

    real_check = ModelBackend.authenticate
    monkeypatch.setattr(ModelBackend, "authenticate", database_down)
    during_the_outage = [try_login("/api/token/", "alice", "alice-password-1") for _ in range(12)]
    monkeypatch.setattr(ModelBackend, "authenticate", real_check)  # the database is back; same window

    assert during_the_outage == [503] * 12

    assert try_login("/api/token/", "alice", "alice-password-1") == 200


def test_a_lock_ends_with_its_window_even_where_the_cache_keeps_the_counter(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis's EXISTS-then-INCRBY (a key expiring in between comes back without an expiry) and the database cache's
    read-then-write (which resets the expiry) could keep a counter past its window: an account locked for good.
    Each window counts in its own key, so the clock alone ends a lock; here the cache's clock stands still."""
    from phoneapp.services import login_attempts

    now = [1_000_000_040.0]  # 20 s into a minute
    monkeypatch.setattr(login_attempts, "time", type("Clock", (), {"time": staticmethod(lambda: now[0])}))
    for n in range(10):
        try_login("/accounts/login/", "alice", f"guess-{n}")
    assert try_login("/accounts/login/", "alice", "alice-password-1") == 429

    now[0] += 41  # the next minute; every counter is still in the cache

    assert try_login("/accounts/login/", "alice", "alice-password-1") == 302
