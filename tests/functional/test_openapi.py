"""GET /v1/openapi.json is valid OpenAPI 3, names every route, and tells the truth about answers."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, NamedTuple

import boto3
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from app import app
from chalicelib import wiring
from chalicelib.adapters.aggregates import index_items
from chalicelib.adapters.alerts import AlertStore, Commit
from chalicelib.config import settings
from chalicelib.domain.alerts import RuleState, alert_id_for, alert_writes, evaluate, validate_rule
from chalicelib.domain.readings import Reading
from chalicelib.domain.rollups import HOUR_MS, partial_of
from chalicelib.web import session as sessions
from chalicelib.web import static
from tests.functional.helpers import T0, body_of, dynamodb, error_of, now_ms, throttled

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
DOCUMENT_URI = "urn:iotcloud:openapi"


class Call(NamedTuple):
    """One request of the representative run, and the route template it exercises."""

    template: str
    method: str
    path: str
    token: str | None = None
    body: Any = None
    raw: bytes | None = None
    content_type: str | None = "application/json"
    headers: dict[str, str] | None = None
    fault: str | None = None  # an operation to throttle during the call


@pytest.fixture
def document(api) -> dict[str, Any]:
    answer = api.request("GET", "/v1/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    return body_of(answer)  # type: ignore[no-any-return]


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items() for method in item if method in METHODS}


def test_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate_spec(document)


def test_document_is_served_without_a_token(api):
    assert api.request("GET", "/v1/openapi.json", "iotd_not-a-token").status_code == 200


def test_every_route_is_documented_and_every_documented_operation_is_a_route(document):
    routes = {(path, method) for path, methods in app.routes.items() for method in methods}
    assert documented_operations(document) == routes


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for item in document["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))


class Undocumented(Exception):
    pass


class NotJson(Exception):  # noqa: N818
    """The answer is documented with another media type (e.g. a report's SVG chart)."""


def response_validator(document: dict[str, Any], template: str, method: str, status: int) -> OAS30Validator | None:
    """A validator of the documented JSON body of an operation's answer (None: documented without content)."""
    responses = document["paths"][template][method.lower()]["responses"]
    documented = responses.get(str(status)) or responses.get("default")
    if documented is None:
        raise Undocumented(f"{method} {template} answered {status}, which is not documented")
    if not documented.get("content"):
        return None
    if "application/json" not in documented["content"]:
        raise NotJson(next(iter(documented["content"])))
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in (
            "paths",
            template,
            method.lower(),
            "responses",
            str(status),
            "content",
            "application/json",
            "schema",
        )
    )
    registry = Registry().with_resource(DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT4))
    validator = OAS30Validator(
        {"$ref": f"{DOCUMENT_URI}#/{pointer}"}, registry=registry, format_checker=oas30_format_checker
    )
    return validator


def device_read_calls(template: str, device: dict[str, Any], admin: str, other_token: str, fault: str) -> list[Call]:
    """A device's own read, each way it answers: its owner, an unknown device, no token, another
    device's token, and the owner again while the store's `fault` operation fails."""
    path = template.replace("{device_id}", device["id"])
    unknown = template.replace("{device_id}", "nope")
    owner = device["token"]
    return [
        Call(template, "GET", path, owner),
        Call(template, "GET", unknown, admin),
        Call(template, "GET", path, None),
        Call(template, "GET", path, other_token),
        Call(template, "GET", path, owner, fault=fault),
    ]


