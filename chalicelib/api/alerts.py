"""/v1/rules and /v1/alerts: alert rules and the alerts they raise (admin only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.common import int_param, query_params, raw_body
from chalicelib.api.responses import json_body, json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.devices import ID_PATTERN
from chalicelib.errors import AlertNotFoundError, InvalidParameterError, RuleNotFoundError

if TYPE_CHECKING:
    from chalicelib.adapters.alerts import AlertStore

# The alerts modules are imported by the routes that use them, not with the app: every
# other route (telemetry ingestion first) then starts without paying for them.
alerts_api = Blueprint(__name__)

ALERT_STATES = ("active", "cleared")


def store() -> AlertStore:
    """The stage's alert store. Stateless over the bound models, so building one per call is free."""
    from chalicelib.adapters.alerts import AlertStore

    wiring.bound_settings()
    return AlertStore()


def _rule_id(rule_id: str) -> str:
    from chalicelib.domain.alerts import RULE_ID_PATTERN

    if not RULE_ID_PATTERN.match(rule_id):
        raise RuleNotFoundError(f"no rule {rule_id!r}")
    return rule_id


def _alert_id(alert_id: str) -> str:
    from chalicelib.domain.alerts import ALERT_ID_PATTERN

    if not ALERT_ID_PATTERN.match(alert_id):
        raise AlertNotFoundError(f"no alert {alert_id!r}")
    return alert_id


def _choice(params: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in choices:
        raise InvalidParameterError(f"{name} must be one of {', '.join(choices)}")
    return value


@route(alerts_api, "/v1/rules", "POST", auth=Auth.ADMIN)
def create_rule() -> Response:
    from chalicelib.domain.alerts import new_rule_id, validate_rule

    request = alerts_api.current_request
    now = now_ms()
    rule = validate_rule(json_body(raw_body(request)), rule_id=new_rule_id(), created_at=now, updated_at=now)
    return json_response(store().create_rule(rule).as_dict(), 201)


@route(alerts_api, "/v1/rules", "GET", auth=Auth.ADMIN)
def list_rules() -> Response:
    from chalicelib.domain.alerts import RULE_ID_PATTERN

    request = alerts_api.current_request
    params = query_params(request)
    limit = int_param(params, "limit", 100, 1, 1000)
    cursor = params.get("cursor") or None
    if cursor is not None and not RULE_ID_PATTERN.match(cursor):
        raise InvalidParameterError("cursor is not one this API issued")
    rules, next_cursor = store().list_rules(limit, cursor)
    return json_response({"rules": [r.as_dict() for r in rules], "next_cursor": next_cursor})


@route(alerts_api, "/v1/rules/{rule_id}", "GET", auth=Auth.ADMIN)
def get_rule(rule_id: str) -> Response:
    return json_response(store().get_rule(_rule_id(rule_id)).as_dict())


@route(alerts_api, "/v1/rules/{rule_id}", "PATCH", auth=Auth.ADMIN)
def update_rule(rule_id: str) -> Response:
    from chalicelib.domain.alerts import patch_rule

    request = alerts_api.current_request
    body = json_body(raw_body(request))
    now = now_ms()
    rule = store().update_rule(_rule_id(rule_id), lambda current: patch_rule(current, body, now))
    return json_response(rule.as_dict())


@route(alerts_api, "/v1/rules/{rule_id}", "DELETE", auth=Auth.ADMIN)
def delete_rule(rule_id: str) -> Response:
    store().delete_rule(_rule_id(rule_id))
    return Response(body="", status_code=204)


@route(alerts_api, "/v1/alerts", "GET", auth=Auth.ADMIN)
def list_alerts() -> Response:
    from chalicelib.adapters.alerts import AlertFilter
    from chalicelib.domain.alerts import SEVERITIES

    request = alerts_api.current_request
    params = query_params(request)
    limit = int_param(params, "limit", 50, 1, 500)
    device = params.get("device") or None
    if device is not None and not ID_PATTERN.match(device):
        raise InvalidParameterError("device is not a device id")
    acknowledged = _choice(params, "acknowledged", ("true", "false"))
    filters = AlertFilter(
        state=_choice(params, "state", ALERT_STATES),
        severity=_choice(params, "severity", SEVERITIES),
        device_id=device,
        acknowledged=None if acknowledged is None else acknowledged == "true",
    )
    alerts, next_cursor = store().list_alerts(filters, limit, params.get("cursor") or None)
    return json_response({"alerts": [a.as_dict() for a in alerts], "next_cursor": next_cursor})


@route(alerts_api, "/v1/alerts/{alert_id}", "GET", auth=Auth.ADMIN)
def get_alert(alert_id: str) -> Response:
    return json_response(store().get_alert(_alert_id(alert_id)).as_dict())


@route(alerts_api, "/v1/alerts/{alert_id}/ack", "POST", auth=Auth.ADMIN)
def acknowledge_alert(alert_id: str) -> Response:
    return json_response(store().acknowledge(_alert_id(alert_id), now_ms()).as_dict())
