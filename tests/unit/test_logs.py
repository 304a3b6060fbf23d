"""Structured logs: the text and the JSON formats carry the same facts, tracebacks included."""

from __future__ import annotations

import json
import logging
import sys

from reconciler.logs import JsonFormatter, TextFormatter


def failing_record() -> logging.LogRecord:
    logger = logging.getLogger("reconciler.test")
    settings: dict[str, str] = {}
    try:
        settings["missing"]
    except KeyError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "pass failed", (), exc_info=sys.exc_info()
        )
        record.target = "dns"
    return record


def test_tracebacks_reach_the_text_log_as_well_as_the_json_log() -> None:
    text = TextFormatter().format(failing_record())
    body = json.loads(JsonFormatter().format(failing_record()))
    assert text.startswith("error   pass failed target=dns\n")
    assert "Traceback (most recent call last)" in text and "KeyError: 'missing'" in text
    assert "Traceback (most recent call last)" in body["exception"]
    assert "KeyError: 'missing'" in body["exception"]


def test_a_line_without_exception_stays_one_line() -> None:
    record = logging.makeLogRecord({"msg": "target applied", "levelname": "INFO", "target": "x"})
    assert TextFormatter().format(record) == "info    target applied target=x"
