"""The one place that turns domain errors into HTTP answers."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from chalice.app import Response

from chalicelib.errors import IotCloudError, MalformedPayloadError, Problem, StorageUnavailableError

logger = logging.getLogger("iotcloud.api")

F = TypeVar("F", bound=Callable[..., Any])

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
    if isinstance(error, StorageUnavailableError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="iotcloud"'
    return json_response({"error": body}, error.status, headers)


def handles_errors(view: F) -> F:
    """Answer domain errors with their JSON shape; anything else is a logged 500."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except IotCloudError as e:
            if e.status >= 500:
                logger.warning("request failed: %s", e.message, exc_info=e)
            return error_response(e)
        except Exception:
            logger.exception("unhandled error")
            return json_response(
                {"error": {"code": "internal_error", "message": "an internal error occurred", "details": []}}, 500
            )

    return wrapper  # type: ignore[return-value]


def json_body(raw: bytes | None) -> Any:
    """The request's JSON body, or MalformedPayloadError."""
    try:
        return json.loads(raw or b"")
    except (ValueError, RecursionError) as e:
        raise MalformedPayloadError("the body is not valid JSON", [Problem("invalid_json", str(e)[:200])]) from e
