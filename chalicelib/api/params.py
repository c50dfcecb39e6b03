"""Small request helpers shared by the blueprints."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from chalice.app import Request

from chalicelib.domain.auth import Principal
from chalicelib.domain.devices import ID_PATTERN
from chalicelib.domain.parsing import parse_time
from chalicelib.errors import DeviceNotFoundError, InvalidParameterError

MAX_QUERY_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
METRIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-:./_]{0,127}$")


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


def readable_device(principal: Principal, device_id: str) -> str:
    if not ID_PATTERN.match(device_id):
        raise DeviceNotFoundError(f"no device {device_id!r}")
    principal.require_device_or_admin(device_id)
    return device_id