def representative_calls(api: Any, device: dict[str, Any], other: dict[str, Any]) -> list[Call]:
    devices = "/v1/devices"
    one = "/v1/devices/{device_id}"
    token = "/v1/devices/{device_id}/token"
    tele = "/v1/devices/{device_id}/telemetry"
    state = "/v1/devices/{device_id}/state"
    post = "/v1/telemetry"
    tb = "/api/v1/{token}/telemetry"
    rollups = "/v1/devices/{device_id}/rollups"
    search = "/v1/search"
    reports, report, chart = "/v1/reports", "/v1/reports/{report_id}", "/v1/reports/{report_id}/chart"
    rules, rule = "/v1/rules", "/v1/rules/{rule_id}"
    alerts, alert, ack = "/v1/alerts", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/ack"
    new_rule = {"name": "warm", "scope": {"all": True}, "metric": "temp", "condition": {"op": ">", "value": 30}}
    cmds, cmd = "/v1/devices/{device_id}/commands", "/v1/devices/{device_id}/commands/{command_id}"
    poll, result = "/v1/commands", "/v1/commands/{command_id}/result"
    admin, dev = api.admin, device["token"]
    d = device["id"]
    senml = [{"bn": "x/", "bt": T0 / 1000, "n": "t", "v": 1}, {"n": "s", "vs": "on"}, {"n": "b", "vb": True}]
    xml = b'<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="x" v="1"/></sensml>'
    return [
        Call("/v1/openapi.json", "GET", "/v1/openapi.json"),
        # registry
        Call(devices, "POST", devices, admin, {"name": "n", "id": "made", "attributes": {"a": 1, "b": "x", "c": True}}),
        Call(devices, "POST", devices, admin, {"name": "n", "id": "made"}),
        Call(devices, "POST", devices, admin, {"name": ""}),
        Call(devices, "POST", devices, admin, raw=b"{"),
        Call(devices, "POST", devices, None, {"name": "n"}),
        Call(devices, "POST", devices, dev, {"name": "n"}),
        Call(devices, "POST", devices, admin, {"name": "n"}, fault="PutItem"),
        Call(devices, "GET", devices, admin),
        Call(devices, "GET", devices + "?limit=1", admin),
        Call(devices, "GET", devices + "?limit=0", admin),
        Call(devices, "GET", devices, "iotd_unknown"),
        Call(devices, "GET", devices, dev),
        Call(devices, "GET", devices, admin, fault="Query"),
        Call(one, "GET", f"/v1/devices/{d}", admin),
        Call(one, "GET", "/v1/devices/nope", admin),
        Call(one, "GET", f"/v1/devices/{d}", None),
        Call(one, "GET", f"/v1/devices/{d}", dev),
        Call(one, "GET", f"/v1/devices/{d}", admin, fault="GetItem"),
        Call(one, "PATCH", f"/v1/devices/{d}", admin, {"attributes": {"room": "k"}}),
        Call(one, "PATCH", f"/v1/devices/{d}", admin, {"disabled": "no"}),
        Call(one, "PATCH", f"/v1/devices/{d}", admin, raw=b"nope"),
        Call(one, "PATCH", "/v1/devices/nope", admin, {"name": "x"}),
        Call(one, "PATCH", f"/v1/devices/{d}", None, {"name": "x"}),
        Call(one, "PATCH", f"/v1/devices/{d}", dev, {"name": "x"}),
        Call(one, "PATCH", f"/v1/devices/{d}", admin, {"name": "x"}, fault="UpdateItem"),
        Call(token, "POST", "/v1/devices/made/token", admin),
        Call(token, "POST", "/v1/devices/nope/token", admin),
        Call(token, "POST", f"/v1/devices/{d}/token", None),
        Call(token, "POST", f"/v1/devices/{d}/token", dev),
        Call(token, "POST", f"/v1/devices/{d}/token", admin, fault="UpdateItem"),
        # ingestion
        Call(post, "POST", post, dev, {"ts": T0, "values": {"temp": 21.5, "on": True, "label": "x"}}),
        Call(post, "POST", post, dev, senml, content_type="application/senml+json"),
        Call(post, "POST", post, dev, raw=xml, content_type="application/senml+xml"),
        Call(post, "POST", post, dev, {"temp": 1}, headers={"Idempotency-Key": "bad key"}),
        Call(post, "POST", post, dev, raw=b"{"),
        Call(post, "POST", post, dev, {"temp": None, "-x": 1}),
        Call(post, "POST", post, dev, raw=b'{"a":"' + b"x" * (1 << 20) + b'"}'),
        Call(post, "POST", post, dev, {"temp": 1}, content_type="text/plain"),
        Call(post, "POST", post, None, {"temp": 1}),
        Call(post, "POST", post, admin, {"temp": 1}),
        Call(post, "POST", post, dev, {"ts": T0, "values": {"temp": 1}}, fault="BatchWriteItem"),
        Call(tb, "POST", f"/api/v1/{dev}/telemetry", None, {"ts": T0 + 1, "values": {"temp": 2}}),
        Call(tb, "POST", "/api/v1/iotd_unknown/telemetry", None, {"temp": 1}),
        Call(tb, "POST", f"/api/v1/{admin}/telemetry", None, {"temp": 1}),
        Call(tb, "POST", f"/api/v1/{dev}/telemetry", None, {"temp": "x" * 2000}),
        Call(tb, "POST", f"/api/v1/{dev}/telemetry", None, {"ts": T0, "values": {"t": 1}}, fault="BatchWriteItem"),
        # reads
        *device_read_calls(tele, device, admin, other["token"], fault="Query"),
        Call(tele, "GET", f"/v1/devices/{d}/telemetry?limit=1", admin),
        Call(tele, "GET", f"/v1/devices/{d}/telemetry?limit=0", admin),
        *device_read_calls(state, device, admin, other["token"], fault="GetItem"),
        Call(state, "GET", f"/v1/devices/{other['id']}/state", admin),
        # analytics (rows seeded by seed_analytics)
        Call(rollups, "GET", f"/v1/devices/{d}/rollups?from={T0}&to={T0 + 3_600_000}", dev),
        Call(rollups, "GET", f"/v1/devices/{d}/rollups?from={T0}&metric=temp", admin),
        Call(rollups, "GET", f"/v1/devices/{d}/rollups?metric=-bad", admin),
        Call(rollups, "GET", "/v1/devices/-x/rollups", admin),
        Call(rollups, "GET", f"/v1/devices/{d}/rollups", None),
        Call(rollups, "GET", f"/v1/devices/{d}/rollups", other["token"]),
        Call(search, "GET", "/v1/search?q=Kitchen", admin),
        Call(search, "GET", "/v1/search?q=two%20words", admin),
        Call(search, "GET", "/v1/search?q=kitchen", None),
        Call(search, "GET", "/v1/search?q=kitchen", dev),
        Call(cmds, "POST", f"/v1/devices/{d}/commands", admin, {"procedure": "reboot", "kwargs": {"delay": 1}}),
        Call(cmds, "POST", f"/v1/devices/{d}/commands", admin, {"procedure": "bad uri", "timeout": 0}),
        Call(cmds, "POST", "/v1/devices/nope/commands", admin, {"procedure": "reboot"}),
        Call(cmds, "POST", f"/v1/devices/{d}/commands", admin, raw=b"{"),
        Call(cmds, "POST", f"/v1/devices/{d}/commands", dev, {"procedure": "reboot"}),
        Call(cmds, "POST", f"/v1/devices/{d}/commands", None, {"procedure": "reboot"}),
        Call(poll, "GET", "/v1/commands?wait=0", dev),
        Call(poll, "GET", "/v1/commands?wait=99", dev),
        Call(poll, "GET", "/v1/commands", admin),
        Call(poll, "GET", "/v1/commands", None),
        Call(cmd, "GET", f"/v1/devices/{d}/commands/{SEEDED['command']}", admin),
        Call(cmd, "GET", f"/v1/devices/{d}/commands/nope", admin),
        Call(cmd, "GET", f"/v1/devices/{d}/commands/{SEEDED['command']}", dev),
        Call(cmd, "GET", f"/v1/devices/{d}/commands/{SEEDED['command']}", None),
        Call(result, "POST", f"/v1/commands/{SEEDED['command']}/result", dev, {"result": {"ok": True}}),
        Call(result, "POST", f"/v1/commands/{SEEDED['command']}/result", dev, {"result": 1}),
        Call(result, "POST", f"/v1/commands/{SEEDED['command']}/result", dev, {"result": 1, "error": {}}),
        Call(result, "POST", f"/v1/commands/{SEEDED['command']}/result", dev, raw=b"["),
        Call(result, "POST", "/v1/commands/nope/result", dev, {"result": 1}),
        Call(result, "POST", f"/v1/commands/{SEEDED['command']}/result", None, {"result": 1}),
        Call(reports, "GET", "/v1/reports?limit=5", admin),
        Call(reports, "GET", "/v1/reports?limit=0", admin),
        Call(reports, "GET", "/v1/reports", None),
        Call(reports, "GET", "/v1/reports", dev),
        Call(report, "GET", f"/v1/reports/{REPORT_ID}", admin),
        Call(report, "GET", "/v1/reports/1795600000000-00000000", admin),
        Call(report, "GET", f"/v1/reports/{REPORT_ID}", None),
        Call(report, "GET", f"/v1/reports/{REPORT_ID}", dev),
        Call(chart, "GET", f"/v1/reports/{REPORT_ID}/chart", admin),
        Call(chart, "GET", "/v1/reports/nope/chart", admin),
        Call(chart, "GET", f"/v1/reports/{REPORT_ID}/chart", None),
        Call(chart, "GET", f"/v1/reports/{REPORT_ID}/chart", dev),
        # alert rules and alerts (seeded by seed_alert)
        Call(rules, "POST", rules, admin, new_rule),
        Call(rules, "POST", rules, admin, {"name": ""}),
        Call(rules, "POST", rules, admin, raw=b"{"),
        Call(rules, "POST", rules, dev, new_rule),
        Call(rules, "POST", rules, admin, new_rule, fault="PutItem"),
        Call(rules, "GET", rules + "?limit=1", admin),
        Call(rules, "GET", rules + "?limit=0", admin),
        Call(rules, "GET", rules, None),
        Call(rules, "GET", rules, admin, fault="Query"),
        Call(rule, "GET", f"/v1/rules/{RULE_ID}", admin),
        Call(rule, "GET", "/v1/rules/nope", admin),
        Call(rule, "GET", f"/v1/rules/{RULE_ID}", dev),
        Call(rule, "PATCH", f"/v1/rules/{RULE_ID}", admin, {"severity": "minor", "clear": None}),
        Call(rule, "PATCH", f"/v1/rules/{RULE_ID}", admin, {"severity": "fatal"}),
        Call(rule, "PATCH", f"/v1/rules/{RULE_ID}", admin, raw=b"{"),
        Call(rule, "PATCH", "/v1/rules/nope", admin, {"name": "x"}),
        Call(rule, "PATCH", f"/v1/rules/{RULE_ID}", None, {"name": "x"}),
        Call(alerts, "GET", "/v1/alerts?state=active&limit=5", admin),
        Call(alerts, "GET", "/v1/alerts?severity=major&device=fz-openapi", admin),
        Call(alerts, "GET", "/v1/alerts?severity=fatal", admin),
        Call(alerts, "GET", "/v1/alerts", dev),
        Call(alerts, "GET", "/v1/alerts", admin, fault="Query"),
        Call(alert, "GET", f"/v1/alerts/{ALERT_ID}", admin),
        Call(alert, "GET", "/v1/alerts/nope", admin),
        Call(alert, "GET", f"/v1/alerts/{ALERT_ID}", None),
        Call(alert, "GET", f"/v1/alerts/{ALERT_ID}", admin, fault="GetItem"),
        Call(ack, "POST", f"/v1/alerts/{ALERT_ID}/ack", admin),
        Call(ack, "POST", "/v1/alerts/nope/ack", admin),
        Call(ack, "POST", f"/v1/alerts/{ALERT_ID}/ack", dev),
        Call(rule, "DELETE", f"/v1/rules/{RULE_ID}", admin),
        Call(rule, "DELETE", f"/v1/rules/{RULE_ID}", admin),
        Call(rule, "DELETE", f"/v1/rules/{RULE_ID}", dev),
        # a disabled device, then deletion
        Call(one, "PATCH", f"/v1/devices/{other['id']}", admin, {"disabled": True}),
        Call(post, "POST", post, other["token"], {"temp": 1}),
        Call(one, "DELETE", "/v1/devices/made", admin),
        Call(one, "DELETE", "/v1/devices/made", admin),
        Call(one, "DELETE", f"/v1/devices/{d}", None),
        Call(one, "DELETE", f"/v1/devices/{d}", dev),
        Call(one, "DELETE", f"/v1/devices/{d}", admin, fault="DeleteItem"),
        *dashboard_calls(api, device),
    ]


