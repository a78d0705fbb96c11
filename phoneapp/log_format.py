"""Log formatters: one line per event, with the event's fields (upload id, timings, model version) attached.

Call sites log with ``extra={...}``; these formatters print those fields as ``key=value`` pairs or as JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else came from ``extra=`` and belongs to the event.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def event_fields(record: logging.LogRecord) -> dict[str, object]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}


def fields_not_in_message(record: logging.LogRecord) -> dict[str, object]:
    """The event's fields, less what the message already says: Celery passes the dict it formats its "received"
    and "succeeded" lines with again as ``extra={"data": ...}``, and printing all of it a second time was 39% of a
    worker's log (soak test: 3.0 MB in 37 minutes at ~1.7 uploads/s). Of that dict only the entries the message
    does not name are printed, such as the task's arguments (the upload's id, which ties a task id to its upload;
    "received" names neither). JSON keeps every field, as structured fields."""
    fields = event_fields(record)
    for key, value in fields.items():
        if value is record.args and isinstance(value, Mapping) and isinstance(record.msg, str):
            fields[key] = {name: entry for name, entry in value.items() if f"%({name})" not in record.msg}
    return {key: value for key, value in fields.items() if value != {}}


class PlainFormatter(logging.Formatter):
    """``2026-11-26T19:00:00Z INFO phoneapp.tasks upload classified upload_id=3 model_ms=21.4``."""

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = " ".join(f"{key}={value}" for key, value in fields_not_in_message(record).items())
        line = f"{timestamp} {record.levelname} {record.name} {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line} exception={self.formatException(record.exc_info)!r}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **event_fields(record),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ClientErrorsWithoutTraceback(logging.Filter):
    """Keep Django's one-line warning for a refused request (403, 404) but drop its traceback: a non-staff person
    opening /review/ is an expected answer, and a traceback per refusal buried the real errors in the log. Server
    errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True


class UnhealthyProbesNotLogged(logging.Filter):
    """Drop Django's "Service Unavailable: /healthz" ERROR: a 503 there is the answer a probe asks for, sent every
    few seconds while a part is down, and the health check already logs each part's failure when it starts and when
    it ends (``phoneapp/services/health.py``). Any other status of the probe, a 500 included, is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = getattr(getattr(record, "request", None), "path_info", None)
        return not (getattr(record, "status_code", None) == 503 and path == "/healthz")


class BrokerOutagesWithoutTraceback(logging.Filter):
    """Celery beat logs each scheduled task it cannot send with the stack and the exception's whole chain: ~10 KB
    every ``SWEEP_INTERVAL_SECONDS`` while Redis is down (an outage the app rides out by design). Such a record keeps
    one line, the task and the broker's error, and says the next tick tries again; other errors keep everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and _caused_by_broker_outage(error):
            record.msg, record.args = "%s (broker unreachable; the next tick tries again)", (error,)
            record.exc_info = None
            record.exc_text = None
        return True


# Sent every SWEEP_INTERVAL_SECONDS (10): their "Sending due task", "received" and "succeeded" lines were ~26,000
# INFO lines a day on an idle site, burying the lines that say something.
ROUTINE_TASKS = frozenset({"phoneapp.tasks.uploads_requeue_stale_task"})


class RoutineSweepsAtDebug(logging.Filter):
    """Celery's INFO lines about the routine sweep become DEBUG (shown only when the root logger takes DEBUG: a
    worker's or beat's ``--loglevel DEBUG``, which Celery sets on the root logger, not ``LOG_LEVEL``): beat's
    "Sending due task", the worker's "received", and its "succeeded" when the sweep found nothing to send. A sweep
    that re-sent uploads keeps its line, with the count."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _is_routine_sweep(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _is_routine_sweep(record: logging.LogRecord) -> bool:
    """Whether ``record`` is Celery's (beat, worker strategy, task trace) about a routine task that did nothing:
    the trace and strategy pass a dict of the task's fields, beat a tuple (entry name, task name)."""
    fields = record.args
    if isinstance(fields, dict):
        if fields.get("name") not in ROUTINE_TASKS:
            return False
        return "return_value" not in fields or str(fields["return_value"]) == "0"
    return isinstance(fields, tuple) and any(value in ROUTINE_TASKS for value in fields if isinstance(value, str))


def _caused_by_broker_outage(error: BaseException) -> bool:
    """Whether a connection error (kombu's, Redis's, the socket's) is ``error`` or in its chain of causes."""
    from kombu.exceptions import OperationalError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OperationalError | ConnectionError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


# The two line formats by their LOG_FORMAT names, as logging's dictConfig takes them (Django's LOGGING, gunicorn's).
FORMATTERS = {
    "plain": {"()": "phoneapp.log_format.PlainFormatter"},
    "json": {"()": "phoneapp.log_format.JsonFormatter"},
}


def gunicorn_logging(log_format: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict`` (``gunicorn.conf.py``): its own lines in the app's format, start-up and workers
    on stderr, the access log on stdout as before. They were gunicorn's plain text among the app's JSON lines under
    ``LOG_FORMAT=json``, which a log collector reading one JSON object per line cannot parse."""
    formatter = "json" if log_format == "json" else "plain"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": FORMATTERS,
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": formatter, "stream": "ext://sys.stderr"},
            # Where --access-logfile - has always written it: collectors read the access log from stdout.
            "access": {"class": "logging.StreamHandler", "formatter": formatter, "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
