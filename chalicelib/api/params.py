"""Request parameters: each rule once, for the JSON API and the dashboard alike.

Paging limits, time windows, enum choices, ids in paths and cursors. A malformed query
parameter is 400 `invalid_parameter`; an id in a path that cannot exist is that resource's 404.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from chalice.app import Request

from chalicelib.domain.auth import Principal
from chalicelib.domain.chunks import HOUR_MS
from chalicelib.domain.devices import ID_PATTERN
from chalicelib.domain.parsing import parse_time
from chalicelib.domain.query import Cursor, Window
from chalicelib.domain.rules import MAX_PAGE, METRIC_PATTERN
from chalicelib.errors import (
    AlertNotFoundError,
    DeviceNotFoundError,
    InvalidParameterError,
    ReportNotFoundError,
    RuleNotFoundError,
)

if TYPE_CHECKING:
    from chalicelib.adapters.alerts import AlertFilter

MAX_QUERY_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
REPORT_ID = re.compile(r"^\d{13}-[0-9a-f]{8}$")  # as jobs/scaling_report names them: ms, then 8 hex digits
DEFAULT_PAGE = 1000  # readings on a telemetry page unless `limit` says
ALERTS_PAGE = (50, 500)  # default and largest page of an alert list
REPORTS_PAGE = (20, 100)  # of the scaling reports list
BOOLEANS = ("true", "false")


def raw_body(request: Request) -> bytes:
    body = request.raw_body
    return body.encode() if isinstance(body, str) else (body or b"")


def query_params(request: Request) -> dict[str, str]:
    return dict(request.query_params or {})


def int_param(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise InvalidParameterError(f"{name} must be an integer") from e
    if not low <= value <= high:
        raise InvalidParameterError(f"{name} must be between {low} and {high}")
    return value


def time_param(params: dict[str, str], name: str, default: int, now: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    value: object = raw
    with contextlib.suppress(ValueError):
        value = float(raw) if any(c in raw for c in ".eE") else int(raw)
    try:
        ms = parse_time(value, now)
    except ValueError as e:
        raise InvalidParameterError(f"{name}: epoch seconds, epoch milliseconds or ISO 8601 with a zone") from e
    if not 0 <= ms <= MAX_QUERY_MS:  # hour buckets exist only for years 1970 to 9999
        raise InvalidParameterError(f"{name} must be between 1970 and 9999")
    return ms


def device_param(device_id: str) -> str:
    """A device id from a path: one that cannot exist is not found (404), not a bad request."""
    if not ID_PATTERN.match(device_id):
        raise DeviceNotFoundError(f"no device {device_id!r}")
    return device_id


def readable_device(principal: Principal, device_id: str) -> str:
    """A device id the principal may read: the admin any, a device only its own (else 403)."""
    principal.require_device_or_admin(device_param(device_id))
    return device_id


def choice(params: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """An optional parameter that is one of `choices`."""
    value = params.get(name) or None
    if value is not None and value not in choices:
        raise InvalidParameterError(f"{name} must be one of {', '.join(choices)}")
    return value


def cursor_param(params: dict[str, str], pattern: re.Pattern[str], issuer: str = "this API") -> str | None:
    """An optional `cursor` that has the shape of the ids the list pages hand out."""
    cursor = params.get("cursor") or None
    if cursor is not None and not pattern.match(cursor):
        raise InvalidParameterError(f"cursor is not one {issuer} issued")
    return cursor


def metric_param(params: dict[str, str]) -> str | None:
    metric = params.get("metric") or None
    if metric is not None and not METRIC_PATTERN.match(metric):
        raise InvalidParameterError("metric is not a valid metric name")
    return metric


def telemetry_window(params: dict[str, str], now: int) -> tuple[Window, Cursor | None]:
    """The window and cursor of a telemetry query (GET /v1/devices/{id}/telemetry and the dashboard's)."""
    window = Window(
        from_ms=time_param(params, "from", 0, now),
        to_ms=time_param(params, "to", now + HOUR_MS, now),
        metric=metric_param(params),
        limit=int_param(params, "limit", DEFAULT_PAGE, 1, MAX_PAGE),
    )
    if window.from_ms > window.to_ms:
        raise InvalidParameterError("from must not be after to")
    return window, (Cursor.decode(params["cursor"]) if params.get("cursor") else None)


def alert_filter(params: dict[str, str]) -> tuple[AlertFilter, int]:
    """The filters and page size of an alert list (GET /v1/alerts and the dashboard's alerts page)."""
    from chalicelib.adapters.alerts import AlertFilter  # the alerts modules load with their routes only
    from chalicelib.domain.alerts import ALERT_STATES, SEVERITIES

    limit = int_param(params, "limit", ALERTS_PAGE[0], 1, ALERTS_PAGE[1])
    device = params.get("device") or None
    if device is not None and not ID_PATTERN.match(device):
        raise InvalidParameterError("device is not a device id")
    acknowledged = choice(params, "acknowledged", BOOLEANS)
    filters = AlertFilter(
        state=choice(params, "state", ALERT_STATES),
        severity=choice(params, "severity", SEVERITIES),
        device_id=device,
        acknowledged=None if acknowledged is None else acknowledged == "true",
    )
    return filters, limit


def alert_param(alert_id: str) -> str:
    from chalicelib.domain.alerts import ALERT_ID_PATTERN

    if not ALERT_ID_PATTERN.match(alert_id):
        raise AlertNotFoundError(f"no alert {alert_id!r}")
    return alert_id


def rule_param(rule_id: str) -> str:
    from chalicelib.domain.alerts import RULE_ID_PATTERN

    if not RULE_ID_PATTERN.match(rule_id):
        raise RuleNotFoundError(f"no rule {rule_id!r}")
    return rule_id


def report_param(report_id: str) -> str:
    if not REPORT_ID.match(report_id):
        raise ReportNotFoundError(f"no report {report_id!r}")
    return report_id
