"""The per-user upload rate limit: one budget for the API and the web form, a clear 429, and never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.test import Client, RequestFactory

from phoneapp.models import Upload
from phoneapp.throttling import UploadRateThrottle
from tests.images import picture_bytes, uploaded_file

# Not transactional: nothing here needs a verdict, only the answer to each request.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def two_uploads_per_minute(settings) -> None:
    settings.UPLOAD_RATE_LIMIT = "2/minute"


def picture(index: int) -> object:
    return uploaded_file(f"p{index}.jpg", picture_bytes(color=(index * 30 % 256, 90, 160)))


def test_api_answers_429_with_retry_after_past_the_limit(alice_client: Client) -> None:
    statuses = [alice_client.post("/api/uploads/", {"image": picture(i)}).status_code for i in range(2)]
    refused = alice_client.post("/api/uploads/", {"image": picture(3)})

    assert statuses == [201, 201]
    assert refused.status_code == 429
    assert "throttled" in refused.json()["error"].lower()
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Upload.objects.count() == 2


def test_web_form_answers_429_with_a_message_past_the_limit(alice_client: Client) -> None:
    statuses = [alice_client.post("/", {"image": picture(i)}).status_code for i in range(2)]
    refused = alice_client.post("/", {"image": picture(3)})

    assert statuses == [302, 302]
    assert refused.status_code == 429
    assert "Too many uploads" in refused.content.decode()
    assert int(refused["Retry-After"]) >= 1
    assert Upload.objects.count() == 2


def test_api_and_web_form_share_one_budget(alice_client: Client) -> None:
    assert alice_client.post("/api/uploads/", {"image": picture(1)}).status_code == 201
    assert alice_client.post("/", {"image": picture(2)}).status_code == 302
    assert alice_client.post("/api/uploads/", {"image": picture(3)}).status_code == 429
    assert alice_client.post("/", {"image": picture(4)}).status_code == 429


@pytest.mark.parametrize("door", ["/api/uploads/", "/"])
def test_refused_uploads_spend_none_of_the_budget(door: str, alice_client: Client) -> None:
    """Bad input changes nothing, the rate budget included: two refused requests leave both pictures' worth."""
    not_a_picture = uploaded_file("notes.jpg", b"this is not a picture")
    for _ in range(2):
        assert alice_client.post(door, {"image": [picture(1), not_a_picture]}).status_code == 400

    assert alice_client.post(door, {"image": picture(2)}).status_code in (201, 302)
    assert alice_client.post(door, {"image": picture(3)}).status_code in (201, 302)
    assert alice_client.post(door, {"image": picture(4)}).status_code == 429


def test_one_users_limit_does_not_touch_another_user(alice_client: Client, bob_client: Client) -> None:
    for i in range(3):
        alice_client.post("/api/uploads/", {"image": picture(i)})
    assert bob_client.post("/api/uploads/", {"image": picture(9)}).status_code == 201


def test_reading_is_not_limited(alice_client: Client) -> None:
    for i in range(2):
        alice_client.post("/api/uploads/", {"image": picture(i)})
    assert all(alice_client.get("/api/uploads/").status_code == 200 for _ in range(5))


def test_limit_is_configurable(alice_client: Client, settings) -> None:
    settings.UPLOAD_RATE_LIMIT = "4/minute"
    statuses = [alice_client.post("/api/uploads/", {"image": picture(i)}).status_code for i in range(5)]
    assert statuses == [201, 201, 201, 201, 429]


def test_unreachable_cache_lets_uploads_through_instead_of_failing(alice: User, settings) -> None:
    """A Redis cache that is down (nothing listens on port 1) must not turn uploads into 500s."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    client = Client()
    client.force_login(alice)  # sessions live in the database, not the cache
    statuses = [client.post("/api/uploads/", {"image": picture(i)}).status_code for i in range(3)]
    assert statuses == [201, 201, 201]


def test_each_picture_of_a_request_counts_toward_the_limit(alice_client: Client, settings) -> None:
    """The limit protects the worker's time, so a request with three files spends three of the budget."""
    settings.UPLOAD_RATE_LIMIT = "3/minute"
    two = alice_client.post("/api/uploads/", {"image": [picture(1), picture(2)]})
    two_more = alice_client.post("/api/uploads/", {"image": [picture(3), picture(4)]})
    one_more = alice_client.post("/api/uploads/", {"image": [picture(5)]})
    one_too_many = alice_client.post("/", {"image": [picture(6)]})

    assert (two.status_code, two_more.status_code, one_more.status_code) == (201, 429, 201)
    assert one_too_many.status_code == 429
    assert Upload.objects.count() == 3


