"""The OpenAPI 3 document of every route, built on first request (not at import).

`DOCUMENT` holds what is still written by hand (summaries, bodies, responses); `document(routes)`
adds what each route declares with `routing.route`: its query parameters, generated from the
same `api.params` declarations the route reads its request through.
tests/functional/test_openapi.py keeps it true: every Chalice route is in it, every declared
parameter is documented as declared, and every response the tests see matches its schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from chalice.app import RouteEntry

from chalicelib.api.alerts_doc import OPENAPI_PATHS as ALERTS_PATHS
from chalicelib.api.alerts_doc import OPENAPI_SCHEMAS as ALERTS_SCHEMAS
from chalicelib.api.dashboard_doc import OPENAPI_PATHS as DASHBOARD_PATHS
from chalicelib.api.dashboard_doc import OPENAPI_SECURITY_SCHEMES as DASHBOARD_SECURITY
from chalicelib.api.operations import Answer, Header, Op
from chalicelib.api.routing import Auth, RouteSpec, spec_of
from chalicelib.domain.rules import MAX_METRIC_CHARS, MAX_STRING_BYTES
from chalicelib.domain.schema import Named

_ERROR = {"$ref": "#/components/schemas/Error"}
_READING = {
    "type": "object",
    "required": ["metric", "unit", "ts", "value"],
    "properties": {
        "metric": {"type": "string", "maxLength": MAX_METRIC_CHARS},
        "unit": {"type": "string"},
        "ts": {"type": "integer", "description": "milliseconds since the Unix epoch, UTC"},
        "value": {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
    },
}
_VALUE = {"oneOf": [{"type": "number"}, {"type": "string", "maxLength": MAX_STRING_BYTES}, {"type": "boolean"}]}
_TIME = {
    "oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
    "description": "epoch seconds, epoch milliseconds, or ISO 8601 with a zone",
}
_COMMAND_PATH = {"name": "command_id", "in": "path", "required": True, "schema": {"type": "string"}}
_REPORT_PATH = {"name": "report_id", "in": "path", "required": True, "schema": {"type": "string"}}
_DEVICE_PATH = {"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Authenticating a device token reads the devices table, so any authenticated call may answer 503.
_AUTH_ERRORS = {
    "401": _error("missing or unknown token"),
    "403": _error("not allowed (or device disabled)"),
    "503": _error("storage unavailable: retry after Retry-After seconds"),
}
_TELEMETRY_RESPONSES = {
    "200": _json({"$ref": "#/components/schemas/IngestResult"}, "stored (all readings, or none on error)"),
    "400": _error("malformed body, bad Idempotency-Key"),
    **_AUTH_ERRORS,
    "413": _error("body larger than the limit (1 MiB by default)"),
    "415": _error("unsupported content type"),
    "422": _error("well-formed but invalid readings: details lists every problem with index and metric"),
    "503": _error("storage throttled or unavailable after retries: retry after Retry-After seconds"),
}
_TELEMETRY_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/TelemetryJson"}},
        "application/senml+json": {"schema": {"$ref": "#/components/schemas/SenmlPack"}},
        "application/senml+xml": {"schema": {"type": "string", "description": "SenML XML (RFC 8428 section 7)"}},
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "iotcloud API",
        "version": "1.0.0",
        "description": "Device registry, telemetry ingestion (JSON, SenML JSON/XML, ThingsBoard-style) and queries. "
        'Every error is {"error": {"code", "message", "details"}}.',
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/v1/devices/{device_id}/telemetry": {
            "parameters": [_DEVICE_PATH],
            "get": {
                "operationId": "getTelemetry",
                "summary": "Readings in time order, de-duplicated, paged with an opaque cursor"
                " (admin, or the device itself)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["device_id", "readings", "next_cursor"],
                            "properties": {
                                "device_id": {"type": "string"},
                                "readings": {"type": "array", "items": _READING},
                                "next_cursor": {"type": "string", "nullable": True},
                            },
                        }
                    ),
                    "400": _error("bad parameter or cursor"),
                    **_AUTH_ERRORS,
                    "404": _error("no such device"),
                    "503": _error("storage unavailable"),
                },
            },
        },
        "/v1/devices/{device_id}/state": {
            "parameters": [_DEVICE_PATH],
            "get": {
                "operationId": "getState",
                "summary": "Latest value of each metric and last_seen (admin, or the device itself)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["device_id", "last_seen", "latest"],
                            "properties": {
                                "device_id": {"type": "string"},
                                "last_seen": {"type": "integer", "nullable": True},
                                "latest": {"type": "array", "items": _READING},
                            },
                        }
                    ),
                    **_AUTH_ERRORS,
                    "404": _error("no such device"),
                },
            },
        },
        "/v1/telemetry": {
            "post": {
                "operationId": "postTelemetry",
                "summary": "Post readings with the device's token; all-or-nothing",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 128},
                        "description": "a retry with the same key stores nothing twice",
                    }
                ],
                "requestBody": _TELEMETRY_BODY,
                "responses": _TELEMETRY_RESPONSES,
            }
        },
        "/api/v1/{token}/telemetry": {
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {
                "operationId": "postThingsboardTelemetry",
                "summary": "ThingsBoard-compatible ingestion: the device token is in the path",
                "security": [],
                "requestBody": _TELEMETRY_BODY,
                "responses": _TELEMETRY_RESPONSES,
            },
        },
        "/v1/devices/{device_id}/rollups": {
            "parameters": [_DEVICE_PATH],
            "get": {
                "operationId": "getRollups",
                "summary": "Hourly rollups of numeric readings from the daily job (admin, or the device itself)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["device_id", "rollups"],
                            "properties": {
                                "device_id": {"type": "string"},
                                "rollups": {"type": "array", "items": {"$ref": "#/components/schemas/Rollup"}},
                            },
                        }
                    ),
                    "400": _error("bad parameter"),
                    **_AUTH_ERRORS,
                    "404": _error("no such device"),
                },
            },
        },
        "/v1/search": {
            "get": {
                "operationId": "search",
                "summary": "Devices and metrics whose string readings held a word, from the daily index (admin)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["word", "results", "count"],
                            "properties": {
                                "word": {"type": "string"},
                                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Posting"}},
                                "count": {"type": "integer"},
                            },
                        }
                    ),
                    "400": _error("q is not one word of 1-64 letters or digits"),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/v1/reports": {
            "get": {
                "operationId": "listReports",
                "summary": "Scaling reports, newest first, paged with an opaque cursor (admin)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["reports", "next_cursor"],
                            "properties": {
                                "reports": {"type": "array", "items": {"$ref": "#/components/schemas/ReportSummary"}},
                                "next_cursor": {"type": "string", "nullable": True},
                            },
                        }
                    ),
                    "400": _error("bad limit or cursor"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/reports/{report_id}": {
            "parameters": [_REPORT_PATH],
            "get": {
                "operationId": "getReport",
                "summary": "One scaling report (admin); schema in README, 'Scaling reports'",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Report"}),
                    **_AUTH_ERRORS,
                    "404": _error("no such report"),
                },
            },
        },
        "/v1/reports/{report_id}/chart": {
            "parameters": [_REPORT_PATH],
            "get": {
                "operationId": "getReportChart",
                "summary": "The report's chart: utilization against thresholds and capacity (admin)",
                "responses": {
                    "200": {"description": "SVG", "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
                    **_AUTH_ERRORS,
                    "404": _error("no such report"),
                },
            },
        },
        "/v1/devices/{device_id}/commands": {
            "parameters": [_DEVICE_PATH],
            "post": {
                "operationId": "sendCommand",
                "summary": "Call a procedure of a device (admin): over WAMP if it has registered it, else queued "
                "for the device's HTTP long-poll",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandRequest"}}},
                },
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/Command"}, "invoked or queued"),
                    "400": _error("malformed JSON"),
                    **_AUTH_ERRORS,
                    "404": _error("no such device"),
                    "422": _error("invalid fields"),
                },
            },
        },
        "/v1/devices/{device_id}/commands/{command_id}": {
            "parameters": [_DEVICE_PATH, _COMMAND_PATH],
            "get": {
                "operationId": "getCommand",
                "summary": "A command's status (queued, invoked, done, failed, timeout) and result (admin)",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Command"}),
                    **_AUTH_ERRORS,
                    "404": _error("no such command"),
                },
            },
        },
        "/v1/commands": {
            "get": {
                "operationId": "pollCommands",
                "summary": "The device's queued commands, waiting up to `wait` seconds for one (device token)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["commands"],
                            "properties": {"commands": {"type": "array", "items": {"type": "object"}}},
                        }
                    ),
                    "400": _error("bad wait"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/commands/{command_id}/result": {
            "parameters": [_COMMAND_PATH],
            "post": {
                "operationId": "postCommandResult",
                "summary": 'The device answers a command: {"result": ...} or {"error": {...}}',
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Command"}),
                    "400": _error("malformed JSON"),
                    **_AUTH_ERRORS,
                    "404": _error("no such command for this device"),
                    "409": _error("the command is already completed"),
                    "422": _error("neither or both of result and error"),
                },
            },
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"})},
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "device or admin token"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "details"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["code", "message"],
                                    "properties": {
                                        "code": {"type": "string"},
                                        "message": {"type": "string"},
                                        "index": {"type": "integer", "description": "the payload's record"},
                                        "metric": {"type": "string", "description": "the record's metric"},
                                        "field": {"type": "string", "description": "the body's member (RFC 9457)"},
                                    },
                                },
                            },
                        },
                    }
                },
            },
            "Record": {
                "type": "object",
                "required": ["values"],
                "properties": {
                    "ts": _TIME,
                    "values": {"type": "object", "additionalProperties": _VALUE, "maxProperties": 100},
                },
            },
            "TelemetryJson": {
                "oneOf": [
                    {
                        "type": "object",
                        "additionalProperties": _VALUE,
                        "description": "metric -> value at receive time (optional ts key)",
                    },
                    {"$ref": "#/components/schemas/Record"},
                    {"type": "array", "maxItems": 1000, "items": {"type": "object"}},
                ]
            },
            "SenmlPack": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "properties": {
                        "bn": {"type": "string"},
                        "bt": {"type": "number"},
                        "bu": {"type": "string"},
                        "bv": {"type": "number"},
                        "bver": {"type": "integer"},
                        "n": {"type": "string"},
                        "u": {"type": "string"},
                        "v": {"type": "number"},
                        "vs": {"type": "string"},
                        "vb": {"type": "boolean"},
                        "vd": {"type": "string"},
                        "s": {"type": "number"},
                        "t": {"type": "number"},
                        "ut": {"type": "number"},
                    },
                },
            },
            "IngestResult": {
                "type": "object",
                "required": ["accepted", "records", "ignored"],
                "properties": {
                    "accepted": {"type": "integer", "description": "readings stored (after de-duplication)"},
                    "records": {"type": "integer"},
                    "ignored": {"type": "integer", "description": "SenML records accepted but not stored (vd, s)"},
                },
            },
            "CommandRequest": {
                "type": "object",
                "required": ["procedure"],
                "additionalProperties": False,
                "properties": {
                    "procedure": {"type": "string", "description": "e.g. reboot: iotcloud.device.<id>.reboot"},
                    "args": {"type": "array"},
                    "kwargs": {"type": "object"},
                    "timeout": {"type": "number", "description": "seconds, default 30, at most 900"},
                },
            },
            "Command": {
                "type": "object",
                "required": ["id", "device_id", "procedure", "status"],
                "properties": {
                    "id": {"type": "string"},
                    "device_id": {"type": "string"},
                    "procedure": {"type": "string"},
                    "args": {"type": "array"},
                    "kwargs": {"type": "object"},
                    "timeout_ms": {"type": "integer"},
                    "status": {"type": "string", "enum": ["queued", "invoked", "done", "failed", "timeout"]},
                    "created_ms": {"type": "integer"},
                    "updated_ms": {"type": "integer"},
                    "result": {},
                    "error": {},
                },
            },
            "ReportSummary": {
                "type": "object",
                "required": ["id", "generated_at", "trigger", "summary", "decisions"],
                "properties": {
                    "id": {"type": "string"},
                    "generated_at": {"type": "string"},
                    "trigger": {"type": "object"},
                    "summary": {"type": "string"},
                    "decisions": {"type": "object", "additionalProperties": {"type": "string"}},
                    "s3": {"type": "object"},
                },
            },
            "Report": {
                "type": "object",
                "required": [
                    "schema_version",
                    "id",
                    "stage",
                    "generated_at",
                    "trigger",
                    "window",
                    "targets",
                    "summary",
                ],
                "properties": {
                    "schema_version": {"type": "integer"},
                    "id": {"type": "string"},
                    "stage": {"type": "string"},
                    "generated_at": {"type": "string"},
                    "trigger": {"type": "object"},
                    "window": {"type": "object"},
                    "targets": {"type": "array", "items": {"type": "object"}},
                    "skipped": {"type": "array", "items": {"type": "object"}},
                    "summary": {"type": "string"},
                },
            },
            "Rollup": {
                "type": "object",
                "required": ["metric", "unit", "hour", "count", "min", "max", "sum", "mean", "first_ts", "last_ts"],
                "properties": {
                    "device_id": {"type": "string"},
                    "metric": {"type": "string"},
                    "unit": {"type": "string"},
                    "hour": {"type": "string", "description": "UTC hour, YYYY-MM-DDTHH"},
                    "count": {"type": "integer"},
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    "sum": {"type": "number"},
                    "mean": {"type": "number"},
                    "first_ts": {"type": "integer"},
                    "last_ts": {"type": "integer"},
                },
            },
            "Posting": {
                "type": "object",
                "required": ["device_id", "metric", "count", "first_ts", "last_ts"],
                "properties": {
                    "device_id": {"type": "string"},
                    "metric": {"type": "string"},
                    "count": {"type": "integer"},
                    "first_ts": {"type": "integer"},
                    "last_ts": {"type": "integer"},
                },
            },
        },
    },
}

# Alert rules and alerts (chalicelib/api/alerts.py keeps their part of the document next to the routes).
DOCUMENT["paths"].update(ALERTS_PATHS)
DOCUMENT["components"]["schemas"].update(ALERTS_SCHEMAS)
# The dashboard's pages and the JSON its script reads (chalicelib/api/dashboard_doc.py).
DOCUMENT["paths"].update(DASHBOARD_PATHS)
DOCUMENT["components"]["securitySchemes"].update(DASHBOARD_SECURITY)


# Authenticating a token reads the devices table: any call with a token may answer these.
TOKEN_ERRORS = {
    401: "missing or unknown token",
    403: "not allowed (or device disabled)",
    503: "storage unavailable: retry after Retry-After seconds",
}
_SECURITY: dict[Auth, list[dict[str, list[str]]]] = {Auth.NONE: [], Auth.SESSION: [{"dashboardSession": []}]}


def _answer(answer: Answer | str) -> dict[str, Any]:
    if isinstance(answer, str):
        return _error(answer)
    doc: dict[str, Any] = {"description": answer.description}
    if answer.content:
        doc["content"] = {media: {"schema": schema.doc()} for media, schema in answer.content.items()}
    if answer.headers:
        doc["headers"] = {name: {"schema": {"type": "string"}} for name in answer.headers}
    return doc


def _answers(spec: RouteSpec, op: Op) -> dict[str, Any]:
    """The declared answers, and those every JSON route of its kind has (unless it says otherwise)."""
    answers: dict[int, Answer | str] = dict(op.answers)
    if not spec.page:
        if spec.query_params():
            answers.setdefault(400, "bad parameter")
        if op.body is not None:
            answers.setdefault(400, "malformed body")
        if op.body is not None and op.body.validated:
            answers.setdefault(422, "invalid fields: details names each")
        for param in op.path:
            if param.not_found is not None:
                answers.setdefault(404, f"no such {param.name.removesuffix('_id')}")
        if spec.auth not in _SECURITY:
            for status, text in TOKEN_ERRORS.items():
                answers.setdefault(status, text)
    return {str(status): _answer(answers[status]) for status in sorted(answers)}


def operation(spec: RouteSpec, op: Op) -> dict[str, Any]:
    """The document's operation for a route, from its declaration."""
    doc: dict[str, Any] = {"operationId": op.id, "summary": op.summary}
    if op.description:
        doc["description"] = op.description
    if op.tags:
        doc["tags"] = list(op.tags)
    if spec.auth in _SECURITY:
        doc["security"] = _SECURITY[spec.auth]
    parameters = [param.openapi() for param in op.path]
    parameters += [_header(header) for header in op.headers]
    parameters += [param.openapi() for param in spec.query_params() or ()]
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        content = {media: {"schema": schema.doc()} for media, schema in op.body.content.items()}
        doc["requestBody"] = {"required": True, "content": content}
    doc["responses"] = _answers(spec, op)
    return doc


