"""What each dashboard route declares about itself: its operation, query parameters and form fields.

Pages answer HTML (errors too: the route renders them as pages), form posts answer 303 when done,
and the JSON under /dashboard/data takes the session cookie; the answer sets below say so once
for every route of a kind. The pages' query parameters are declared here (`api.params.Param`s)
and read through these declarations by the views in chalicelib/web, so the document and the
pages cannot disagree. Light: the app imports it; chalicelib/web (and Jinja2) load with the
first page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.api.operations import Answer, Answers, Body, Header, Op, PathParam, ok
from chalicelib.api.params import (
    REPORT_ID,
    REPORTS_PAGE,
    ChoiceParam,
    Param,
    Query,
    TimeParam,
    cursor_of,
    limit_of,
)
from chalicelib.api.telemetry import READING  # the API's reading: the same shape
from chalicelib.domain import commands
from chalicelib.domain.chunks import HOUR_MS
from chalicelib.domain.devices import ID_PATTERN
from chalicelib.domain.schema import Arr, Bool, Int, Member, Num, Obj, OneOf, Schema, Str, nullable, record
from chalicelib.errors import InvalidParameterError

HTML = "text/html"
FORM = "application/x-www-form-urlencoded"
TAGS = ("dashboard",)
SUMMARY_PREFIX = "Dashboard: "

# --- the pages' query parameters (read through these by chalicelib/web) -------------------------------------

FLEET_PAGE = (25, 100)  # devices on the fleet page: default and most
# The device charts' windows.
WINDOWS = {"1h": HOUR_MS, "6h": 6 * HOUR_MS, "24h": 24 * HOUR_MS, "7d": 7 * 24 * HOUR_MS, "30d": 30 * 24 * HOUR_MS}
CHART_POINTS = 1000  # the most points a device chart asks for per series (raw readings or buckets)
MAX_STATE_IDS = 100  # devices whose live state one /dashboard/data/states call reads
STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a script's or stylesheet's file name

SIGN_IN_QUERY: Query = (
    Param("next", "where to go once signed in (a /dashboard URL; any other: the fleet)"),
    Param("expired", "1: say that the session expired"),
)
# q is trimmed to the search box's length, never refused; it is read first, so limit and cursor
# are checked in the order the page always checked them.
FLEET_QUERY: Query = (
    Param("q", "words the device's id, name or type must all hold"),
    limit_of(FLEET_PAGE),
    cursor_of(ID_PATTERN, "this page"),
)
DEVICE_QUERY: Query = (
    ChoiceParam("window", "the charts' window (default 6h)", choices=tuple(WINDOWS)),
    Param("command", "a command just sent: its status"),
)


@dataclass(frozen=True)
class IntervalParam(Param):
    """An optional bucket interval: a duration (`5m`, `1h`, `1d`) or milliseconds; None when absent."""

    def schema(self) -> dict[str, Any]:
        from chalicelib.domain.aggregation_rules import INTERVAL_PATTERN

        return {"type": "string", "pattern": INTERVAL_PATTERN.pattern}

    def read(self, params: dict[str, str], now: int) -> int | None:
        from chalicelib.domain.aggregation import parse_interval

        raw = params.get(self.name) or None
        if raw is None:
            return None
        try:
            return parse_interval(raw)
        except ValueError as e:
            raise InvalidParameterError(f"{self.name} must be a duration (30s, 5m, 1h, 1d) or milliseconds") from e


_TIME_FORMS = "epoch s/ms or ISO 8601"
AGGREGATES_QUERY: Query = (
    TimeParam(
        "from", f"{_TIME_FORMS}; default: 24 hours before `to`'s default", default=lambda now: now - 24 * HOUR_MS
    ),
    TimeParam("to", f"{_TIME_FORMS}, inclusive; default: now", default=lambda now: now),
    IntervalParam(
        "interval",
        f"the buckets' length (aligned to the epoch, UTC); default: the smallest round one giving at most "
        f"{CHART_POINTS} buckets",
    ),
)
STATIC_QUERY: Query = (Param("v", "the file's digest, as the pages link it: the browser may keep it a year"),)


@dataclass(frozen=True)
class DeviceIdsParam(Param):
    """A required list of device ids, comma-separated (empty items ignored, repeats once)."""

    most: int = MAX_STATE_IDS

    @property
    def required(self) -> bool:
        return True

    def read(self, params: dict[str, str], now: int) -> list[str]:
        ids = list(dict.fromkeys(i for i in (params.get(self.name) or "").split(",") if i))
        if not ids or len(ids) > self.most or not all(ID_PATTERN.match(i) for i in ids):
            raise InvalidParameterError(f"{self.name}: 1 to {self.most} device ids, comma-separated")
        return ids


STATES_QUERY: Query = (DeviceIdsParam("ids", f"device ids, comma-separated (1 to {MAX_STATE_IDS})"),)
SPARKLINE_HOURS = 24  # the fleet page's sparklines: hourly averages of the last 24 hours
SPARKLINES_QUERY: Query = (
    DeviceIdsParam("ids", f"device ids, comma-separated (1 to {FLEET_PAGE[1]}: a fleet page)", most=FLEET_PAGE[1]),
)
# GET /v1/reports's parameters, with the page's own word for a cursor it did not issue.
REPORTS_PAGE_QUERY: Query = (limit_of(REPORTS_PAGE), cursor_of(REPORT_ID, "this page"))


# --- the form bodies (parsed by chalicelib/web/forms.py; other fields are ignored) --------------------------

_FIELD = Str()


def form_body(**fields: Member) -> Body:
    """A form post's body: its fields, as strings; the view parses and checks them itself."""
    return Body({FORM: Obj(members=fields, values=_FIELD)}, validated=False, what="the form")


