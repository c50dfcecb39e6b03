"""/v1/rules and /v1/alerts through the Chalice test client, against moto."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.alerts import AlertStore, Commit
from chalicelib.domain.alerts import (
    RuleState,
    alert_writes,
    evaluate,
    new_rule_id,
    notifications_for,
    validate_rule,
)
from chalicelib.domain.readings import Reading
from tests.conftest import Api
from tests.functional.helpers import T0, body_of, dynamodb, error_of

S = 1000
FREEZER_RULE = {
    "name": "freezer too warm",
    "scope": {"type": "freezer"},
    "metric": "temp",
    "unit": "Cel",
    "condition": {"op": ">", "value": -15},
    "duration": {"seconds": 300},
    "clear": {"op": "<", "value": -18},
    "severity": "critical",
    "notify": {"emails": ["ops@example.com"]},
}
OFFLINE_RULE = {"name": "silent", "kind": "offline", "scope": {"all": True}, "offline": {"seconds": 3600}}


@functools.cache
def served_app() -> Any:
    """The app serving the alerts routes: app.py's once it registers them, until then the blueprint alone.

    Built once: a blueprint registers its routes on one app only once.
    """
    from chalice.app import Chalice

    from app import app
    from chalicelib.api.alerts import alerts_api

    if "/v1/rules" in app.routes:
        return app
    alone = Chalice(app_name="iotcloud-alerts")
    alone.register_blueprint(alerts_api)
    return alone


@pytest.fixture
def alerts(api: Api) -> Iterator[Api]:
    from chalice.test import Client

    with Client(served_app(), stage_name="test") as client:
        yield Api(client)


def create(client: Api, body: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    answer = client.request("POST", "/v1/rules", client.admin, {**(body or FREEZER_RULE), **fields})
    assert answer.status_code == 201, answer.body
    return body_of(answer)  # type: ignore[no-any-return]


# --- rules ----------------------------------------------------------------------------------------------------------


def test_rule_crud(alerts):
    created = create(alerts)
    assert created["id"].startswith("rule-") and created["created_at"] == created["updated_at"]
    assert {k: created[k] for k in FREEZER_RULE} == FREEZER_RULE | {
        "notify": {"emails": ["ops@example.com"], "topic": "iotcloud.alerts"}
    }
    assert created["kind"] == "threshold" and created["enabled"] is True and created["offline"] is None
    path = f"/v1/rules/{created['id']}"
    assert body_of(alerts.request("GET", path, alerts.admin)) == created

    patched = alerts.request("PATCH", path, alerts.admin, {"severity": "minor", "clear": None, "enabled": False})
    assert patched.status_code == 200, patched.body
    doc = body_of(patched)
    assert (doc["severity"], doc["clear"], doc["effective_clear"], doc["enabled"]) == (
        "minor", None, {"op": "<=", "value": -15}, False,
    )  # fmt: skip
    assert doc["updated_at"] >= created["updated_at"] and doc["created_at"] == created["created_at"]
    assert body_of(alerts.request("GET", path, alerts.admin)) == doc

    assert alerts.request("DELETE", path, alerts.admin).status_code == 204
    assert error_of(alerts.request("GET", path, alerts.admin))["code"] == "rule_not_found"
    assert alerts.request("DELETE", path, alerts.admin).status_code == 404
    assert alerts.request("PATCH", path, alerts.admin, {"name": "x"}).status_code == 404


def test_offline_rule(alerts):
    created = create(alerts, OFFLINE_RULE)
    assert created["offline"] == {"seconds": 3600} and created["metric"] is None and created["severity"] == "major"


def test_unknown_rule_ids_are_404(alerts):
    for method in ("GET", "PATCH", "DELETE"):
        answer = alerts.request(method, "/v1/rules/nope", alerts.admin, {"name": "x"} if method == "PATCH" else None)
        assert answer.status_code == 404 and error_of(answer)["code"] == "rule_not_found"
    assert alerts.request("GET", "/v1/rules/rule-" + "0" * 20, alerts.admin).status_code == 404


def test_invalid_rules_are_422_with_every_problem(alerts):
    answer = alerts.request(
        "POST", "/v1/rules", alerts.admin, {"name": "n", "scope": {}, "condition": {"op": ">", "value": "x"}}
    )
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "validation_failed"
    assert {(d["code"], d.get("field")) for d in error["details"]} == {
        ("invalid_field", "scope"), ("invalid_field", "metric"), ("invalid_field", "condition"),
    }  # fmt: skip
    assert alerts.request("POST", "/v1/rules", alerts.admin, raw=b"{").status_code == 400
    assert alerts.request("POST", "/v1/rules", alerts.admin, [1]).status_code == 422
    rule = create(alerts)
    answer = alerts.request("PATCH", f"/v1/rules/{rule['id']}", alerts.admin, {"condition": {"op": "~", "value": 1}})
    assert answer.status_code == 422
    answer = alerts.request("PATCH", f"/v1/rules/{rule['id']}", alerts.admin, {"id": "rule-x", "created_at": 1})
    assert answer.status_code == 422
    assert {d["code"] for d in error_of(answer)["details"]} == {"unknown_field"}


def test_rules_are_listed_in_pages(alerts):
    ids = sorted(create(alerts, name=f"r{i}")["id"] for i in range(5))
    seen: list[str] = []
    cursor = None
    while True:
        answer = alerts.request("GET", "/v1/rules?limit=2" + (f"&cursor={cursor}" if cursor else ""), alerts.admin)
        assert answer.status_code == 200, answer.body
        doc = body_of(answer)
        assert len(doc["rules"]) <= 2
        seen += [r["id"] for r in doc["rules"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert alerts.request("GET", "/v1/rules?cursor=bogus", alerts.admin).status_code == 400
    assert alerts.request("GET", "/v1/rules?limit=0", alerts.admin).status_code == 400


ROUTES = [
    ("POST", "/v1/rules"),
    ("GET", "/v1/rules"),
    ("GET", "/v1/rules/{rule}"),
    ("PATCH", "/v1/rules/{rule}"),
    ("DELETE", "/v1/rules/{rule}"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/alerts/{alert}"),
    ("POST", "/v1/alerts/{alert}/ack"),
]


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_admin_only(alerts, device, method, template):
    path = template.format(rule="rule-" + "0" * 20, alert=f"{T0:013d}-{'0' * 16}")
    body = FREEZER_RULE if method in ("POST", "PATCH") else None
    answer = alerts.request(method, path, device["token"], body)
    assert answer.status_code == 403 and error_of(answer)["code"] == "forbidden"
    answer = alerts.request(method, path, None, body)
    assert answer.status_code == 401 and error_of(answer)["code"] == "unauthorized"
    assert alerts.request(method, path, "iotd_unknown", body).status_code == 401


# --- alerts ---------------------------------------------------------------------------------------------------------


def raise_and_maybe_clear(store: AlertStore, rule_body: dict[str, Any], device_id: str, ts: int, clear: bool) -> str:
    """Store an alert as the stream handler would: evaluate readings and commit."""
    rule = validate_rule(rule_body, rule_id=new_rule_id(), created_at=T0, updated_at=T0)
    store.create_rule(rule)
    state = RuleState(rule.rule_id, device_id)
    readings = [Reading("temp", "Cel", ts, -5)]
    if clear:
        readings.append(Reading("temp", "Cel", ts + S, -25))
    after, events = evaluate(rule, state, readings)
    store.commit(Commit(rule, state, after, alert_writes(rule, events), tuple(notifications_for(rule, events, ts))))
    return events[0].alert_id


@pytest.fixture
def seeded(alerts) -> dict[str, dict[str, Any]]:
    """Six alerts: fz-1 and fz-2, severities critical/major/minor, cleared every third."""
    store = AlertStore()
    out: dict[str, dict[str, Any]] = {}
    severities = ["critical", "major", "minor"]
    for i in range(6):
        body = {**FREEZER_RULE, "duration": None, "clear": None, "severity": severities[i % 3]}
        body = {k: v for k, v in body.items() if v is not None}
        device = f"fz-{i % 2 + 1}"
        alert_id = raise_and_maybe_clear(store, body, device, T0 + i * 60 * S, clear=i % 3 == 2)
        out[alert_id] = {
            "device": device,
            "severity": severities[i % 3],
            "state": "cleared" if i % 3 == 2 else "active",
        }
    return out


def listed(client: Api, query: str = "", limit: int = 2) -> list[dict[str, Any]]:
    """Every alert of a listing, following cursors (pages of `limit`)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        answer = client.request("GET", f"/v1/alerts?limit={limit}{query}{suffix}", client.admin)
        assert answer.status_code == 200, answer.body
        doc = body_of(answer)
        assert len(doc["alerts"]) <= limit
        out += doc["alerts"]
        cursor = doc["next_cursor"]
        if cursor is None:
            return out


