"""Telemetry: ingestion (native and ThingsBoard-compatible paths) and queries."""

from __future__ import annotations

import re
import time

from chalice.app import Blueprint, Request, Response

from chalicelib import wiring
from chalicelib.api.common import METRIC, int_param, query_params, raw_body, readable_device, time_param
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.auth import Principal
from chalicelib.domain.chunks import HOUR_MS
from chalicelib.domain.ingest import ingest
from chalicelib.domain.parsing import parse_payload
from chalicelib.domain.query import Cursor, Window, page_of
from chalicelib.errors import InvalidParameterError, IotCloudError, UnauthorizedError

telemetry_api = Blueprint(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
MAX_PAGE = 10_000
QUERY_ITEMS_PER_PAGE = 100


INGEST_WRONG_KIND = "telemetry is posted with the device's own token, not an admin token"


def _rejected(error: IotCloudError) -> None:
    """Every refused post, its authentication included, is counted by its error code."""
    wiring.metrics().add("RejectedRequests", 1, ErrorCode=error.code)


def _thingsboard_token(_request: Request, params: dict[str, str]) -> str:
    token = params.get("token") or ""
    if not token or len(token) > 512:
        raise UnauthorizedError("unknown token")
    return token


def _ingest(request: Request, device_id: str) -> Response:
    """Parse, store, answer; every outcome is counted in the metrics."""
    metrics = wiring.metrics()
    started = time.perf_counter()
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidParameterError("Idempotency-Key must be 1-128 printable ASCII characters")
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
    metrics.add("IngestRequests", 1)
    metrics.add("ReadingsIngested", outcome.accepted)
    metrics.add("BatchSize", parsed.records)
    metrics.add("IngestLatency", (time.perf_counter() - started) * 1000, "Milliseconds")
    return json_response({"accepted": outcome.accepted, "records": parsed.records, "ignored": parsed.ignored})


@route(telemetry_api, "/v1/telemetry", "POST", auth=Auth.DEVICE, wrong_kind=INGEST_WRONG_KIND, on_error=_rejected)
def post_telemetry(caller: str) -> Response:
    return _ingest(telemetry_api.current_request, caller)


@route(
    telemetry_api,
    "/api/v1/{token}/telemetry",
    "POST",
    auth=Auth.DEVICE,
    token=_thingsboard_token,
    wrong_kind=INGEST_WRONG_KIND,
    on_error=_rejected,
)
def post_thingsboard_telemetry(caller: str, token: str) -> Response:
    return _ingest(telemetry_api.current_request, caller)


@route(telemetry_api, "/v1/devices/{device_id}/telemetry", "GET", auth=Auth.EITHER)
def get_telemetry(principal: Principal, device_id: str) -> Response:
    request = telemetry_api.current_request
    readable_device(principal, device_id)
    params = query_params(request)
    now = now_ms()
    window = Window(
        from_ms=time_param(params, "from", 0, now),
        to_ms=time_param(params, "to", now + HOUR_MS, now),
        metric=params.get("metric") or None,
        limit=int_param(params, "limit", 1000, 1, MAX_PAGE),
    )
    if window.metric is not None and not METRIC.match(window.metric):
        raise InvalidParameterError("metric is not a valid metric name")
    if window.from_ms > window.to_ms:
        raise InvalidParameterError("from must not be after to")
    cursor = Cursor.decode(params["cursor"]) if params.get("cursor") else None
    if principal.is_admin:
        wiring.devices().get(device_id)  # 404 for a device that does not exist
    low, high = window.key_range(cursor)
    chunks, more = wiring.readings().chunks(device_id, low, high, QUERY_ITEMS_PER_PAGE)
    page = page_of(chunks, more, window, cursor)
    return json_response(
        {
            "device_id": device_id,
            "readings": [{"metric": r.metric, "unit": r.unit, "ts": r.ts_ms, "value": r.value} for r in page.readings],
            "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
        }
    )


@route(telemetry_api, "/v1/devices/{device_id}/state", "GET", auth=Auth.EITHER)
def get_state(principal: Principal, device_id: str) -> Response:
    state = wiring.devices().state(readable_device(principal, device_id))
    return json_response(
        {
            "device_id": device_id,
            "last_seen": state.last_seen,
            "latest": [{"metric": r.metric, "unit": r.unit, "ts": r.ts_ms, "value": r.value} for r in state.latest],
        }
    )
