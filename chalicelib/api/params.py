"""Request parameters: each rule once, for the JSON API and the dashboard alike.

Paging limits, time windows, enum choices, ids in paths and cursors. A malformed query
parameter is 400 `invalid_parameter`; an id in a path that cannot exist is that resource's 404.

Each route's query parameters are declared once (`Param`s, attached with `routing.route(query=...)`):
the route reads its request through the declaration, and the OpenAPI document's `parameters`
are generated from the same declaration, so the two cannot disagree.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalice.app import Request

from chalicelib.api.operations import PathParam
from chalicelib.domain.aggregation_rules import (
    AGGREGATES,
    INTERVAL_PATTERN,
    MAX_BUCKETS,
    MAX_TZ_CHARS,
    TZ_PATTERN,
    AggQuery,
)
from chalicelib.domain.chunks import HOUR_MS
from chalicelib.domain.commands import COMMAND_ID_PATTERN
from chalicelib.domain.devices import ID_PATTERN
from chalicelib.domain.parsing import parse_time
from chalicelib.domain.query import Cursor, Window
from chalicelib.domain.rules import MAX_METRIC_CHARS, MAX_PAGE, MAX_UNIT_CHARS, METRIC_PATTERN, UNIT_CHARACTERS
from chalicelib.errors import (
    DeviceNotFoundError,
    InvalidParameterError,
    ReportNotFoundError,
)

if TYPE_CHECKING:
    from chalicelib.adapters.alerts import AlertFilter

MAX_QUERY_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
REPORT_ID = re.compile(r"^\d{13}-[0-9a-f]{8}$")  # as jobs/scaling_report names them: ms, then 8 hex digits
DEFAULT_PAGE = 1000  # readings on a telemetry page unless `limit` says
ALERTS_PAGE = (50, 500)  # default and largest page of an alert list
REPORTS_PAGE = (20, 100)  # of the scaling reports list
BOOLEANS = ("true", "false")
DEVICES_PAGE = (100, 1000)  # of the device and rule lists
MAX_WAIT_S = 20  # the longest long-poll of GET /v1/commands: API Gateway answers within 29 s
MAX_WORD_CHARS = 64  # a search word (the daily index's words)
WORD = re.compile(rf"^[a-z0-9]{{1,{MAX_WORD_CHARS}}}$")  # a search word once trimmed and lower-cased
# What `q` may be as sent: the same word, any case, spaces around it (validation trims and lower-cases).
WORD_AS_SENT = rf"^\s*[A-Za-z0-9]{{1,{MAX_WORD_CHARS}}}\s*$"


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


def choice(params: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """An optional parameter that is one of `choices`."""
    value = params.get(name) or None
    if value is not None and value not in choices:
        raise InvalidParameterError(f"{name} must be one of {', '.join(choices)}")
    return value


def cursor_param(params: dict[str, str], pattern: re.Pattern[str], issuer: str = "this API") -> str | None:
    """An optional `cursor` that has the shape of the ids the list pages hand out."""
    return cursor_of(pattern, issuer).read(params, 0)


@dataclass(frozen=True)
class Param:
    """One query parameter of a route: what the document says of it and how a request's value is read.

    `read` gives the value (or its default) or raises `InvalidParameterError`; `schema` is the
    OpenAPI schema of the values `read` accepts (never wider). An empty value is an absent one.
    """

    name: str
    description: str = ""

    @property
    def required(self) -> bool:
        return False

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def read(self, params: dict[str, str], now: int) -> Any:
        return params.get(self.name) or None

    def openapi(self) -> dict[str, Any]:
        """The parameter object of the OpenAPI document."""
        doc: dict[str, Any] = {"name": self.name, "in": "query", "required": self.required, "schema": self.schema()}
        if self.description:
            doc["description"] = self.description
        return doc


@dataclass(frozen=True)
class IntParam(Param):
    """An integer between `low` and `high`, `default` when absent."""

    default: int = 0
    low: int = 0
    high: int = 0

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high, "default": self.default}

    def read(self, params: dict[str, str], now: int) -> int:
        return int_param(params, self.name, self.default, self.low, self.high)


@dataclass(frozen=True)
class OptionalIntParam(Param):
    """An optional integer between `low` and `high` (None when absent)."""

    low: int = 0
    high: int = 0

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}

    def read(self, params: dict[str, str], now: int) -> int | None:
        if not params.get(self.name):
            return None
        return int_param(params, self.name, 0, self.low, self.high)


@dataclass(frozen=True)
class TimeParam(Param):
    """A point in time (epoch s, epoch ms or ISO 8601), `default(now)` when absent."""

    default: Callable[[int], int] = lambda now: now

    def read(self, params: dict[str, str], now: int) -> int:
        return time_param(params, self.name, self.default(now), now)


@dataclass(frozen=True)
class ChoiceParam(Param):
    """An optional one of `choices`."""

    choices: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}

    def read(self, params: dict[str, str], now: int) -> str | None:
        return choice(params, self.name, self.choices)


@dataclass(frozen=True)
class PatternParam(Param):
    """An optional string matching `pattern` (`refusal` says why one does not)."""

    pattern: re.Pattern[str] = re.compile("")
    refusal: str = ""
    max_length: int | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "pattern": self.pattern.pattern}
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema

    def read(self, params: dict[str, str], now: int) -> str | None:
        value = params.get(self.name) or None
        if value is not None and not self.pattern.match(value):
            raise InvalidParameterError(self.refusal)
        return value


@dataclass(frozen=True)
class UnitParam(PatternParam):
    """A unit, where the empty value is one ("no unit"): absent only when the parameter is not sent."""

    def read(self, params: dict[str, str], now: int) -> str | None:
        value = params.get(self.name)
        if value is not None and not self.pattern.match(value):
            raise InvalidParameterError(self.refusal)
        return value


@dataclass(frozen=True)
class WordParam(Param):
    """A required search word: trimmed and lower-cased, then one word of WORD."""

    @property
    def required(self) -> bool:
        return True

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": WORD_AS_SENT}

    def read(self, params: dict[str, str], now: int) -> str:
        word = (params.get(self.name) or "").strip().lower()
        if not WORD.match(word):
            raise InvalidParameterError(f"{self.name} must be one word: 1-{MAX_WORD_CHARS} letters or digits")
        return word


Query = tuple[Param, ...]  # a route's query parameters, in the order they are read (the first bad one answers)


def read_query(query: Query, params: dict[str, str], now: int = 0) -> dict[str, Any]:
    """The values of a route's declared query parameters, read in declaration order."""
    return {p.name: p.read(params, now) for p in query}