def test_alerts_are_listed_newest_first_in_pages(alerts, seeded):
    found = listed(alerts)
    assert [a["id"] for a in found] == sorted(seeded, reverse=True)
    first = found[-1]
    assert first["raised_by"] == [{"metric": "temp", "unit": "Cel", "ts": T0, "value": -5}]
    assert (first["state"], first["acknowledged"], first["cleared_by"]) == ("active", False, [])
    cleared = next(a for a in found if a["state"] == "cleared")
    assert cleared["cleared_by"][0]["value"] == -25 and cleared["cleared_at"] == cleared["raised_at"] + S


@pytest.mark.parametrize(
    "query",
    ["&state=active", "&state=cleared", "&severity=critical", "&device=fz-1", "&state=active&severity=major",
     "&state=cleared&device=fz-1", "&severity=minor&device=fz-2", "&state=active&severity=critical&device=fz-1"],
)  # fmt: skip
def test_alert_filters(alerts, seeded, query):
    wanted = dict(part.split("=") for part in query.strip("&").split("&"))

    def keep(meta: dict[str, Any]) -> bool:
        return all(meta[k] == v for k, v in wanted.items())

    expected = sorted((i for i, meta in seeded.items() if keep(meta)), key=lambda i: i, reverse=True)
    found = [a["id"] for a in listed(alerts, query, limit=1)]
    assert sorted(found, reverse=True) == expected and len(found) == len(set(found))
    if "state" in wanted and "device" not in wanted:  # the state index: most severe first, then newest
        ranks = {"critical": 4, "major": 3, "minor": 2}
        assert found == sorted(found, key=lambda i: (ranks[seeded[i]["severity"]], i), reverse=True)


