"""/v1/rules and /v1/alerts: alert rules and the alerts they raise (admin only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.common import int_param, now_ms, principal_of, query_params, raw_body
from chalicelib.api.responses import handles_errors, json_body, json_response
from chalicelib.domain.devices import ID_PATTERN
from chalicelib.errors import InvalidParameterError

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
    from chalicelib.domain.alerts import RULE_ID_PATTERN, RuleNotFoundError

    if not RULE_ID_PATTERN.match(rule_id):
        raise RuleNotFoundError(f"no rule {rule_id!r}")
    return rule_id


def _alert_id(alert_id: str) -> str:
    from chalicelib.domain.alerts import ALERT_ID_PATTERN, AlertNotFoundError

    if not ALERT_ID_PATTERN.match(alert_id):
        raise AlertNotFoundError(f"no alert {alert_id!r}")
    return alert_id


def _choice(params: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in choices:
        raise InvalidParameterError(f"{name} must be one of {', '.join(choices)}")
    return value


@alerts_api.route("/v1/rules", methods=["POST"], content_types=["*/*"])
@handles_errors
def create_rule() -> Response:
    from chalicelib.domain.alerts import new_rule_id, validate_rule

    request = alerts_api.current_request
    principal_of(request).require_admin()
    now = now_ms()
    rule = validate_rule(json_body(raw_body(request)), rule_id=new_rule_id(), created_at=now, updated_at=now)
    return json_response(store().create_rule(rule).as_dict(), 201)


@alerts_api.route("/v1/rules", methods=["GET"], content_types=["*/*"])
@handles_errors
def list_rules() -> Response:
    from chalicelib.domain.alerts import RULE_ID_PATTERN

    request = alerts_api.current_request
    principal_of(request).require_admin()
    params = query_params(request)
    limit = int_param(params, "limit", 100, 1, 1000)
    cursor = params.get("cursor") or None
    if cursor is not None and not RULE_ID_PATTERN.match(cursor):
        raise InvalidParameterError("cursor is not one this API issued")
    rules, next_cursor = store().list_rules(limit, cursor)
    return json_response({"rules": [r.as_dict() for r in rules], "next_cursor": next_cursor})


@alerts_api.route("/v1/rules/{rule_id}", methods=["GET"], content_types=["*/*"])
@handles_errors
def get_rule(rule_id: str) -> Response:
    principal_of(alerts_api.current_request).require_admin()
    return json_response(store().get_rule(_rule_id(rule_id)).as_dict())


@alerts_api.route("/v1/rules/{rule_id}", methods=["PATCH"], content_types=["*/*"])
@handles_errors
def update_rule(rule_id: str) -> Response:
    from chalicelib.domain.alerts import patch_rule

    request = alerts_api.current_request
    principal_of(request).require_admin()
    body = json_body(raw_body(request))
    now = now_ms()
    rule = store().update_rule(_rule_id(rule_id), lambda current: patch_rule(current, body, now))
    return json_response(rule.as_dict())


@alerts_api.route("/v1/rules/{rule_id}", methods=["DELETE"], content_types=["*/*"])
@handles_errors
def delete_rule(rule_id: str) -> Response:
    principal_of(alerts_api.current_request).require_admin()
    store().delete_rule(_rule_id(rule_id))
    return Response(body="", status_code=204)


@alerts_api.route("/v1/alerts", methods=["GET"], content_types=["*/*"])
@handles_errors
def list_alerts() -> Response:
    from chalicelib.adapters.alerts import AlertFilter
    from chalicelib.domain.alerts import SEVERITIES

    request = alerts_api.current_request
    principal_of(request).require_admin()
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


@alerts_api.route("/v1/alerts/{alert_id}", methods=["GET"], content_types=["*/*"])
@handles_errors
def get_alert(alert_id: str) -> Response:
    principal_of(alerts_api.current_request).require_admin()
    return json_response(store().get_alert(_alert_id(alert_id)).as_dict())


@alerts_api.route("/v1/alerts/{alert_id}/ack", methods=["POST"], content_types=["*/*"])
@handles_errors
def acknowledge_alert(alert_id: str) -> Response:
    principal_of(alerts_api.current_request).require_admin()
    return json_response(store().acknowledge(_alert_id(alert_id), now_ms()).as_dict())
