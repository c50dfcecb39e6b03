"""/v1/rules and /v1/alerts: alert rules and the alerts they raise (admin only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import (
    alert_filter,
    alert_param,
    alerts_query,
    query_params,
    raw_body,
    read_query,
    rule_param,
    rules_query,
)
from chalicelib.api.responses import json_body, json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms

if TYPE_CHECKING:
    from chalicelib.adapters.alerts import AlertStore

# The alerts modules are imported by the routes that use them, not with the app: every
# other route (telemetry ingestion first) then starts without paying for them.
alerts_api = Blueprint(__name__)

def store() -> AlertStore:
    """The stage's alert store. Stateless over the bound models, so building one per call is free."""
    from chalicelib.adapters.alerts import AlertStore

    wiring.bound_settings()
    return AlertStore()


@route(alerts_api, "/v1/rules", "POST", auth=Auth.ADMIN)
def create_rule() -> Response:
    from chalicelib.domain.alerts import new_rule_id, validate_rule

    request = alerts_api.current_request
    now = now_ms()
    rule = validate_rule(json_body(raw_body(request)), rule_id=new_rule_id(), created_at=now, updated_at=now)
    return json_response(store().create_rule(rule).as_dict(), 201)


@route(alerts_api, "/v1/rules", "GET", auth=Auth.ADMIN, query=rules_query)
def list_rules() -> Response:
    values = read_query(rules_query(), query_params(alerts_api.current_request))
    rules, next_cursor = store().list_rules(values["limit"], values["cursor"])
    return json_response({"rules": [r.as_dict() for r in rules], "next_cursor": next_cursor})


@route(alerts_api, "/v1/rules/{rule_id}", "GET", auth=Auth.ADMIN)
def get_rule(rule_id: str) -> Response:
    return json_response(store().get_rule(rule_param(rule_id)).as_dict())


@route(alerts_api, "/v1/rules/{rule_id}", "PATCH", auth=Auth.ADMIN)
def update_rule(rule_id: str) -> Response:
    from chalicelib.domain.alerts import patch_rule

    request = alerts_api.current_request
    body = json_body(raw_body(request))
    now = now_ms()
    rule = store().update_rule(rule_param(rule_id), lambda current: patch_rule(current, body, now))
    return json_response(rule.as_dict())


@route(alerts_api, "/v1/rules/{rule_id}", "DELETE", auth=Auth.ADMIN)
def delete_rule(rule_id: str) -> Response:
    store().delete_rule(rule_param(rule_id))
    return Response(body="", status_code=204)


@route(alerts_api, "/v1/alerts", "GET", auth=Auth.ADMIN, query=alerts_query)
def list_alerts() -> Response:
    params = query_params(alerts_api.current_request)
    filters, limit = alert_filter(params)
    alerts, next_cursor = store().list_alerts(filters, limit, params.get("cursor") or None)
    return json_response({"alerts": [a.as_dict() for a in alerts], "next_cursor": next_cursor})


@route(alerts_api, "/v1/alerts/{alert_id}", "GET", auth=Auth.ADMIN)
def get_alert(alert_id: str) -> Response:
    return json_response(store().get_alert(alert_param(alert_id)).as_dict())


@route(alerts_api, "/v1/alerts/{alert_id}/ack", "POST", auth=Auth.ADMIN)
def acknowledge_alert(alert_id: str) -> Response:
    return json_response(store().acknowledge(alert_param(alert_id), now_ms()).as_dict())
