"""The Function URL door: device ingestion from its own Lambda function, without API Gateway.

A Lambda Function URL invokes its function with API Gateway's HTTP API payload format 2.0
(`rawPath`, `rawQueryString`, lower-case `headers` with repeated values joined by commas,
`cookies`, `requestContext.http.method`, `body` and `isBase64Encoded`) and takes the same
format back (`statusCode`, `headers`, `cookies`, `body`, `isBase64Encoded`). The app's routes
are Chalice's REST API routes, which API Gateway matches before the function runs; here the
function matches them itself, for the ingestion routes only (`DOOR_ROUTES`), and hands the app
the REST proxy event it would have had from API Gateway. Everything after that is the REST
API's own code path: the same middleware, authentication, validation, storage, errors and
idempotency. An unknown path is a 404 `not_found`, a known path with another method a 405.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from chalicelib.api.responses import error_response
from chalicelib.api.routing import RouteSpec, spec_of
from chalicelib.api.telemetry import post_telemetry, post_thingsboard_telemetry
from chalicelib.errors import IotCloudError, MethodNotAllowedError, RouteNotFoundError

# The function's name in app.py, .chalice/config.json and the merge template (infra/resources.py).
FUNCTION_NAME = "ingest"
PAYLOAD_VERSION = "2.0"

RestApp = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class DoorRoute:
    """One route the door serves: its declaration and the pattern its raw path must match."""

    spec: RouteSpec
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, view: Callable[..., Any]) -> DoorRoute:
        spec = spec_of(view)
        assert spec is not None, f"{view.__name__} is not declared with routing.route"
        # "{name}" is one path segment, as in API Gateway; the rest of the path is literal.
        parts = re.split(r"\{(\w+)\}", spec.path)
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        return cls(spec, re.compile(f"^{regex}$"))


# The device ingestion routes: the native path and ThingsBoard's (the REST API serves them too).
DOOR_ROUTES = (DoorRoute.of(post_telemetry), DoorRoute.of(post_thingsboard_telemetry))


def rest_event(event: dict[str, Any]) -> dict[str, Any]:
    """The REST API proxy event of a Function URL event, or RouteNotFoundError/MethodNotAllowedError."""
    http = event["requestContext"]["http"]
    method = str(http["method"]).upper()
    path = event.get("rawPath") or "/"
    matches = [(route, found) for route in DOOR_ROUTES if (found := route.pattern.match(path))]
    if not matches:
        raise RouteNotFoundError(f"no route {path!r} here: this address takes device telemetry only")
    route_and_match = next(((r, m) for r, m in matches if r.spec.method == method), None)
    if route_and_match is None:
        allow = ", ".join(sorted({r.spec.method for r, _ in matches}))
        raise MethodNotAllowedError(f"{path} takes {allow}", allow)
    route, found = route_and_match
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    query = parse_qs(event.get("rawQueryString") or "", keep_blank_values=True)
    context = event["requestContext"]
    return {
        "resource": route.spec.path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: value.split(",") for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        # API Gateway hands path parameters decoded.
        "pathParameters": {name: unquote(value) for name, value in found.groupdict().items()} or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.spec.path,
            "httpMethod": method,
            "path": path,
            "stage": context.get("stage", "$default"),
            "requestId": context.get("requestId") or str(uuid.uuid4()),
            "domainName": context.get("domainName", ""),
            "identity": {"sourceIp": http.get("sourceIp", ""), "userAgent": http.get("userAgent", "")},
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def url_response(rest: dict[str, Any]) -> dict[str, Any]:
    """A REST proxy answer in the Function URL's response format (no multi-value headers there)."""
    headers = dict(rest.get("headers") or {})
    cookies: list[str] = []
    for name, values in (rest.get("multiValueHeaders") or {}).items():
        if name.lower() == "set-cookie":
            cookies.extend(values)
        else:
            headers[name] = ",".join(values)
    answer: dict[str, Any] = {
        "statusCode": rest["statusCode"],
        "headers": headers,
        "body": rest.get("body") or "",
        "isBase64Encoded": bool(rest.get("isBase64Encoded")),
    }
    if cookies:
        answer["cookies"] = cookies
    return answer


def handle(app: RestApp, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Serve one Function URL invocation with the app's REST handler."""
    try:
        rest = rest_event(event)
    except IotCloudError as e:
        answer = error_response(e)
        if isinstance(e, MethodNotAllowedError):
            answer.headers["Allow"] = e.allow
        return url_response(answer.to_dict())
    return url_response(app(rest, context))
