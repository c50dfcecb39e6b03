"""Small request helpers shared by the blueprints."""

from __future__ import annotations

import time
from typing import Any

from chalice.app import Request

from chalicelib import wiring
from chalicelib.domain.auth import Principal, bearer_token
from chalicelib.errors import InvalidParameterError


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def principal_of(request: Request) -> Principal:
    """Authenticate the request's bearer token."""
    return wiring.authenticator().authenticate(bearer_token(request.headers.get("authorization")))


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