def dashboard_session() -> tuple[dict[str, str], str]:
    """A signed-in dashboard session: its Cookie header and its CSRF token."""
    secret = sessions.secret()
    session, value = sessions.new_session(secret, now_ms(), 3600)
    return {"Cookie": f"{sessions.SESSION_COOKIE}={value}"}, sessions.csrf_token(secret, session)


def dashboard_calls(api: Any, device: dict[str, Any]) -> list[Call]:
    """The dashboard: pages (HTML, session cookie), form posts (303 when done), its script's JSON."""
    page, csrf = dashboard_session()
    nonce = "signin-nonce"
    signin = {"Cookie": f"{sessions.SIGNIN_COOKIE}={nonce}"}
    signin_token = sessions.signin_token(sessions.secret(), nonce)

    def form(template: str, path: str, headers: Any = page, fault: str | None = None, **fields: str) -> Call:
        raw = urllib.parse.urlencode(fields).encode()
        return Call(template, "POST", path, raw=raw, content_type="application/x-www-form-urlencoded",
                    headers=headers, fault=fault)  # fmt: skip

    def get(template: str, path: str, headers: Any = page, fault: str | None = None) -> Call:
        return Call(template, "GET", path, headers=headers, fault=fault)

    sign_in, sign_out, fleet = "/dashboard/sign-in", "/dashboard/sign-out", "/dashboard"
    dev, cmd = "/dashboard/devices/{device_id}", "/dashboard/devices/{device_id}/commands"
    alerts, ack = "/dashboard/alerts", "/dashboard/alerts/{alert_id}/ack"
    reports, report = "/dashboard/reports", "/dashboard/reports/{report_id}"
    chart = "/dashboard/reports/{report_id}/chart"
    js, css = "/dashboard/js/{name}", "/dashboard/css/{name}"
    tele, states = "/dashboard/data/devices/{device_id}/telemetry", "/dashboard/data/states"
    ticket = "/dashboard/data/ticket"
    agg = "/dashboard/data/devices/{device_id}/aggregates"
    spark = "/dashboard/data/sparklines"
    d = device["id"]
    digest = static.find("dashboard.js", ".js").digest  # type: ignore[union-attr]
    return [
        get(sign_in, "/dashboard/sign-in?next=%2Fdashboard%2Falerts", headers=None),
        get(sign_in, sign_in),
        form(sign_in, sign_in, signin, token=api.admin, signin_token=signin_token),
        form(sign_in, sign_in, signin, token="", signin_token=signin_token),
        form(sign_in, sign_in, signin, token="iotd_unknown", signin_token=signin_token),
        form(sign_in, sign_in, signin, token=device["token"], signin_token=signin_token),
        form(sign_in, sign_in, None, token=api.admin, signin_token=signin_token),
        get(fleet, fleet),
        get(fleet, "/dashboard?q=thermo&limit=1"),
        get(fleet, "/dashboard?limit=0"),
        get(fleet, fleet, headers=None),
        get(fleet, fleet, fault="Query"),
        get(dev, f"/dashboard/devices/{d}?window=24h&command={SEEDED['command']}"),
        get(dev, f"/dashboard/devices/{d}?window=2h"),
        get(dev, "/dashboard/devices/nope"),
        get(dev, f"/dashboard/devices/{d}", headers=None),
        get(dev, f"/dashboard/devices/{d}", fault="GetItem"),
        form(cmd, f"/dashboard/devices/{d}/commands", csrf=csrf, procedure="reboot", kwargs='{"delay": 1}'),
        form(cmd, f"/dashboard/devices/{d}/commands", csrf=csrf, procedure="bad uri", args="{"),
        form(cmd, "/dashboard/devices/nope/commands", csrf=csrf, procedure="reboot"),
        form(cmd, f"/dashboard/devices/{d}/commands", procedure="reboot"),
        form(cmd, f"/dashboard/devices/{d}/commands", fault="GetItem", csrf=csrf, procedure="reboot"),
        get(alerts, "/dashboard/alerts?state=active&severity=major"),
        get(alerts, "/dashboard/alerts?severity=fatal"),
        get(alerts, alerts, headers=None),
        get(alerts, alerts, fault="Query"),
        form(ack, f"/dashboard/alerts/{ALERT_ID}/ack", csrf=csrf, next="/dashboard/alerts"),
        form(ack, "/dashboard/alerts/nope/ack", csrf=csrf),
        form(ack, f"/dashboard/alerts/{ALERT_ID}/ack", next="/dashboard"),
        form(ack, f"/dashboard/alerts/{ALERT_ID}/ack", fault="UpdateItem", csrf=csrf),
        get(reports, "/dashboard/reports?limit=5"),
        get(reports, "/dashboard/reports?limit=0"),
        get(reports, reports, headers=None),
        get(reports, reports, fault="Query"),
        get(report, f"/dashboard/reports/{REPORT_ID}"),
        get(report, "/dashboard/reports/1795600000000-00000000"),
        get(report, f"/dashboard/reports/{REPORT_ID}", headers=None),
        get(report, f"/dashboard/reports/{REPORT_ID}", fault="GetItem"),
        get(chart, f"/dashboard/reports/{REPORT_ID}/chart"),
        get(chart, "/dashboard/reports/nope/chart"),
        get(chart, f"/dashboard/reports/{REPORT_ID}/chart", headers=None),
        get(chart, f"/dashboard/reports/{REPORT_ID}/chart", fault="GetItem"),
        get(js, "/dashboard/js/dashboard.js", headers=None),
        get(js, "/dashboard/js/dashboard.js", headers={"If-None-Match": f'"{digest}"'}),
        get(js, "/dashboard/js/nope.js", headers=None),
        get(css, "/dashboard/css/dashboard.css?v=x", headers=None),
        get(css, "/dashboard/css/dashboard.js", headers=None),
        get(tele, f"/dashboard/data/devices/{d}/telemetry?limit=1"),
        get(tele, f"/dashboard/data/devices/{d}/telemetry?limit=0"),
        get(tele, "/dashboard/data/devices/nope/telemetry"),
        get(tele, f"/dashboard/data/devices/{d}/telemetry", headers=None),
        get(tele, f"/dashboard/data/devices/{d}/telemetry", fault="Query"),
        get(agg, f"/dashboard/data/devices/{d}/aggregates?interval=1h"),
        get(agg, f"/dashboard/data/devices/{d}/aggregates?interval=5x"),
        get(agg, "/dashboard/data/devices/nope/aggregates"),
        get(agg, f"/dashboard/data/devices/{d}/aggregates", headers=None),
        get(agg, f"/dashboard/data/devices/{d}/aggregates", fault="Query"),
        get(spark, f"/dashboard/data/sparklines?ids={d},nope"),
        get(spark, spark),
        get(spark, f"/dashboard/data/sparklines?ids={d}", headers=None),
        get(spark, f"/dashboard/data/sparklines?ids={d}", fault="Query"),
        get(states, f"/dashboard/data/states?ids={d},nope"),
        get(states, states),
        get(states, f"/dashboard/data/states?ids={d}", headers=None),
        get(states, f"/dashboard/data/states?ids={d}", fault="GetItem"),
        Call(ticket, "POST", ticket, headers={**page, "X-CSRF-Token": csrf}),
        Call(ticket, "POST", ticket, headers=page),
        Call(ticket, "POST", ticket),
        form(sign_out, sign_out, csrf=csrf),
        form(sign_out, sign_out, csrf="forged"),
    ]


