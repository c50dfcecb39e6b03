"""/v1/rules and /v1/alerts: alert rules and the alerts they raise (admin only).

Each route declares its operation (`Op`): the request shapes come from domain/alert_shapes, the
answers' shapes are declared here, and the OpenAPI document is generated from both.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.operations import JSON, Answer, Body, Op, PathParam, json_body_of, ok
from chalicelib.api.params import alert_filter, alerts_query, query_params, raw_body, read_query, rules_query
from chalicelib.api.responses import json_body, json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.alert_shapes import (
    ALERT_ID_PATTERN,
    ALERT_STATES,
    CONDITION,
    DURATION,
    KINDS,
    NOTIFY,
    OFFLINE,
    RULE_ID_PATTERN,
    RULE_INPUT,
    RULE_PATCH,
    SCOPE,
    SEVERITIES,
)
from chalicelib.domain.rules import MAX_STRING_BYTES
from chalicelib.domain.schema import Arr, Bool, Int, Named, Num, OneOf, Str, nullable, record
from chalicelib.errors import AlertNotFoundError, RuleNotFoundError

if TYPE_CHECKING:
    from chalicelib.adapters.alerts import AlertStore

# The alerts modules are imported by the routes that use them, not with the app: every
# other route (telemetry ingestion first) then starts without paying for them. What the
# declarations below read (domain/alert_shapes) is light.
alerts_api = Blueprint(__name__)

RULE_ID = PathParam("rule_id", RULE_ID_PATTERN, RuleNotFoundError)
ALERT_ID = PathParam("alert_id", ALERT_ID_PATTERN, AlertNotFoundError)

# --- the answers' shapes ---------------------------------------------------------------------------------------------

# The answers write null rather than leave a member out: every member is required.
_STR, _INT = Str(), Int()
_NULLABLE_STR, _NULLABLE_INT = nullable(_STR), nullable(_INT)


RULE = Named(
    "Rule",
    record(
        id=_STR,
        name=_STR,
        kind=Str(enum=KINDS),
        scope=SCOPE,
        metric=_NULLABLE_STR,
        unit=_NULLABLE_STR,
        condition=nullable(CONDITION),
        duration=nullable(DURATION),
        clear=nullable(replace(CONDITION, description="null: the negated condition")),
        effective_clear=nullable(CONDITION),
        severity=Str(enum=SEVERITIES),
        notify=NOTIFY,
        enabled=Bool(),
        offline=nullable(OFFLINE),
        created_at=_INT,
        updated_at=_INT,
    ),
)
ALERT_READING = Named(
    "AlertReading",
    record(
        metric=_STR,
        unit=_STR,
        ts=_INT,
        value=OneOf(options=(Num(), Str(max_length=MAX_STRING_BYTES), Bool())),
    ),
)
ALERT = Named(
    "Alert",
    record(
        id=_STR,
        rule_id=_STR,
        rule_name=_STR,
        kind=Str(enum=KINDS),
        device_id=_STR,
        severity=Str(enum=SEVERITIES),
        metric=_NULLABLE_STR,
        condition=Str(description="what the rule checked, in words"),
        raised_at=_INT,
        raised_by=Arr(ALERT_READING, description="first and last reading"),
        last_seen=nullable(Int(description="offline alerts")),
        state=Str(enum=ALERT_STATES),
        cleared_at=_NULLABLE_INT,
        cleared_by=Arr(ALERT_READING),
        acknowledged=Bool(),
        acknowledged_at=_NULLABLE_INT,
    ),
)
RULE_PAGE = record(rules=Arr(RULE), next_cursor=_NULLABLE_STR)
ALERT_PAGE = record(alerts=Arr(ALERT), next_cursor=_NULLABLE_STR)

# What every route here answers besides its own (401 and 503 are every token route's).
_ADMIN_ONLY: dict[int, Answer | str] = {403: "not an admin token"}
_BODY_ERRORS: dict[int, Answer | str] = {400: "malformed JSON", 422: "invalid rule: details lists every problem"}


def store() -> AlertStore:
    """The stage's alert store. Stateless over the bound models, so building one per call is free."""
    from chalicelib.adapters.alerts import AlertStore

    wiring.bound_settings()
    return AlertStore()


# --- rules ----------------------------------------------------------------------------------------------------------

CREATE_RULE = Op(
    "createRule",
    "Create an alert rule (admin)",
    body=json_body_of(Named("RuleInput", RULE_INPUT), "the rule"),
    answers={201: ok(RULE, "created"), **_BODY_ERRORS, **_ADMIN_ONLY},
)