def limit_of(page: tuple[int, int]) -> IntParam:
    """The `limit` of a list whose (default, largest) page is `page`."""
    return IntParam("limit", default=page[0], low=1, high=page[1])


def cursor_of(pattern: re.Pattern[str], issuer: str = "this API") -> PatternParam:
    """A `cursor` that has the shape of the ids a list hands out."""
    return PatternParam("cursor", pattern=pattern, refusal=f"cursor is not one {issuer} issued")


METRIC = PatternParam(
    "metric", pattern=METRIC_PATTERN, refusal="metric is not a valid metric name", max_length=MAX_METRIC_CHARS
)
OPAQUE_CURSOR = Param("cursor", "the next_cursor of the previous page")
_TIME_FORMS = "epoch s/ms or ISO 8601"
TELEMETRY_QUERY: Query = (
    TimeParam("from", f"{_TIME_FORMS}; default: all", default=lambda _now: 0),
    TimeParam("to", f"{_TIME_FORMS}; default: now", default=lambda now: now + HOUR_MS),
    METRIC,
    limit_of((DEFAULT_PAGE, MAX_PAGE)),
    OPAQUE_CURSOR,  # decoded after the window is checked (Cursor.decode says why one is bad)
)
# The aggregated query's parameters (GET /v1/devices/{id}/telemetry with agg), after the raw ones.
AGGREGATION_PARAMS: Query = (
    ChoiceParam("agg", "aggregate each bucket: numbers only for avg/min/max/sum", choices=AGGREGATES),
    PatternParam(
        "interval",
        "bucket length with agg: 1m, 5m, 1h, 1d... or milliseconds (not with points)",
        pattern=INTERVAL_PATTERN,
        refusal="interval: a duration such as 1m, 5m, 1h, 1d, or milliseconds",
    ),
    OptionalIntParam(
        "points", "with agg: at most this many buckets, the server picks the interval", low=1, high=MAX_BUCKETS
    ),
    PatternParam(
        "tz",
        "with agg and whole-day intervals: buckets start at local midnight of this IANA zone",
        pattern=TZ_PATTERN,
        refusal="tz: an IANA time zone name such as Europe/Paris",
        max_length=MAX_TZ_CHARS,
    ),
    UnitParam(
        "unit",
        "with agg: the metric's unit, when it has several (empty: readings without a unit)",
        pattern=re.compile(f"^(?:{UNIT_CHARACTERS})?$"),
        refusal=f"unit: up to {MAX_UNIT_CHARS} printable ASCII characters",
        max_length=MAX_UNIT_CHARS,
    ),
)
# GET /v1/devices/{id}/telemetry: raw readings, or with `agg` aggregated buckets.
DEVICE_TELEMETRY_QUERY: Query = (*TELEMETRY_QUERY, *AGGREGATION_PARAMS)
ROLLUPS_QUERY: Query = (
    TimeParam("from", f"{_TIME_FORMS}; default: 7 days ago", default=lambda now: now - 7 * 24 * HOUR_MS),
    TimeParam("to", f"{_TIME_FORMS}; default: now", default=lambda now: now),
    METRIC,
)
SEARCH_QUERY: Query = (WordParam("q", "one word: letters or digits, any case"),)
DEVICES_QUERY: Query = (limit_of(DEVICES_PAGE), cursor_of(ID_PATTERN))
REPORTS_QUERY: Query = (limit_of(REPORTS_PAGE), cursor_of(REPORT_ID))
COMMANDS_QUERY: Query = (IntParam("wait", "seconds to wait for a command", default=0, low=0, high=MAX_WAIT_S),)


