"""The dashboard routes' part of the OpenAPI document (merged by chalicelib/api/openapi_doc.py).

Pages answer HTML (documented as text/html), form posts answer 303 when done, and the JSON under
/dashboard/data takes the session cookie (the `dashboardSession` security scheme).
"""

from __future__ import annotations

from typing import Any

from chalicelib.api.params import ALERTS_PAGE, REPORTS_PAGE
from chalicelib.domain.rules import MAX_PAGE

# --- merged into chalicelib/api/openapi_doc.py's DOCUMENT (paths and components.securitySchemes) ---------------

_READING = {
    "type": "object",
    "required": ["metric", "unit", "ts", "value"],
    "properties": {
        "metric": {"type": "string"},
        "unit": {"type": "string"},
        "ts": {"type": "integer"},
        "value": {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
    },
}
_LOCATION = {"Location": {"schema": {"type": "string"}}}
_TO_SIGN_IN = {"description": "no session, or an expired one: to the sign-in page", "headers": _LOCATION}
_REDIRECT = {"description": "done: back to a page (post, redirect, get)", "headers": _LOCATION}
_COOKIE: list[dict[str, list[str]]] = [{"dashboardSession": []}]
_FORM_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}
    },
}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    form: bool = False,
    public: bool = False,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": operation_id,
        "summary": "Dashboard: " + summary,
        "tags": ["dashboard"],
        "security": [] if public else _COOKIE,
        "responses": responses,
    }
    if parameters:
        doc["parameters"] = parameters
    if form:
        doc["requestBody"] = _FORM_BODY
    return doc


def _page(operation_id: str, summary: str, parameters: list[dict[str, Any]], **errors: str) -> dict[str, Any]:
    """A page: the HTML, or to sign-in without a session; `errors` maps e400=... to HTML error pages."""
    responses = {
        "200": _html("the page"),
        "303": _TO_SIGN_IN,
        **{code.removeprefix("e"): _html(text) for code, text in errors.items()},
        "503": _html("storage unavailable: a page saying so"),
    }
    return _operation(operation_id, summary, responses, parameters)


def _form(operation_id: str, summary: str, **errors: str) -> dict[str, Any]:
    """A form post: redirect to a page when done (CSRF token in the form)."""
    responses = {
        "303": _REDIRECT,
        "403": _html("the form's CSRF token is missing or wrong (or no session)"),
        **{code.removeprefix("e"): _html(text) for code, text in errors.items()},
        "503": _html("storage unavailable: a page saying so"),
    }
    return _operation(operation_id, summary, responses, form=True)


def _data(operation_id: str, summary: str, ok: dict[str, Any], parameters: list[dict[str, Any]], **errors: str) -> Any:
    """JSON for the pages' script: the session cookie; errors in the API's JSON error shape."""
    responses = {
        "200": _json(ok),
        "401": _error("no session, or an expired one: sign in again"),
        **{code.removeprefix("e"): _error(text) for code, text in errors.items()},
    }
    return _operation(operation_id, summary, responses, parameters)


def _file(operation_id: str, summary: str, media: str) -> dict[str, Any]:
    responses = {
        "200": {"description": "the file", "content": {media: {"schema": {"type": "string"}}}},
        "304": {"description": "not modified (If-None-Match)"},
        "404": _html("no such file"),
    }
    return _operation(operation_id, summary, responses, [_query("v", {"type": "string"})], public=True)


_CURSOR = _query("cursor", {"type": "string"})

OPENAPI_SECURITY_SCHEMES: dict[str, Any] = {
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "iotcloud_session",
        "description": "the dashboard's signed session cookie, set by POST /dashboard/sign-in",
    }
}