def seed_analytics(device_id: str) -> None:
    """What the hourly job would have written for a device: an hour's rollups (a number and a string
    series, so nullable fields are both present and null), and one posting."""
    hour = T0 // HOUR_MS * HOUR_MS
    temp = partial_of([(T0, 20), (T0 + 1000, 21.5)])
    door = partial_of([(T0, "open")])
    assert temp is not None and door is not None
    wiring.rollup_store().put_hour(hour, {device_id: {("temp", "", hour): temp, ("door", "", hour): door}})
    posting = {"device_id": device_id, "metric": "label", "count": 1, "first_ts": T0, "last_ts": T0}
    index_row = {"word": "kitchen", "postings": [posting], "count": 1, "first_ts": T0, "last_ts": T0}
    wiring.aggregates().put(index_items(index_row, "2025-11-25"))


REPORT_ID = "1795600000000-0123abcd"
RULE_ID = "rule-0123456789abcdef0123"
ALERT_ID = alert_id_for(RULE_ID, "fz-openapi", T0)


def seed_alert() -> None:
    """What the live handler would have stored: a rule and the alert it raised."""
    store = AlertStore()
    body = {"name": "warm", "scope": {"device": "fz-openapi"}, "metric": "temp", "condition": {"op": ">", "value": 1}}
    rule = validate_rule(body, rule_id=RULE_ID, created_at=T0, updated_at=T0)
    store.create_rule(rule)
    state = RuleState(RULE_ID, "fz-openapi")
    after, events = evaluate(rule, state, [Reading("temp", "Cel", T0, 5)])
    store.commit(Commit(rule, state, after, alert_writes(rule, events), ()))


