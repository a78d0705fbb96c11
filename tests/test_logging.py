"""Logs are one line per event, carrying the event's fields, in plain text or JSON."""

from __future__ import annotations

import json
import logging

from phoneapp.log_format import JsonFormatter, PlainFormatter


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