def _header(header: Header) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": header.name, "in": "header", "schema": header.schema.doc()}
    if header.description:
        doc["description"] = header.description
    return doc


def _named(op: Op) -> list[Named]:
    schemas = [schema for schema in (op.body.content.values() if op.body else ())]
    for answer in op.answers.values():
        if not isinstance(answer, str):
            schemas += answer.content.values()
    return [named for schema in schemas for named in schema.named()]


def document(routes: Mapping[str, Mapping[str, RouteEntry]]) -> dict[str, Any]:
    """The served document: each declared operation generated from its route's declaration.

    `routes`: the app's route table (path -> method -> entry). A route declared with
    `routing.route(doc=...)` is generated whole (its named schemas become components); one
    not yet declared that way keeps DOCUMENT's hand-written operation, with its query
    parameters generated from its declaration.
    """
    doc = copy.deepcopy(DOCUMENT)
    components = doc["components"]["schemas"]
    for path, methods in routes.items():
        for method, entry in methods.items():
            spec = spec_of(entry.view_function)
            if spec is not None and spec.op is not None:
                item = doc["paths"].setdefault(path, {})
                item[method.lower()] = operation(spec, spec.op)
                for named in _named(spec.op):
                    generated = named.schema.doc()
                    if components.setdefault(named.name, generated) != generated:
                        raise ValueError(f"two schemas are named {named.name}")
                continue
            query = spec.query_params() if spec is not None else None
            if query is None:
                continue
            hand_written = doc["paths"][path][method.lower()]
            others = [p for p in hand_written.get("parameters", []) if p.get("in") != "query"]
            hand_written.pop("parameters", None)
            if parameters := others + [param.openapi() for param in query]:
                hand_written["parameters"] = parameters
    return doc
