"""Telemetry: ingestion (native and ThingsBoard-compatible paths) and queries."""

from __future__ import annotations

import re
import time
from typing import Any

from chalice.app import Blueprint, Request, Response

from chalicelib import wiring
from chalicelib.api.operations import Answer, Answers, Body, Header, Op, PathParam, ok
from chalicelib.api.params import (
    DEVICE_ID,
    DEVICE_TELEMETRY_QUERY,
    aggregation_query,
    query_params,
    raw_body,
    telemetry_window,
)
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.aggregation_rules import AGGREGATES, MAX_BUCKETS, MAX_RAW_ITEMS, MAX_WINDOW_DAYS
from chalicelib.domain.auth import Principal
from chalicelib.domain.ingest import ingest
from chalicelib.domain.parsing import parse_payload
from chalicelib.domain.payload_shapes import DEFAULT_LIMITS, SENML_PACK, SENML_XML, TELEMETRY_JSON
from chalicelib.domain.query import page_of
from chalicelib.domain.readings import Reading
from chalicelib.domain.rules import MAX_METRIC_CHARS
from chalicelib.domain.schema import (
    Arr,
    Bool,
    Int,
    Named,
    Num,
    Obj,
    OneOf,
    Schema,
    Str,
    nullable,
    record,
    required,
)
from chalicelib.errors import InvalidParameterError, IotCloudError, UnauthorizedError

telemetry_api = Blueprint(__name__)

MAX_IDEMPOTENCY_KEY_CHARS = 128
IDEMPOTENCY_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}$")
MAX_PATH_TOKEN_CHARS = 512  # a longer ThingsBoard path token is no token
QUERY_ITEMS_PER_PAGE = 100


INGEST_WRONG_KIND = "telemetry is posted with the device's own token, not an admin token"


def _rejected(error: IotCloudError) -> None:
    """Every refused post, its authentication included, is counted by its error code."""
    wiring.metrics().add("RejectedRequests", 1, ErrorCode=error.code)


def _thingsboard_token(_request: Request, params: dict[str, str]) -> str:
    token = params.get("token") or ""
    if not token or len(token) > MAX_PATH_TOKEN_CHARS:
        raise UnauthorizedError("unknown token")
    return token


