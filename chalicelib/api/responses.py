"""JSON answers: bodies, and the JSON shape of a domain error (its status from errors.HTTP_STATUS)."""

from __future__ import annotations

import json
from typing import Any

from chalice.app import Response

from chalicelib.errors import IotCloudError, MalformedPayloadError, Problem

JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")), status_code=status, headers={**JSON_HEADERS, **(headers or {})}
    )


def error_response(error: IotCloudError) -> Response:
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "details": [d.as_dict() for d in error.details],
    }
    headers: dict[str, str] = {}
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="iotcloud"'
    return json_response({"error": body}, error.status, headers)


def json_body(raw: bytes | None) -> Any:
    """The request's JSON body, or MalformedPayloadError."""
    try:
        return json.loads(raw or b"")
    except (ValueError, RecursionError) as e:
        raise MalformedPayloadError("the body is not valid JSON", [Problem("invalid_json", str(e)[:200])]) from e