@functools.cache
def rules_query() -> Query:
    """GET /v1/rules's parameters (the alerts modules load with their routes only)."""
    from chalicelib.domain.alerts import RULE_ID_PATTERN

    return (limit_of(DEVICES_PAGE), cursor_of(RULE_ID_PATTERN))


@functools.cache
def alerts_query() -> Query:
    """GET /v1/alerts's parameters and the dashboard alert page's filters, in the order they are read."""
    from chalicelib.domain.alerts import ALERT_STATES, SEVERITIES

    return (
        limit_of(ALERTS_PAGE),
        PatternParam("device", pattern=ID_PATTERN, refusal="device is not a device id"),
        ChoiceParam("acknowledged", choices=BOOLEANS),
        ChoiceParam("state", choices=ALERT_STATES),
        ChoiceParam("severity", choices=SEVERITIES),
        OPAQUE_CURSOR,
    )


def telemetry_window(params: dict[str, str], now: int) -> tuple[Window, Cursor | None]:
    """The window and cursor of a telemetry query (GET /v1/devices/{id}/telemetry and the dashboard's)."""
    values = read_query(TELEMETRY_QUERY, params, now)
    window = Window(from_ms=values["from"], to_ms=values["to"], metric=values["metric"], limit=values["limit"])
    if window.from_ms > window.to_ms:
        raise InvalidParameterError("from must not be after to")
    return window, (Cursor.decode(params["cursor"]) if params.get("cursor") else None)


def aggregation_query(device_id: str, params: dict[str, str], now: int) -> AggQuery | None:
    """The aggregated query of GET /v1/devices/{id}/telemetry (None: a raw one). Every parameter is
    read first (the first bad one answers); then parameters of one mode are refused in the other."""
    values = read_query(DEVICE_TELEMETRY_QUERY, params, now)
    if values["agg"] is None:
        given = [p.name for p in AGGREGATION_PARAMS if values[p.name] is not None]
        if given:
            raise InvalidParameterError(f"{', '.join(given)} apply to aggregated queries only: give agg too")
        return None
    if params.get("limit"):
        raise InvalidParameterError("limit pages raw readings: an aggregated answer is paged by next_cursor")
    return AggQuery(
        device_id=device_id,
        agg=values["agg"],
        metric=values["metric"],
        unit=values["unit"],
        from_ms=values["from"],
        to_ms=values["to"],
        to_given=bool(params.get("to")),
        interval=values["interval"],
        points=values["points"],
        tz=values["tz"],
    )


def alert_filter(params: dict[str, str]) -> tuple[AlertFilter, int]:
    """The filters and page size of an alert list (GET /v1/alerts and the dashboard's alerts page)."""
    from chalicelib.adapters.alerts import AlertFilter  # the alerts modules load with their routes only

    values = read_query(alerts_query(), params)
    acknowledged = values["acknowledged"]
    filters = AlertFilter(
        state=values["state"],
        severity=values["severity"],
        device_id=values["device"],
        acknowledged=None if acknowledged is None else acknowledged == "true",
    )
    return filters, values["limit"]


# Path parameters: a value that cannot name a resource is its 404 (checked by the route).
DEVICE_ID = PathParam("device_id", ID_PATTERN, DeviceNotFoundError)
REPORT_PATH = PathParam("report_id", REPORT_ID, ReportNotFoundError)
# Documented, not checked: the views answer a command that cannot exist with their own 404 message.
COMMAND_ID = PathParam("command_id", COMMAND_ID_PATTERN)
