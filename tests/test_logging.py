"""Logs are one line per event, carrying the event's fields, in plain text or JSON."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest
from django.test import Client

from phoneapp.log_format import JsonFormatter, PlainFormatter
from phoneapp.models import Upload
from tests.images import uploaded_file

if TYPE_CHECKING:
    from pytest_django import DjangoCaptureOnCommitCallbacks


def make_record() -> logging.LogRecord:
    record = logging.LogRecord(
        "phoneapp.services.classification", logging.INFO, __file__, 1, "upload classified", (), None
    )
    record.upload_id = 42
    record.inference_ms = 21.5
    record.model_version = "v7"
    return record


def test_plain_format_is_one_line_with_the_event_fields() -> None:
    line = PlainFormatter().format(make_record())
    assert "\n" not in line
    assert line.endswith(
        "INFO phoneapp.services.classification upload classified upload_id=42 inference_ms=21.5 model_version=v7"
    )


def test_json_format_is_one_object_per_line_with_the_event_fields() -> None:
    line = JsonFormatter().format(make_record())
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "upload classified"
    assert (payload["upload_id"], payload["inference_ms"], payload["model_version"]) == (42, 21.5, "v7")
    assert payload["level"] == "INFO"


@pytest.mark.django_db
def test_a_refused_request_is_one_warning_line_without_a_traceback(
    alice_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-staff person opening /review/ is an expected 403: Django logged it with a full traceback."""
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert alice_client.get("/review/").status_code == 403
    [record] = [record for record in caplog.records if record.name == "django.request"]
    assert record.levelno == logging.WARNING and record.exc_info is None


@pytest.mark.django_db
def test_an_uploaded_files_name_reaches_no_log_line(
    alice_client: Client,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    heatmaps_off: None,
) -> None:
    """A file's name can say whose or what the picture is: logged with the upload, it outlived the upload's deletion."""
    name = "alice-secret-holiday"
    with ExitStack() as stack:
        for logger in ("", "phoneapp", "inference", "django", "celery"):
            stack.enter_context(caplog.at_level(logging.DEBUG, logger=logger))
        with django_capture_on_commit_callbacks(execute=True):  # classified in this process, once committed
            response = alice_client.post("/api/uploads/", {"image": [uploaded_file(f"{name}.jpg")]})
    assert response.status_code == 201
    assert Upload.objects.get().status == "done"

    messages = [record.getMessage() for record in caplog.records]
    assert "upload stored" in messages and "upload classified" in messages
    leaked = [
        (record.getMessage(), field)
        for record in caplog.records
        for field, value in record.__dict__.items()
        if name in str(value)
    ]
    assert not leaked


def test_server_errors_keep_their_traceback() -> None:
    from phoneapp.log_format import ClientErrorsWithoutTraceback

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), sys.exc_info()
        )
    record.status_code = 500
    assert ClientErrorsWithoutTraceback().filter(record) and record.exc_info is not None


def beat_record(error: BaseException) -> logging.LogRecord:
    """What celery beat logs for a scheduled task it could not send (celery/beat.py, ``apply_entry``)."""
    try:
        raise error
    except BaseException:
        return logging.LogRecord(
            "celery.beat",
            logging.ERROR,
            __file__,
            1,
            "Message Error: %s\n%s",
            (error, ["  File ...\n"]),
            sys.exc_info(),
        )


def test_beat_logs_a_task_it_cannot_send_while_redis_is_down_in_one_line() -> None:
    """It logged the stack and the whole exception chain, ~10 KB every sweep interval through a Redis outage."""
    from celery.beat import SchedulingError
    from kombu.exceptions import OperationalError

    from phoneapp.log_format import BrokerOutagesWithoutTraceback

    try:
        try:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        except OperationalError as cause:
            raise SchedulingError("Couldn't apply scheduled task requeue-pending-uploads: Error 111") from cause
    except SchedulingError as error:
        record = beat_record(error)

    assert BrokerOutagesWithoutTraceback().filter(record)
    assert record.exc_info is None
    assert record.getMessage() == (
        "Couldn't apply scheduled task requeue-pending-uploads: Error 111"
        " (broker unreachable; the next tick tries again)"
    )
    other = beat_record(RuntimeError("a bug"))
    assert BrokerOutagesWithoutTraceback().filter(other) and other.exc_info is not None


def test_the_beat_filter_is_on_celery_beats_logger(settings) -> None:
    assert "broker_outages_without_traceback" in settings.LOGGING["loggers"]["celery.beat"]["filters"]


