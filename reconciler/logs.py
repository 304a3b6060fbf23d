"""Structured logging: one line per event, as text for people or JSON for collectors.

Modules log with ``extra={...}`` fields (target, action, key); the formatters here
put those fields on the line. Secrets never reach a log call.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json  # here, not at the top: a command that logs no JSON starts without it

        body = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{record.levelname.lower():<7} {record.getMessage()}"
        line = f"{line} {extra}" if extra else line
        if record.exc_info:  # the traceback, as the JSON log carries it in "exception"
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when it was made.

    A command run in-process (tests, ``CliRunner``) swaps ``sys.stderr`` and closes
    its copy afterwards; a handler holding the old one would fail ("--- Logging
    error ---") when a thread logs later."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(*, level: str = "warning", json_format: bool = False) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
