"""Structured logs in Lambda: one JSON object a line, with the request id and the device id.

CloudWatch Logs Insights then filters on fields (`filter device_id = "d-17"`) instead of
parsing text. Lambda's Python runtime puts its own handler on the root logger and Chalice one on the
app's logger (`iotcloud`, level ERROR unless the app runs with debug); `install` gives
them the JSON formatter. The ids live in
context variables: the app's middleware binds the request id at the start of each
invocation, authentication binds the device id, so every line logged in between carries
them without passing them around.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
DEVICE_ID: ContextVar[str | None] = ContextVar("device_id", default=None)
# LogRecord attributes every record has: anything else came in through `extra=` and is logged too.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, ids, `extra` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, variable in (("request_id", REQUEST_ID), ("device_id", DEVICE_ID)):
            value = variable.get()
            if value is not None:
                doc[key] = value
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def bind_request(request_id: str | None) -> None:
    """A new invocation: its request id, and no device until one authenticates."""
    REQUEST_ID.set(request_id)
    DEVICE_ID.set(None)


def bind_device(device_id: str | None) -> None:
    DEVICE_ID.set(device_id)


def install(*loggers: logging.Logger) -> None:
    """JSON on the handlers of the root logger (Lambda's own; a stderr one if it has none) and of
    `loggers` (Chalice's app logger has a handler of its own and does not propagate). Levels stay."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for logger in (root, *loggers):
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