def upload_request(user: User, pictures: int) -> HttpRequest:
    request = RequestFactory().post("/", {"image": [picture(i) for i in range(pictures)]})
    request.user = user
    return request


def test_the_shared_throttle_refuses_without_spending_and_says_how_long_to_wait(alice: User, bob: User) -> None:
    """:class:`UploadRateThrottle` as the web form calls it (no DRF view): past the budget a request is refused
    whole, nothing of it is spent, the wait is until the request fits whole, and each user has a budget of their
    own."""
    spent, refused, one_fits, bob_spent = (UploadRateThrottle() for _ in range(4))

    assert spent.allow_request(upload_request(alice, 1), None)
    assert not refused.allow_request(upload_request(alice, 2), None)
    # Two pictures fit only once the one counted leaves the minute: DRF's formula said 30 s (a minute over the two
    # single requests it thought still available), and the retry then was refused again.
    assert 59 <= (refused.wait() or 0) <= 60
    assert refused.retry_after_seconds() in (59, 60)
    assert one_fits.allow_request(upload_request(alice, 1), None)
    assert bob_spent.allow_request(upload_request(bob, 2), None)


def test_the_web_forms_retry_after_is_rounded_up(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounded to the nearest second, a wait of 49.4 s said 49, and a retry after 49 s was refused again."""
    clock = [1000.0]
    monkeypatch.setattr(UploadRateThrottle, "timer", lambda self: clock[0])
    assert UploadRateThrottle().allow_request(upload_request(alice, 2), None)
    clock[0] += 10.6
    refused = UploadRateThrottle()

    assert not refused.allow_request(upload_request(alice, 1), None)
    assert refused.wait() == pytest.approx(49.4)
    assert refused.retry_after_seconds() == 50


def test_over_a_lowered_budget_the_wait_is_until_enough_pictures_leave_the_window(alice: User, settings) -> None:
    """Over a budget lowered since the pictures were counted, DRF had no wait to suggest (the page said 1 s): both
    pictures counted must leave the minute before one more fits."""
    assert UploadRateThrottle().allow_request(upload_request(alice, 2), None)
    settings.UPLOAD_RATE_LIMIT = "1/minute"
    refused = UploadRateThrottle()

    assert not refused.allow_request(upload_request(alice, 1), None)
    assert 59 <= (refused.wait() or 0) <= 60


@pytest.mark.parametrize("door", ["/api/uploads/", "/"])
def test_a_request_larger_than_the_whole_budget_is_bad_input_and_the_checks_say_so(
    door: str, alice_client: Client, settings
) -> None:
    """With the limit below UPLOAD_MAX_FILES a full batch can never fit: it was answered 429 ("try again in 1
    seconds" on the page, no Retry-After from the API). It is a 400 saying the limit, and ``manage.py check``
    names the setting."""
    from django.core import checks

    settings.UPLOAD_RATE_LIMIT = "3/minute"
    settings.UPLOAD_MAX_FILES = 4

    refused = alice_client.post(door, {"image": [picture(i) for i in range(4)]})

    assert refused.status_code == 400
    said = refused.json()["error"] if door.startswith("/api/") else refused.content.decode()
    assert "Too many pictures at once: at most 3 a minute; send fewer in one upload." in said
    assert Upload.objects.count() == 0
    assert alice_client.post(door, {"image": [picture(i) for i in range(3)]}).status_code in (201, 302)
    [warning] = [message for message in checks.run_checks() if message.id == "phoneapp.W002"]
    assert "UPLOAD_RATE_LIMIT (3/minute) is below UPLOAD_MAX_FILES (4)" in warning.msg
    settings.UPLOAD_MAX_FILES = 3
    assert not [message for message in checks.run_checks() if message.id == "phoneapp.W002"]


@pytest.mark.parametrize("rate", ["120", "120/fortnight", "lots/minute"])
def test_a_rate_limit_that_is_not_a_rate_is_a_check_error_not_a_traceback(rate: str, settings) -> None:
    """The check made the throttle, which parses the rate: "120" crashed every manage.py command, migrate too."""
    from django.core import checks

    settings.UPLOAD_RATE_LIMIT = rate

    [error] = [message for message in checks.run_checks() if message.id == "phoneapp.E001"]
    assert error.level == checks.ERROR and rate in error.msg