@route(alerts_api, "/v1/rules", "POST", auth=Auth.ADMIN, doc=CREATE_RULE)
def create_rule(body: dict[str, Any]) -> Response:
    from chalicelib.domain.alerts import new_rule_id, rule_of

    now = now_ms()
    rule = rule_of(body, rule_id=new_rule_id(), created_at=now, updated_at=now)
    return json_response(store().create_rule(rule).as_dict(), 201)


LIST_RULES = Op(
    "listRules",
    "Alert rules in id order (admin), paged with an opaque cursor",
    answers={200: ok(RULE_PAGE), 400: "bad limit or cursor", **_ADMIN_ONLY},
)


@route(alerts_api, "/v1/rules", "GET", auth=Auth.ADMIN, query=rules_query, doc=LIST_RULES)
def list_rules() -> Response:
    values = read_query(rules_query(), query_params(alerts_api.current_request))
    rules, next_cursor = store().list_rules(values["limit"], values["cursor"])
    return json_response({"rules": [r.as_dict() for r in rules], "next_cursor": next_cursor})


GET_RULE = Op("getRule", "One alert rule (admin)", path=(RULE_ID,), answers={200: ok(RULE), **_ADMIN_ONLY})


@route(alerts_api, "/v1/rules/{rule_id}", "GET", auth=Auth.ADMIN, doc=GET_RULE)
def get_rule(rule_id: str) -> Response:
    return json_response(store().get_rule(rule_id).as_dict())


# A patch is validated as the rule it makes (patch_rule), after the rule is read: an unknown rule
# is 404 whatever the body, and every problem of the result is named, the kind's included.
UPDATE_RULE = Op(
    "updateRule",
    "Change an alert rule (admin): given fields replace, null resets to the default",
    path=(RULE_ID,),
    body=Body({JSON: Named("RulePatch", RULE_PATCH)}, validated=False),
    answers={200: ok(RULE), **_BODY_ERRORS, **_ADMIN_ONLY},
)


@route(alerts_api, "/v1/rules/{rule_id}", "PATCH", auth=Auth.ADMIN, doc=UPDATE_RULE)
def update_rule(rule_id: str) -> Response:
    from chalicelib.domain.alerts import patch_rule

    body = json_body(raw_body(alerts_api.current_request))
    now = now_ms()
    rule = store().update_rule(rule_id, lambda current: patch_rule(current, body, now))
    return json_response(rule.as_dict())


DELETE_RULE = Op(
    "deleteRule",
    "Delete an alert rule (admin); its alerts stay",
    path=(RULE_ID,),
    answers={204: Answer("deleted"), **_ADMIN_ONLY},
)


@route(alerts_api, "/v1/rules/{rule_id}", "DELETE", auth=Auth.ADMIN, doc=DELETE_RULE)
def delete_rule(rule_id: str) -> Response:
    store().delete_rule(rule_id)
    return Response(body="", status_code=204)


# --- alerts ---------------------------------------------------------------------------------------------------------

LIST_ALERTS = Op(
    "listAlerts",
    "Alerts, newest first (with state: most severe first), filtered, paged with an opaque cursor "
    "(admin). A page may hold fewer than limit alerts while next_cursor is not null.",
    answers={200: ok(ALERT_PAGE), 400: "bad filter, limit or cursor (a cursor belongs to its filters)", **_ADMIN_ONLY},
)


@route(alerts_api, "/v1/alerts", "GET", auth=Auth.ADMIN, query=alerts_query, doc=LIST_ALERTS)
def list_alerts() -> Response:
    params = query_params(alerts_api.current_request)
    filters, limit = alert_filter(params)
    alerts, next_cursor = store().list_alerts(filters, limit, params.get("cursor") or None)
    return json_response({"alerts": [a.as_dict() for a in alerts], "next_cursor": next_cursor})


def _one_alert(op_id: str, summary: str) -> Op:
    """An operation on one alert that answers it."""
    return Op(op_id, summary, path=(ALERT_ID,), answers={200: ok(ALERT), **_ADMIN_ONLY})


GET_ALERT = _one_alert("getAlert", "One alert, with the readings that raised and cleared it (admin)")


@route(alerts_api, "/v1/alerts/{alert_id}", "GET", auth=Auth.ADMIN, doc=GET_ALERT)
def get_alert(alert_id: str) -> Response:
    return json_response(store().get_alert(alert_id).as_dict())


ACKNOWLEDGE_ALERT = _one_alert(
    "acknowledgeAlert", "Acknowledge an alert (admin); acknowledging again keeps the first time"
)


@route(alerts_api, "/v1/alerts/{alert_id}/ack", "POST", auth=Auth.ADMIN, doc=ACKNOWLEDGE_ALERT)
def acknowledge_alert(alert_id: str) -> Response:
    return json_response(store().acknowledge(alert_id, now_ms()).as_dict())