_CSRF = Member(Str(description="the page's CSRF token"), required=True)
_NEXT = Member(Str(description="where to go when done (a /dashboard URL)"))
_COMMAND_FIELD_HELP = {
    "procedure": "the procedure, e.g. reboot (called as iotcloud.device.<id>.reboot)",
    "args": "a JSON array (default [])",
    "kwargs": "a JSON object (default {})",
    "timeout": f"seconds, default {commands.DEFAULT_TIMEOUT_S}, at most {commands.MAX_TIMEOUT_S}",
}
SIGN_IN_FORM = form_body(
    token=Member(Str(description="an admin token"), required=True),
    signin_token=Member(Str(description="the sign-in form's own token"), required=True),
    next=_NEXT,
)
CSRF_FORM = form_body(csrf=_CSRF)
ACK_FORM = form_body(csrf=_CSRF, next=_NEXT)
COMMAND_FORM = form_body(
    csrf=_CSRF,
    **{
        name: Member(Str(description=_COMMAND_FIELD_HELP[name]), required=name == "procedure")
        for name in commands.FIELDS
    },
)

# --- the answers --------------------------------------------------------------------------------------------


def html(description: str) -> Answer:
    """An HTML page's answer."""
    return Answer(description, {HTML: Str()})


REDIRECT = Answer("done: back to a page (post, redirect, get)", headers=("Location",))
TO_SIGN_IN = Answer("no session, or an expired one: to the sign-in page", headers=("Location",))
UNAVAILABLE = Answer("storage unavailable: a page saying so", {HTML: Str()}, headers=("Retry-After",))
CSRF_REFUSED = html("the form's CSRF token is missing or wrong (or no session)")
UNREADABLE_FORM = html("an unreadable or too large form: a page saying so")
NO_SESSION = "no session, or an expired one: sign in again"


def dashboard_op(op_id: str, summary: str, answers: Answers, **declared: Any) -> Op:
    """An operation of the dashboard: its tag, and its summary saying so."""
    return Op(op_id, SUMMARY_PREFIX + summary, answers, tags=TAGS, **declared)


def _pages(errors: Mapping[int, str]) -> dict[int, Answer | str]:
    return {status: html(text) for status, text in errors.items()}


def page_op(op_id: str, summary: str, errors: Mapping[int, str], path: tuple[PathParam, ...] = ()) -> Op:
    """A page: the HTML, or to sign-in without a session; `errors`: status -> its HTML page's description."""
    answers = {200: html("the page"), 303: TO_SIGN_IN, **_pages(errors), 503: UNAVAILABLE}
    return dashboard_op(op_id, summary, answers, path=path)


def form_op(op_id: str, summary: str, body: Body, errors: Mapping[int, str], path: tuple[PathParam, ...] = ()) -> Op:
    """A form post: a redirect to a page when done (the CSRF token in the form)."""
    answers = {303: REDIRECT, 400: UNREADABLE_FORM, 403: CSRF_REFUSED, **_pages(errors), 503: UNAVAILABLE}
    return dashboard_op(op_id, summary, answers, path=path, body=body)


def data_op(op_id: str, summary: str, answer: Schema, errors: Mapping[int, str], **declared: Any) -> Op:
    """JSON for the pages' script: the session cookie; errors in the API's JSON error shape."""
    return dashboard_op(op_id, summary, {200: ok(answer), 401: NO_SESSION, **errors}, **declared)


def file_op(op_id: str, summary: str, media: str) -> Op:
    """A static file: public, cached by its digest."""
    answers = {
        200: Answer("the file", {media: Str()}, headers=("ETag",)),
        304: Answer("not modified (If-None-Match)", headers=("ETag",)),
        404: html("no such file"),
    }
    name = PathParam("name", STATIC_NAME, description="the file's name (any other name: 404)")
    return dashboard_op(op_id, summary, answers, path=(name,))


# --- the JSON answers ---------------------------------------------------------------------------------------


TELEMETRY_PAGE = record(device_id=Str(), readings=Arr(READING), next_cursor=nullable(Str()))
STATES = record(states=Arr(record(device_id=Str(), last_seen=nullable(Int()), latest=Arr(READING))), now=Int())
# A bucket's numbers: avg, min and max over the bucket's numeric readings (null for a boolean
# series, charted by `last`); last is the bucket's last reading (null when it is a string).
BUCKET = record(
    start=Int(description="the bucket's aligned start, ms since the epoch (UTC)"),
    count=Int(description="the readings the bucket summarises (numbers; booleans for a boolean series)"),
    avg=nullable(Num()),
    min=nullable(Num()),
    max=nullable(Num()),
    last=nullable(OneOf(options=(Num(), Bool()))),
)
AGGREGATES = record(
    interval_ms=Int(),
    series=Arr(record(metric=Str(), unit=Str(), buckets=Arr(BUCKET))),
)
SPARKLINES = record(
    interval_ms=Int(),
    sparklines=Arr(
        record(
            device_id=Str(),
            metric=Str(),
            unit=Str(),
            points=Arr(Arr(Num(), description="[hour start in ms, that hour's average]")),
        )
    ),
)
TICKET = record(ticket=Str(), expires_at=Int(), url=Str(), realm=Str())
CSRF_HEADER = Header("X-CSRF-Token", Str(), "the page's CSRF token", required=True)
