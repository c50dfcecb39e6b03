"""The OpenAPI 3 document of every route, built on first request (not at import).

Every operation is generated (`document(routes)`) from its route's declaration,
`routing.route(query=..., doc=Op(...))`: its operation id, summary, security (from the auth
mode), path, header and query parameters, request body and answers, and the components its
schemas name (`domain.schema.Named`). `DOCUMENT` keeps only what no route declares: info,
servers, the default security, the Error schema and the security schemes.
tests/functional/test_openapi.py keeps it true: every Chalice route is in it, every declared
parameter is documented as declared, and every response the tests see matches its schema;
tests/functional/test_openapi_bodies.py holds the bodies' schemas to their validation.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from chalice.app import RouteEntry

from chalicelib.api.operations import Answer, Header, Op
from chalicelib.api.routing import Auth, RouteSpec, spec_of
from chalicelib.domain.schema import Named

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


# What no route declares: the document's frame, the error body every error answer has, and the
# security schemes the auth modes name. Each path and every other schema is generated.
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
    "paths": {},
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "device or admin token"},
            "dashboardSession": {
                "type": "apiKey",
                "in": "cookie",
                "name": "iotcloud_session",
                "description": "the dashboard's signed session cookie, set by POST /dashboard/sign-in",
            },
        },
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
        },
    },
}

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
    if op.security is not None:
        doc["security"] = [dict(requirement) for requirement in op.security]
    elif spec.auth in _SECURITY:
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
    if header.required:
        doc["required"] = True
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
    """The served document: each route's operation generated from its declaration.

    `routes`: the app's route table (path -> method -> entry). A route declared with
    `routing.route(doc=...)` is generated whole (its named schemas become components); a route
    without one is left out (tests/functional/test_openapi.py names it).
    """
    doc = copy.deepcopy(DOCUMENT)
    components = doc["components"]["schemas"]
    for path, methods in routes.items():
        for method, entry in methods.items():
            spec = spec_of(entry.view_function)
            if spec is None or spec.op is None:
                continue
            doc["paths"].setdefault(path, {})[method.lower()] = operation(spec, spec.op)
            for named in _named(spec.op):
                generated = named.schema.doc()
                if components.setdefault(named.name, generated) != generated:
                    raise ValueError(f"two schemas are named {named.name}")
    return doc
