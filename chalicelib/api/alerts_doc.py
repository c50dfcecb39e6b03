"""The alert routes' part of the OpenAPI document (merged by chalicelib/api/openapi_doc.py)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.alert_shapes import (
    MAX_DURATION_READINGS,
    MAX_DURATION_SECONDS,
    MAX_OFFLINE_SECONDS,
    MIN_OFFLINE_SECONDS,
)
from chalicelib.domain.alert_shapes import MAX_NAME as RULE_MAX_NAME
from chalicelib.domain.rules import MAX_METRIC_CHARS, MAX_STRING_BYTES

# --- OpenAPI: merged into chalicelib/api/openapi.py's DOCUMENT (paths and components.schemas) ------------------------

_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _doc_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _doc_json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_DOC_AUTH = {
    "401": _doc_error("missing or unknown token"),
    "403": _doc_error("not an admin token"),
    "503": _doc_error("storage unavailable: retry after Retry-After seconds"),
}
_RULE_PATH = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ALERT_PATH = {"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}}
_VALUE_SCHEMA = {"oneOf": [{"type": "number"}, {"type": "string", "maxLength": MAX_STRING_BYTES}, {"type": "boolean"}]}
_OPS = [">", ">=", "<", "<=", "==", "!=", "equals", "not_equals", "contains", "not_contains", "is"]
_CONDITION = {
    "type": "object",
    "required": ["op", "value"],
    "additionalProperties": False,
    "properties": {"op": {"type": "string", "enum": _OPS}, "value": _VALUE_SCHEMA},
    "description": "numbers: > >= < <= == !=; strings: equals, contains (and not_*); booleans: is",
}
_SCOPE = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {
        "device": {"type": "string"},
        "type": {"type": "string"},
        "all": {"type": "boolean", "enum": [True]},
    },
    "description": 'one device {"device": id}, a device type {"type": t}, or every device {"all": true}',
}
_DURATION = {
    "type": "object",
    "maxProperties": 1,
    "properties": {
        "seconds": {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_SECONDS},
        "readings": {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_READINGS},
    },
    "description": "how long the condition must hold before the alert is raised (default: at once)",
}
_NOTIFY = {
    "type": "object",
    "properties": {
        "emails": {"type": "array", "maxItems": 10, "items": {"type": "string"}},
        "topic": {"type": "string", "nullable": True, "description": "WAMP topic (default iotcloud.alerts)"},
    },
}
_OFFLINE = {
    "type": "object",
    "required": ["seconds"],
    "properties": {"seconds": {"type": "integer", "minimum": MIN_OFFLINE_SECONDS, "maximum": MAX_OFFLINE_SECONDS}},
}
_RULE_FIELDS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "maxLength": RULE_MAX_NAME},
    "kind": {"type": "string", "enum": ["threshold", "offline"], "default": "threshold"},
    "scope": _SCOPE,
    "metric": {"type": "string", "maxLength": MAX_METRIC_CHARS, "description": "threshold rules"},
    "unit": {"type": "string", "description": "only readings in this unit (default: any unit)"},
    "condition": _CONDITION,
    "duration": _DURATION,
    "clear": {**_CONDITION, "description": "when an active alert clears (default: the negated condition)"},
    "severity": {"type": "string", "enum": ["critical", "major", "minor", "warning"], "default": "major"},
    "notify": _NOTIFY,
    "enabled": {"type": "boolean", "default": True},
    "offline": {**_OFFLINE, "description": "offline rules: raised when a device is silent that long"},
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


OPENAPI_SCHEMAS: dict[str, Any] = {
    "RuleInput": {"type": "object", "required": ["name", "scope"], "properties": _RULE_FIELDS},
    "RulePatch": {
        "type": "object",
        "properties": {k: _nullable(v) for k, v in _RULE_FIELDS.items()},
        "description": "given fields replace the rule's; null resets a field to its default",
    },
    "Rule": {
        "type": "object",
        "required": [
            "id",
            "name",
            "kind",
            "scope",
            "metric",
            "unit",
            "condition",
            "duration",
            "clear",
            "effective_clear",
            "severity",
            "notify",
            "enabled",
            "offline",
            "created_at",
            "updated_at",
        ],  # fmt: skip
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["threshold", "offline"]},
            "scope": _SCOPE,
            "metric": {"type": "string", "nullable": True},
            "unit": {"type": "string", "nullable": True},
            "condition": _nullable(_CONDITION),
            "duration": _nullable(_DURATION),
            "clear": _nullable({**_CONDITION, "description": "null: the negated condition"}),
            "effective_clear": _nullable(_CONDITION),
            "severity": {"type": "string", "enum": ["critical", "major", "minor", "warning"]},
            "notify": _NOTIFY,
            "enabled": {"type": "boolean"},
            "offline": _nullable(_OFFLINE),
            "created_at": {"type": "integer"},
            "updated_at": {"type": "integer"},
        },
    },
    "AlertReading": {
        "type": "object",
        "required": ["metric", "unit", "ts", "value"],
        "properties": {
            "metric": {"type": "string"},
            "unit": {"type": "string"},
            "ts": {"type": "integer"},
            "value": _VALUE_SCHEMA,
        },
    },
    "Alert": {
        "type": "object",
        "required": [
            "id",
            "rule_id",
            "rule_name",
            "kind",
            "device_id",
            "severity",
            "metric",
            "condition",
            "raised_at",
            "raised_by",
            "last_seen",
            "state",
            "cleared_at",
            "cleared_by",
            "acknowledged",
            "acknowledged_at",
        ],  # fmt: skip
        "properties": {
            "id": {"type": "string"},
            "rule_id": {"type": "string"},
            "rule_name": {"type": "string"},
            "kind": {"type": "string", "enum": ["threshold", "offline"]},
            "device_id": {"type": "string"},
            "severity": {"type": "string", "enum": ["critical", "major", "minor", "warning"]},
            "metric": {"type": "string", "nullable": True},
            "condition": {"type": "string", "description": "what the rule checked, in words"},
            "raised_at": {"type": "integer"},
            "raised_by": {"type": "array", "items": _ref("AlertReading"), "description": "first and last reading"},
            "last_seen": {"type": "integer", "nullable": True, "description": "offline alerts"},
            "state": {"type": "string", "enum": ["active", "cleared"]},
            "cleared_at": {"type": "integer", "nullable": True},
            "cleared_by": {"type": "array", "items": _ref("AlertReading")},
            "acknowledged": {"type": "boolean"},
            "acknowledged_at": {"type": "integer", "nullable": True},
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/v1/rules": {
        "post": {
            "operationId": "createRule",
            "summary": "Create an alert rule (admin)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RuleInput")}}},
            "responses": {
                "201": _doc_json(_ref("Rule"), "created"),
                "400": _doc_error("malformed JSON"),
                **_DOC_AUTH,
                "422": _doc_error("invalid rule: details lists every problem"),
            },
        },
        "get": {
            "operationId": "listRules",
            "summary": "Alert rules in id order (admin), paged with an opaque cursor",
            "responses": {
                "200": _doc_json(
                    {
                        "type": "object",
                        "required": ["rules", "next_cursor"],
                        "properties": {
                            "rules": {"type": "array", "items": _ref("Rule")},
                            "next_cursor": {"type": "string", "nullable": True},
                        },
                    }
                ),
                "400": _doc_error("bad limit or cursor"),
                **_DOC_AUTH,
            },
        },
    },
    "/v1/rules/{rule_id}": {
        "parameters": [_RULE_PATH],
        "get": {
            "operationId": "getRule",
            "summary": "One alert rule (admin)",
            "responses": {"200": _doc_json(_ref("Rule")), **_DOC_AUTH, "404": _doc_error("no such rule")},
        },
        "patch": {
            "operationId": "updateRule",
            "summary": "Change an alert rule (admin): given fields replace, null resets to the default",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RulePatch")}}},
            "responses": {
                "200": _doc_json(_ref("Rule")),
                "400": _doc_error("malformed JSON"),
                **_DOC_AUTH,
                "404": _doc_error("no such rule"),
                "422": _doc_error("invalid rule: details lists every problem"),
            },
        },
        "delete": {
            "operationId": "deleteRule",
            "summary": "Delete an alert rule (admin); its alerts stay",
            "responses": {"204": {"description": "deleted"}, **_DOC_AUTH, "404": _doc_error("no such rule")},
        },
    },
    "/v1/alerts": {
        "get": {
            "operationId": "listAlerts",
            "summary": "Alerts, newest first (with state: most severe first), filtered, paged with an opaque cursor "
            "(admin). A page may hold fewer than limit alerts while next_cursor is not null.",
            "responses": {
                "200": _doc_json(
                    {
                        "type": "object",
                        "required": ["alerts", "next_cursor"],
                        "properties": {
                            "alerts": {"type": "array", "items": _ref("Alert")},
                            "next_cursor": {"type": "string", "nullable": True},
                        },
                    }
                ),
                "400": _doc_error("bad filter, limit or cursor (a cursor belongs to its filters)"),
                **_DOC_AUTH,
            },
        }
    },
    "/v1/alerts/{alert_id}": {
        "parameters": [_ALERT_PATH],
        "get": {
            "operationId": "getAlert",
            "summary": "One alert, with the readings that raised and cleared it (admin)",
            "responses": {"200": _doc_json(_ref("Alert")), **_DOC_AUTH, "404": _doc_error("no such alert")},
        },
    },
    "/v1/alerts/{alert_id}/ack": {
        "parameters": [_ALERT_PATH],
        "post": {
            "operationId": "acknowledgeAlert",
            "summary": "Acknowledge an alert (admin); acknowledging again keeps the first time",
            "responses": {"200": _doc_json(_ref("Alert")), **_DOC_AUTH, "404": _doc_error("no such alert")},
        },
    },
}