SEEDED: dict[str, str] = {}


def seed_command(device_id: str) -> None:
    """A command queued for the device, which it then fetches and answers."""
    command = wiring.realtime_store().create_command(device_id, f"iotcloud.device.{device_id}.reboot", [], {}, 30_000)
    SEEDED["command"] = command["id"]


def seed_report() -> None:
    """What the scaling report job would have stored."""
    settings = wiring.bound_settings()
    boto3.client("s3", region_name=settings.region).create_bucket(Bucket=settings.archive_bucket)
    report = {
        "schema_version": 1,
        "id": REPORT_ID,
        "stage": "test",
        "generated_at": "2026-11-25T09:46:40Z",
        "trigger": {"kind": "schedule"},
        "window": {"start_ms": 1795596400000, "end_ms": 1795600000000, "period_s": 60},
        "targets": [{"name": "ingest-fleet", "decision": {"action": "hold"}}],
        "skipped": [],
        "summary": "ingest-fleet: hold",
    }
    wiring.reports().save(report, "<svg xmlns='http://www.w3.org/2000/svg'/>")


def _throttle(operation: str):
    def fault(name: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if name == operation:
            raise throttled(name)
        return None

    return fault


@pytest.fixture
def public_ws_url(monkeypatch):
    """A stage with a public WebSocket URL: the dashboard hands out WAMP tickets."""
    monkeypatch.setenv("PUBLIC_WS_URL", "wss://ws.example.com/api")
    settings.cache_clear()
    yield
    settings.cache_clear()


def test_answers_match_their_documented_schemas(api, device, other_device, document, sleeps, public_ws_url):
    seed_analytics(device["id"])
    seed_report()
    seed_alert()
    seed_command(device["id"])
    seen: dict[tuple[str, str], set[int]] = {}
    problems: list[str] = []
    for call in representative_calls(api, device, other_device):
        with dynamodb(_throttle(call.fault) if call.fault else None):
            answer = api.request(
                call.method, call.path, call.token, call.body, call.raw, call.content_type, call.headers
            )
        seen.setdefault((call.template, call.method), set()).add(answer.status_code)
        label = f"{call.method} {call.path[:60]} -> {answer.status_code}"
        try:
            validator = response_validator(document, call.template, call.method, answer.status_code)
        except Undocumented as e:
            problems.append(f"{label}: {e}")
            continue
        except NotJson as media:
            if not answer.headers.get("Content-Type", "").startswith(str(media)):
                problems.append(f"{label}: Content-Type {answer.headers.get('Content-Type')}, documented {media}")
            continue
        if validator is None:
            if answer.body:
                problems.append(f"{label}: documented without content, answered {answer.body[:80]!r}")
            continue
        if answer.headers.get("Content-Type") != "application/json":
            problems.append(f"{label}: Content-Type {answer.headers.get('Content-Type')}")
        instance = json.loads(answer.body)
        for error in validator.iter_errors(instance):
            problems.append(f"{label}: {error.message[:200]} at {list(error.absolute_path)}")
        if answer.status_code >= 400:
            assert set(instance) == {"error"}, label
    assert problems == [], "\n".join(problems)

    # Every operation was seen succeeding and failing.
    for operation in documented_operations(document):
        statuses = seen.get(operation, set())
        # The dashboard's forms succeed with a redirect (POST, redirect, GET); its files with 304 too.
        assert any(s < 300 or (s in (303, 304) and operation[0].startswith("/dashboard")) for s in statuses), (
            operation,
            statuses,
        )
        if operation not in (("/v1/openapi.json", "GET"), ("/dashboard/sign-in", "GET")):
            assert any(s >= 400 for s in statuses), (operation, statuses)
    assert 503 in seen[("/v1/telemetry", "POST")]


ROUTES = sorted((path, method) for path, methods in app.routes.items() for method in methods)


@pytest.mark.parametrize(("path", "method"), ROUTES, ids=[f"{m} {p}" for p, m in ROUTES])
def test_a_stray_content_type_never_changes_the_answer_shape(api, device, path, method):
    # Clients often send a Content-Type on every request; a read has no body to type, and
    # every error answer, whatever the request, is {"error": {...}}.
    url = path.replace("{device_id}", device["id"]).replace("{token}", device["token"])
    if path == "/v1/search":
        url += "?q=word"
    if path in ("/dashboard/data/states", "/dashboard/data/sparklines"):
        url += f"?ids={device['id']}"
    headers = dashboard_session()[0] if path.startswith("/dashboard") else None
    answer = api.request(method, url, api.admin, raw=b"x", content_type="text/plain", headers=headers)
    # No report, command, rule, alert or file of that name exists here (404), and /v1/commands is for
    # device tokens (403). The dashboard's sign-in page sends a signed-in visitor on (303).
    missing = ("{report_id}", "{command_id}", "/v1/commands", "{rule_id}", "{alert_id}", "{name}")
    if method in ("GET", "DELETE") and not any(p in path for p in missing):
        assert answer.status_code < (400 if path == "/dashboard/sign-in" else 300), answer.body
    if answer.status_code >= 400:
        if path.startswith("/dashboard") and not path.startswith("/dashboard/data"):
            assert answer.headers["Content-Type"].startswith("text/html")  # pages answer browsers
        else:
            error_of(answer)
