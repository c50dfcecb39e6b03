"""Telemetry: ingestion (native and ThingsBoard-compatible paths) and queries."""

from __future__ import annotations

import re
import time
from typing import Any

from chalice.app import Blueprint, Request, Response

from chalicelib import wiring
from chalicelib.api.params import (
    TELEMETRY_QUERY,
    device_param,
    query_params,
    raw_body,
    readable_device,
    telemetry_window,
)
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.auth import Principal
from chalicelib.domain.ingest import ingest
from chalicelib.domain.parsing import parse_payload
from chalicelib.domain.query import page_of
from chalicelib.domain.readings import Reading
from chalicelib.errors import InvalidParameterError, IotCloudError, UnauthorizedError

telemetry_api = Blueprint(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
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


def reading_json(r: Reading) -> dict[str, Any]:
    """A reading as every answer shows it (the API's and the dashboard's)."""
    return {"metric": r.metric, "unit": r.unit, "ts": r.ts_ms, "value": r.value}


def telemetry_page(device_id: str, params: dict[str, str], *, check_device: bool) -> dict[str, Any]:
    """One page of a device's readings for the query `params` (the API's and the dashboard's answer).

    `check_device`: look the device up first, so one that does not exist is 404 (a device
    reading its own data needs no lookup).
    """
    window, cursor = telemetry_window(params, now_ms())
    if check_device:
        wiring.devices().get(device_param(device_id))
    low, high = window.key_range(cursor)
    chunks, more = wiring.readings().chunks(device_id, low, high, QUERY_ITEMS_PER_PAGE)
    page = page_of(chunks, more, window, cursor)
    return {
        "device_id": device_id,
        "readings": [reading_json(r) for r in page.readings],
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
    }


@route(telemetry_api, "/v1/devices/{device_id}/telemetry", "GET", auth=Auth.EITHER, query=TELEMETRY_QUERY)
def get_telemetry(principal: Principal, device_id: str) -> Response:
    readable_device(principal, device_id)
    params = query_params(telemetry_api.current_request)
    return json_response(telemetry_page(device_id, params, check_device=principal.is_admin))


@route(telemetry_api, "/v1/devices/{device_id}/state", "GET", auth=Auth.EITHER)
def get_state(principal: Principal, device_id: str) -> Response:
    state = wiring.devices().state(readable_device(principal, device_id))
    return json_response(
        {
            "device_id": device_id,
            "last_seen": state.last_seen,
            "latest": [reading_json(r) for r in state.latest],
        }
    )