def test_each_listing_is_one_query(alerts, seeded):
    for query in ("", "&state=active", "&severity=major", "&device=fz-1&state=active", "&acknowledged=false"):
        with dynamodb() as calls:
            assert alerts.request("GET", f"/v1/alerts?limit=50{query}", alerts.admin).status_code == 200
        assert calls == ["Query"], (query, calls)


def test_bad_alert_parameters_are_400(alerts, seeded):
    for query in ("state=open", "severity=fatal", "device=-x", "acknowledged=maybe", "limit=0", "cursor=zzz"):
        answer = alerts.request("GET", f"/v1/alerts?{query}", alerts.admin)
        assert answer.status_code == 400 and error_of(answer)["code"] == "invalid_parameter", query
    cursor = body_of(alerts.request("GET", "/v1/alerts?limit=1&state=active", alerts.admin))["next_cursor"]
    answer = alerts.request("GET", f"/v1/alerts?limit=1&state=cleared&cursor={cursor}", alerts.admin)
    assert answer.status_code == 400  # a cursor belongs to its filters


def test_get_and_acknowledge(alerts, seeded):
    alert_id = sorted(seeded)[0]
    path = f"/v1/alerts/{alert_id}"
    doc = body_of(alerts.request("GET", path, alerts.admin))
    assert doc["id"] == alert_id and doc["acknowledged"] is False and doc["acknowledged_at"] is None

    acked = alerts.request("POST", f"{path}/ack", alerts.admin)
    assert acked.status_code == 200, acked.body
    first = body_of(acked)
    assert first["acknowledged"] is True and isinstance(first["acknowledged_at"], int)
    assert {k: v for k, v in first.items() if not k.startswith("acknowledged")} == {
        k: v for k, v in doc.items() if not k.startswith("acknowledged")
    }
    again = body_of(alerts.request("POST", f"{path}/ack", alerts.admin))
    assert again == first  # idempotent: the first acknowledgement's time stays
    assert body_of(alerts.request("GET", path, alerts.admin)) == first

    assert [a["id"] for a in listed(alerts, "&acknowledged=true")] == [alert_id]
    assert alert_id not in [a["id"] for a in listed(alerts, "&acknowledged=false")]


def test_acknowledging_keeps_a_later_clear_and_vice_versa(alerts):
    store = AlertStore()
    rule = validate_rule(
        {k: v for k, v in FREEZER_RULE.items() if k not in ("duration", "clear")},
        rule_id=new_rule_id(), created_at=T0, updated_at=T0,
    )  # fmt: skip
    store.create_rule(rule)
    state = RuleState(rule.rule_id, "fz-9")
    raised, events = evaluate(rule, state, [Reading("temp", "Cel", T0, -5)])
    raised = store.commit(Commit(rule, state, raised, alert_writes(rule, events), ()))
    alert_id = events[0].alert_id
    assert alerts.request("POST", f"/v1/alerts/{alert_id}/ack", alerts.admin).status_code == 200
    cleared, events = evaluate(rule, raised, [Reading("temp", "Cel", T0 + S, -25)])
    store.commit(Commit(rule, raised, cleared, alert_writes(rule, events), ()))
    doc = body_of(alerts.request("GET", f"/v1/alerts/{alert_id}", alerts.admin))
    assert (doc["state"], doc["acknowledged"]) == ("cleared", True)