def _ingest(request: Request, device_id: str) -> Response:
    """Parse, store, answer; every outcome is counted in the metrics."""
    metrics = wiring.metrics()
    started = time.perf_counter()
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidParameterError(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters")
    received_at = now_ms()
    settings = wiring.bound_settings()
    parsed = parse_payload(raw_body(request), request.headers.get("content-type"), received_at, settings.limits)
    outcome = ingest(
        device_id,
        parsed.readings,
        received_at,
        store=wiring.readings(),
        devices=wiring.devices(),
        idempotency_key=key,
    )
    # BatchSize's SampleCount is the number of ingest requests: no metric of its own (fewer log bytes).
    metrics.add("ReadingsIngested", outcome.accepted)
    metrics.add("BatchSize", parsed.records)
    metrics.add("IngestLatency", (time.perf_counter() - started) * 1000, "Milliseconds")
    return json_response({"accepted": outcome.accepted, "records": parsed.records, "ignored": parsed.ignored})


INGEST_RESULT = Named(
    "IngestResult",
    Obj(
        members=required(
            accepted=Int(description="readings stored (after de-duplication)"),
            records=Int(),
            ignored=Int(description="SenML records accepted but not stored (vd, s)"),
        )
    ),
)
TELEMETRY_BODY = Body(
    {"application/json": TELEMETRY_JSON, "application/senml+json": SENML_PACK, "application/senml+xml": SENML_XML},
    validated=False,  # parse_payload reads it (SenML's rules are not a schema)
)
_INGEST_ANSWERS: Answers = {
    200: ok(INGEST_RESULT, "stored (all readings, or none on error)"),
    400: "malformed body, bad Idempotency-Key",
    413: f"body larger than the limit ({DEFAULT_LIMITS.max_body_bytes >> 20} MiB by default)",
    415: "unsupported content type",
    422: "well-formed but invalid readings: details lists every problem with index and metric",
    503: "storage throttled or unavailable after retries: retry after Retry-After seconds",
}
POST_TELEMETRY = Op(
    "postTelemetry",
    "Post readings with the device's token; all-or-nothing",
    headers=(
        Header(
            "Idempotency-Key",
            Str(max_length=MAX_IDEMPOTENCY_KEY_CHARS, pattern=IDEMPOTENCY_KEY),
            "a retry with the same key stores nothing twice",
        ),
    ),
    body=TELEMETRY_BODY,
    answers=_INGEST_ANSWERS,
)


@route(
    telemetry_api,
    "/v1/telemetry",
    "POST",
    auth=Auth.DEVICE,
    wrong_kind=INGEST_WRONG_KIND,
    on_error=_rejected,
    doc=POST_TELEMETRY,
)
def post_telemetry(caller: str) -> Response:
    return _ingest(telemetry_api.current_request, caller)


POST_THINGSBOARD_TELEMETRY = Op(
    "postThingsboardTelemetry",
    "ThingsBoard-compatible ingestion: the device token is in the path",
    path=(PathParam("token"),),
    security=(),  # the token is the path's, not a security scheme's
    body=TELEMETRY_BODY,
    answers=_INGEST_ANSWERS,
)


@route(
    telemetry_api,
    "/api/v1/{token}/telemetry",
    "POST",
    auth=Auth.DEVICE,
    token=_thingsboard_token,
    wrong_kind=INGEST_WRONG_KIND,
    on_error=_rejected,
    doc=POST_THINGSBOARD_TELEMETRY,
)
def post_thingsboard_telemetry(caller: str, token: str) -> Response:
    return _ingest(telemetry_api.current_request, caller)


READING = Obj(
    members=required(
        metric=Str(max_length=MAX_METRIC_CHARS),
        unit=Str(),
        ts=Int(description="milliseconds since the Unix epoch, UTC"),
        value=OneOf(options=(Num(), Str(), Bool())),
    )
)


def reading_json(r: Reading) -> dict[str, Any]:
    """A reading as every answer shows it (the API's and the dashboard's)."""
    return {"metric": r.metric, "unit": r.unit, "ts": r.ts_ms, "value": r.value}


def telemetry_page(device_id: str, params: dict[str, str], *, check_device: bool) -> dict[str, Any]:
    """One page of a device's readings for the query `params` (the API's and the dashboard's answer).

    `check_device`: look the device up first, so one that does not exist is 404 (a device
    reading its own data needs no lookup). Its route has checked the id's shape (DEVICE_ID).
    """
    window, cursor = telemetry_window(params, now_ms())
    if check_device:
        wiring.devices().get(device_id)
    low, high = window.key_range(cursor)
    chunks, more = wiring.readings().chunks(device_id, low, high, QUERY_ITEMS_PER_PAGE)
    page = page_of(chunks, more, window, cursor)
    return {
        "device_id": device_id,
        "readings": [reading_json(r) for r in page.readings],
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
    }


def device_answer(**members: Schema) -> Answer:
    """A device's data: its id and `members`, each always present."""
    return ok(record(device_id=Str(), **members))


def aggregated_page(device_id: str, params: dict[str, str], *, check_device: bool) -> dict[str, Any] | None:
    """One page of the aggregated query `params` asks for (None: it asks for raw readings).

    Whole hours the rollup job has closed come from the rollups, the rest from raw chunks.
    """
    query = aggregation_query(device_id, params, now_ms())
    if query is None:
        return None
    if check_device:
        wiring.devices().get(device_id)
    from chalicelib.domain.aggregation import aggregated_answer  # loads with the first aggregated query

    return aggregated_answer(
        query, params.get("cursor") or None, chunks=wiring.readings(), rollups=wiring.rollup_store()
    )


RAW_TELEMETRY = record(device_id=Str(), readings=Arr(READING), next_cursor=nullable(Str()))
AGGREGATED_TELEMETRY = Named(
    "AggregatedTelemetry",
    record(
        device_id=Str(),
        metric=Str(max_length=MAX_METRIC_CHARS),
        unit=nullable(Str(description="the metric's unit (null: no readings in the window)")),
        agg=Str(enum=AGGREGATES),
        interval_ms=Int(minimum=1, description="bucket length (tz: local days, 23 to 25 hours each)"),
        buckets=Arr(
            record(
                start=Int(description="the bucket's aligned start, ms since the epoch"),
                count=Int(minimum=1, description="readings aggregated (avg/min/max/sum: the numbers)"),
                value=OneOf(options=(Num(), Str(), Bool())),
            ),
            description=f"non-empty buckets in time order, at most {MAX_BUCKETS:,}",
        ),
        next_cursor=nullable(
            Str(description=f"the rest of the window, when this page read its {MAX_RAW_ITEMS:,} raw chunks")
        ),
    ),
)
GET_TELEMETRY = Op(
    "getTelemetry",
    "Readings in time order, de-duplicated, paged with an opaque cursor; with agg, aggregated buckets "
    "(admin, or the device itself)",
    description=(
        "Without `agg`: raw readings. With `agg` (and `metric`, and one of `interval` or `points`): the "
        "window's non-empty buckets, aligned to the epoch in UTC (with `tz`: to local midnight, whole-day "
        f"intervals). Limits: {MAX_BUCKETS:,} buckets, a window of {MAX_WINDOW_DAYS} days, {MAX_RAW_ITEMS:,} "
        "raw chunks a page (then `next_cursor`). 400 codes: invalid_parameter, too_many_buckets, "
        "window_too_long, ambiguous_unit, not_numeric, unknown_time_zone, interval_not_whole_days, "
        "cursor_mismatch."
    ),
    path=(DEVICE_ID,),
    answers={
        200: ok(OneOf(options=(RAW_TELEMETRY, AGGREGATED_TELEMETRY)), "raw readings, or with agg the buckets"),
        400: "bad parameter or cursor; with agg also too_many_buckets, window_too_long, ambiguous_unit, "
        "not_numeric, unknown_time_zone, interval_not_whole_days, cursor_mismatch",
        503: "storage unavailable",
    },
)


@route(
    telemetry_api,
    "/v1/devices/{device_id}/telemetry",
    "GET",
    auth=Auth.EITHER,
    query=DEVICE_TELEMETRY_QUERY,
    doc=GET_TELEMETRY,
)
def get_telemetry(principal: Principal, device_id: str) -> Response:
    principal.require_device_or_admin(device_id)
    params = query_params(telemetry_api.current_request)
    aggregated = aggregated_page(device_id, params, check_device=principal.is_admin)
    if aggregated is not None:
        return json_response(aggregated)
    return json_response(telemetry_page(device_id, params, check_device=principal.is_admin))


GET_STATE = Op(
    "getState",
    "Latest value of each metric and last_seen (admin, or the device itself)",
    path=(DEVICE_ID,),
    answers={200: device_answer(last_seen=nullable(Int()), latest=Arr(READING))},
)


@route(telemetry_api, "/v1/devices/{device_id}/state", "GET", auth=Auth.EITHER, doc=GET_STATE)
def get_state(principal: Principal, device_id: str) -> Response:
    principal.require_device_or_admin(device_id)
    # Exact: the folded state merged with the chunks the live stream has not folded yet (domain.state).
    state = wiring.device_states().exact(device_id, now_ms())
    return json_response(
        {
            "device_id": device_id,
            "last_seen": state.last_seen,
            "latest": [reading_json(r) for r in state.readings()],
        }
    )