def test_the_routine_sweeps_lines_are_debug_unless_the_sweep_sent_something(settings) -> None:
    """Every 10 s beat's "Sending due task" and the worker's "received" and "succeeded" lines for the sweep: about
    26,000 INFO lines a day on an idle site."""
    import celery.app.trace

    from phoneapp.log_format import RoutineSweepsAtDebug

    sweep = "phoneapp.tasks.uploads_requeue_stale_task"

    def record(logger: str, message: str, args: tuple[object, ...] | dict[str, object]) -> logging.LogRecord:
        made = logging.LogRecord(logger, logging.INFO, __file__, 1, message, None, None)
        made.args = args  # as logging keeps a lone dict argument
        return made

    quiet = [
        record("celery.beat", "Scheduler: Sending due task %s (%s)", ("requeue-pending-uploads", sweep)),
        record("celery.worker.strategy", celery.app.trace.LOG_RECEIVED, {"id": "1", "name": sweep, "args": "()"}),
        record("celery.app.trace", celery.app.trace.LOG_SUCCESS, {"id": "1", "name": sweep, "return_value": "0"}),
    ]
    kept = [
        record("celery.app.trace", celery.app.trace.LOG_SUCCESS, {"id": "2", "name": sweep, "return_value": "3"}),
        record("celery.worker.strategy", celery.app.trace.LOG_RECEIVED, {"id": "3", "name": "phoneapp.tasks.x"}),
        record("celery.beat", "Scheduler: Sending due task %s (%s)", ("delete-expired-uploads", "phoneapp.tasks.y")),
    ]
    routine = RoutineSweepsAtDebug()
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        assert [routine.filter(line) for line in quiet] == [False, False, False]
        assert [routine.filter(line) for line in kept] == [True, True, True]
        assert {line.levelname for line in kept} == {"INFO"}
        root.setLevel(logging.DEBUG)
        assert all(routine.filter(line) for line in quiet)  # still there with --loglevel DEBUG
    finally:
        root.setLevel(level)
    for logger in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        assert "routine_sweeps_at_debug" in settings.LOGGING["loggers"][logger]["filters"]


def test_gunicorn_started_as_the_readme_says_logs_json_lines_too(tmp_path) -> None:
    """Under LOG_FORMAT=json, gunicorn's own lines (start-up, workers, the access log) were plain text among the
    app's JSON lines, which a collector reading one JSON object per line cannot parse. gunicorn.conf.py, read from
    the working directory, gives them the app's format."""
    import os
    import socket
    import subprocess
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env = {
        **keep,
        "PHONECHECK_ENV_FILE": "",
        "LOG_FORMAT": "json",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    repo = Path(__file__).resolve().parent.parent
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "phoneapp.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "2",
        "--access-logfile",
        "-",
        "--control-socket",
        str(tmp_path / "gunicorn.ctl"),
    ]
    server = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not answer"
                time.sleep(0.3)
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)

    def records(stream: str) -> list[dict[str, str]]:
        return [json.loads(line) for line in stream.splitlines() if line.strip()]  # each line one JSON object

    # The access log stays on stdout, where --access-logfile - always wrote it; the rest on stderr.
    access = records(out)
    assert {record["logger"] for record in access} == {"gunicorn.access"}, access
    assert any("/accounts/login/" in record["message"] for record in access)
    assert "gunicorn.error" in {record["logger"] for record in records(err)}


TASK = {"id": "t-1", "name": "phoneapp.tasks.upload_classify_task", "args": "(7,)", "kwargs": "{}"}


@pytest.mark.parametrize(
    ("template", "context", "line_end"),
    [
        (
            "LOG_RECEIVED",
            TASK | {"eta": None},
            "[t-1] received data={'args': '(7,)', 'kwargs': '{}', 'eta': None}",
        ),
        (
            "LOG_SUCCESS",
            TASK | {"runtime": 0.05, "return_value": "'done'"},
            "[t-1] succeeded in 0.05s: 'done' data={'args': '(7,)', 'kwargs': '{}'}",
        ),
    ],
)
def test_celerys_task_lines_in_plain_text_say_their_fields_once(
    template: str, context: dict[str, object], line_end: str
) -> None:
    """Celery logs "received" and "succeeded" with the dict of the message's fields, and the same dict again as
    ``extra={"data": ...}``: printed twice, it was 39% of a worker's log in the soak test. What the message does not
    say stays: the arguments tie a task's id to its upload's (tests/test_reliability_live.py reads them)."""
    from celery.app import trace

    records: list[logging.LogRecord] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Kept()
    trace.logger.addHandler(handler)
    try:
        trace.info(getattr(trace, template), context)
    finally:
        trace.logger.removeHandler(handler)

    line = PlainFormatter().format(records[0])
    assert line.endswith(f"Task phoneapp.tasks.upload_classify_task{line_end}"), line
    assert json.loads(JsonFormatter().format(records[0]))["data"]["args"] == "(7,)"  # JSON keeps the fields