def test_unknown_alerts_are_404(alerts):
    for path in ("/v1/alerts/nope", f"/v1/alerts/{T0:013d}-{'0' * 16}"):
        assert error_of(alerts.request("GET", path, alerts.admin))["code"] == "alert_not_found"
        answer = alerts.request("POST", f"{path}/ack", alerts.admin)
        assert answer.status_code == 404 and error_of(answer)["code"] == "alert_not_found"


# --- OpenAPI: the additions are valid and tell the truth ------------------------------------------------------------


@pytest.fixture
def document() -> dict[str, Any]:
    """The API document as served, generated from the routes' declarations (the alerts routes' included)."""
    from chalicelib.api.openapi_doc import document as generated

    return generated(served_app().routes)


def test_openapi_additions_are_valid_and_cover_every_route(document):
    from openapi_spec_validator import validate as validate_spec

    from chalicelib.api.routing import spec_of

    validate_spec(document)
    served = {
        (path, method): entry for path, methods in served_app().routes.items() for method, entry in methods.items()
    }
    mine = {(path, method) for path, method in served if path.startswith(("/v1/rules", "/v1/alerts"))}
    documented = {
        (path, m.upper())
        for path, item in document["paths"].items()
        for m in item
        if path.startswith(("/v1/rules", "/v1/alerts"))
    }
    assert documented == mine
    declared = {key for key in mine if getattr(spec_of(served[key].view_function), "op", None) is not None}
    assert declared == mine  # every operation is generated from its route's declaration, none written by hand


def test_answers_match_the_documented_schemas(alerts, device, seeded, document):
    from tests.functional.test_openapi import response_validator

    rule = create(alerts)
    r, a = f"/v1/rules/{rule['id']}", f"/v1/alerts/{sorted(seeded)[0]}"
    dev = device["token"]
    calls = [
        ("/v1/rules", "POST", "/v1/rules", alerts.admin, FREEZER_RULE),
        ("/v1/rules", "POST", "/v1/rules", alerts.admin, OFFLINE_RULE),
        ("/v1/rules", "POST", "/v1/rules", alerts.admin, {"name": ""}),
        ("/v1/rules", "POST", "/v1/rules", dev, FREEZER_RULE),
        ("/v1/rules", "GET", "/v1/rules?limit=1", alerts.admin, None),
        ("/v1/rules", "GET", "/v1/rules?cursor=x", alerts.admin, None),
        ("/v1/rules", "GET", "/v1/rules", None, None),
        ("/v1/rules/{rule_id}", "GET", r, alerts.admin, None),
        ("/v1/rules/{rule_id}", "GET", "/v1/rules/nope", alerts.admin, None),
        ("/v1/rules/{rule_id}", "PATCH", r, alerts.admin, {"clear": None, "duration": {"readings": 2}}),
        ("/v1/rules/{rule_id}", "PATCH", r, alerts.admin, {"severity": "bad"}),
        ("/v1/rules/{rule_id}", "PATCH", r, dev, {"severity": "minor"}),
        ("/v1/alerts", "GET", "/v1/alerts?limit=2", alerts.admin, None),
        ("/v1/alerts", "GET", "/v1/alerts?state=cleared&device=fz-1", alerts.admin, None),
        ("/v1/alerts", "GET", "/v1/alerts?state=nope", alerts.admin, None),
        ("/v1/alerts", "GET", "/v1/alerts", dev, None),
        ("/v1/alerts/{alert_id}", "GET", a, alerts.admin, None),
        ("/v1/alerts/{alert_id}", "GET", "/v1/alerts/nope", alerts.admin, None),
        ("/v1/alerts/{alert_id}/ack", "POST", f"{a}/ack", alerts.admin, None),
        ("/v1/alerts/{alert_id}/ack", "POST", "/v1/alerts/nope/ack", alerts.admin, None),
        ("/v1/alerts/{alert_id}/ack", "POST", f"{a}/ack", None, None),
        ("/v1/rules/{rule_id}", "DELETE", r, alerts.admin, None),
        ("/v1/rules/{rule_id}", "DELETE", r, alerts.admin, None),
    ]
    seen: dict[tuple[str, str], set[int]] = {}
    for template, method, path, token, body in calls:
        answer = alerts.request(method, path, token, body)
        seen.setdefault((template, method), set()).add(answer.status_code)
        validator = response_validator(document, template, method, answer.status_code)
        if validator is None:
            assert not answer.body
            continue
        assert answer.headers["Content-Type"] == "application/json"
        errors = [e.message for e in validator.iter_errors(body_of(answer))]
        assert errors == [], (method, path, answer.status_code, errors)
    assert all(any(s < 300 for s in v) and any(s >= 400 for s in v) for v in seen.values()), seen