OPENAPI_PATHS: dict[str, Any] = {
    "/dashboard/sign-in": {
        "get": _operation(
            "dashboardSignInPage",
            "the sign-in form (already signed in: on to `next`)",
            {"200": _html("the sign-in form"), "303": _REDIRECT},
            [_query("next", {"type": "string"}), _query("expired", {"type": "string"})],
            public=True,
        ),
        "post": _operation(
            "dashboardSignIn",
            "sign in with an admin token (form: token, signin_token, next); sets the session cookie",
            {
                "303": {**_REDIRECT, "description": "signed in: on to `next`, with the session cookie"},
                "400": _html("no token, or an unreadable form: the form again, saying so"),
                "401": _html("an unknown token: the form again, saying so"),
                "403": _html("a device token, or a sign-in form that did not come from this dashboard"),
                "503": _html("storage unavailable: a page saying so"),
            },
            form=True,
            public=True,
        ),
    },
    "/dashboard/sign-out": {"post": _form("dashboardSignOut", "sign out (drops the session cookie)")},
    "/dashboard": {
        "get": _page(
            "dashboardFleet",
            "the fleet: status, last seen and latest values of each device; search (q) and paging",
            [
                _query("q", {"type": "string"}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                _CURSOR,
            ],
            e400="a bad parameter: a page saying which",
        )
    },
    "/dashboard/devices/{device_id}": {
        "parameters": [_path("device_id")],
        "get": _page(
            "dashboardDevice",
            "one device: latest state, a chart of each metric over a window, its alerts, commands",
            [
                _query("window", {"type": "string", "enum": ["1h", "6h", "24h", "7d"]}),
                _query("command", {"type": "string", "description": "a command just sent: its status"}),
            ],
            e400="a bad window",
            e404="no such device",
        ),
    },
    "/dashboard/devices/{device_id}/commands": {
        "parameters": [_path("device_id")],
        "post": _form(
            "dashboardSendCommand",
            "send a command (form: procedure, args and kwargs as JSON, timeout, csrf); on to the device page",
            e404="no such device",
            e422="an invalid command: a page listing every problem",
        ),
    },
    "/dashboard/alerts": {
        "get": _page(
            "dashboardAlerts",
            "alerts, filtered by state, severity, device and acknowledgement, paged",
            [
                _query("state", {"type": "string", "enum": ["active", "cleared"]}),
                _query("severity", {"type": "string", "enum": ["critical", "major", "minor", "warning"]}),
                _query("device", {"type": "string"}),
                _query("acknowledged", {"type": "string", "enum": ["true", "false"]}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": ALERTS_PAGE[1]}),
                _CURSOR,
            ],
            e400="a bad filter: a page saying which",
        )
    },
    "/dashboard/alerts/{alert_id}/ack": {
        "parameters": [_path("alert_id")],
        "post": _form(
            "dashboardAcknowledgeAlert",
            "acknowledge an alert (form: csrf, next); on to `next`",
            e404="no such alert",
        ),
    },
    "/dashboard/reports": {
        "get": _page(
            "dashboardReports",
            "scaling reports, newest first, paged",
            [_query("limit", {"type": "integer", "minimum": 1, "maximum": REPORTS_PAGE[1]}), _CURSOR],
            e400="a bad parameter",
        )
    },
    "/dashboard/reports/{report_id}": {
        "parameters": [_path("report_id")],
        "get": _page(
            "dashboardReport",
            "one scaling report (decisions, alarms, capacity, projection) with its chart",
            [],
            e404="no such report",
        ),
    },
    "/dashboard/reports/{report_id}/chart": {
        "parameters": [_path("report_id")],
        "get": _operation(
            "dashboardReportChart",
            "a report's chart",
            {
                "200": {"description": "the chart", "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
                "303": _TO_SIGN_IN,
                "404": _html("no such report"),
                "503": _html("storage unavailable"),
            },
        ),
    },
    "/dashboard/js/{name}": {
        "parameters": [_path("name")],
        "get": _file("dashboardScript", "a script, its own or a library built by `make assets`", "text/javascript"),
    },
    "/dashboard/css/{name}": {
        "parameters": [_path("name")],
        "get": _file("dashboardStylesheet", "a stylesheet", "text/css"),
    },
    "/dashboard/data/devices/{device_id}/telemetry": {
        "parameters": [_path("device_id")],
        "get": _data(
            "dashboardTelemetry",
            "for the page's script: what GET /v1/devices/{device_id}/telemetry answers an admin",
            {
                "device_id": {"type": "string"},
                "readings": {"type": "array", "items": _READING},
                "next_cursor": {"type": "string", "nullable": True},
            },
            [
                _query("metric", {"type": "string"}),
                _query("from", {"type": "string"}),
                _query("to", {"type": "string"}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                _CURSOR,
            ],
            e400="a bad parameter or cursor",
            e404="no such device",
            e503="storage unavailable: retry after Retry-After seconds",
        ),
    },
    "/dashboard/data/states": {
        "get": _data(
            "dashboardStates",
            "for the pages' script: last seen and latest values of up to 100 devices",
            {
                "states": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["device_id", "last_seen", "latest"],
                        "properties": {
                            "device_id": {"type": "string"},
                            "last_seen": {"type": "integer", "nullable": True},
                            "latest": {"type": "array", "items": _READING},
                        },
                    },
                },
                "now": {"type": "integer"},
            },
            [_query("ids", {"type": "string", "description": "device ids, comma-separated"}, required=True)],
            e400="no ids, too many, or not device ids",
            e503="storage unavailable: retry after Retry-After seconds",
        ),
    },
    "/dashboard/data/ticket": {
        "post": _data(
            "dashboardTicket",
            "for the pages' script: a one-minute WAMP ticket (header X-CSRF-Token)",
            {
                "ticket": {"type": "string"},
                "expires_at": {"type": "integer"},
                "url": {"type": "string"},
                "realm": {"type": "string"},
            },
            [{"name": "X-CSRF-Token", "in": "header", "required": True, "schema": {"type": "string"}}],
            e403="a missing or wrong X-CSRF-Token",
            e404="this stage has no public WebSocket URL: pages poll instead",
        )
    },
}
