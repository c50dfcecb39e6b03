"""The document's query parameters are the routes' declarations, and what it allows validation takes.

Each JSON route (and each dashboard page that reads any) declares its query parameters once
(`routing.route(query=...)`, `api.params`): the route reads its request through them and the
document is generated from them. These tests hold the two together from both ends: the served
document states every declaration exactly, and a value the document's schema allows is read by
the route without a 400 (at the bounds too).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator

from app import app
from chalicelib.api.dashboard_ops import DEVICE_QUERY, FLEET_QUERY, REPORTS_PAGE_QUERY
from chalicelib.api.params import (
    AGGREGATION_PARAMS,
    ALERTS_PAGE,
    DEVICE_TELEMETRY_QUERY,
    DEVICES_PAGE,
    MAX_WAIT_S,
    SEARCH_QUERY,
    TELEMETRY_QUERY,
    ChoiceParam,
    IntParam,
    OptionalIntParam,
    Param,
    PatternParam,
    WordParam,
    alerts_query,
)
from chalicelib.api.routing import spec_of
from chalicelib.domain.aggregation_rules import AGGREGATES, INTERVAL_PATTERN, MAX_BUCKETS, MAX_TZ_CHARS, TZ_PATTERN
from chalicelib.domain.rules import MAX_METRIC_CHARS, MAX_PAGE
from chalicelib.errors import InvalidParameterError
from tests.functional.helpers import body_of, error_of

METHODS = {"get", "put", "post", "delete", "patch"}
NOW = 1_700_000_000_000


@pytest.fixture
def document(api: Any) -> dict[str, Any]:
    answer = api.request("GET", "/v1/openapi.json")
    assert answer.status_code == 200
    return body_of(answer)  # type: ignore[no-any-return]


def declared_routes() -> list[tuple[str, str, tuple[Param, ...]]]:
    """(path, method, query) of every route that declares its query parameters."""
    found = []
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            spec = spec_of(entry.view_function)
            assert spec is not None, f"{method} {path} is not declared through routing.route"
            query = spec.query_params()
            if spec.page and query is None:
                continue  # a dashboard page or form that reads no query parameters
            assert query is not None, f"{method} {path} is a JSON route without a query declaration"
            found.append((path, method, query))
    return found


def test_every_json_route_declares_its_query_and_the_list_routes_declare_theirs() -> None:
    declared = {(path, method): {p.name for p in query} for path, method, query in declared_routes()}
    assert len(declared) >= 25
    assert declared["/v1/search", "GET"] == {"q"}
    assert (*TELEMETRY_QUERY, *AGGREGATION_PARAMS) == DEVICE_TELEMETRY_QUERY
    raw = {"from", "to", "metric", "limit", "cursor"}
    assert declared["/v1/devices/{device_id}/telemetry", "GET"] == raw | {"agg", "interval", "points", "tz", "unit"}
    assert declared["/v1/devices/{device_id}/rollups", "GET"] == {"from", "to", "metric"}
    assert declared["/v1/alerts", "GET"] == {"limit", "device", "acknowledged", "state", "severity", "cursor"}
    assert declared["/v1/commands", "GET"] == {"wait"}
    assert declared["/v1/devices", "GET"] == declared["/v1/rules", "GET"] == {"limit", "cursor"}
    assert declared["/v1/reports", "GET"] == {"limit", "cursor"}
    assert declared["/v1/devices/{device_id}", "GET"] == set()
    assert declared["/dashboard", "GET"] == {"q", "limit", "cursor"}
    assert declared["/dashboard/alerts", "GET"] == declared["/v1/alerts", "GET"]
    dashboard_telemetry = "/dashboard/data/devices/{device_id}/telemetry"
    assert declared[dashboard_telemetry, "GET"] == raw  # the dashboard's raw page: no aggregation


def test_the_documents_query_parameters_are_the_declarations(document: dict[str, Any]) -> None:
    for path, method, query in declared_routes():
        operation = document["paths"][path][method.lower()]
        documented = [p for p in operation.get("parameters", []) if p["in"] == "query"]
        path_level = [p for p in document["paths"][path].get("parameters", []) if p["in"] == "query"]
        assert path_level == [], f"{path} documents query parameters for all its methods"
        assert [p["name"] for p in documented] == [p.name for p in query], (method, path)
        for doc, param in zip(documented, query, strict=True):
            assert doc["required"] is param.required, (method, path, param.name)
            assert doc["schema"] == param.schema(), (method, path, param.name)
            assert doc.get("description", "") == param.description


def test_the_loose_parameters_the_fuzzing_found_are_bounded(document: dict[str, Any]) -> None:
    def schema(path: str, name: str) -> dict[str, Any]:
        params = document["paths"][path]["get"]["parameters"]
        return next(p for p in params if p["name"] == name)["schema"]  # type: ignore[no-any-return]

    assert "pattern" in schema("/v1/search", "q")
    assert schema("/v1/devices/{device_id}/telemetry", "limit")["maximum"] == MAX_PAGE
    assert schema("/v1/devices/{device_id}/telemetry", "metric")["maxLength"] == MAX_METRIC_CHARS
    assert schema("/v1/alerts", "limit")["maximum"] == ALERTS_PAGE[1]
    assert schema("/v1/commands", "wait")["maximum"] == MAX_WAIT_S
    tele = "/v1/devices/{device_id}/telemetry"
    assert schema(tele, "points")["maximum"] == MAX_BUCKETS
    assert schema(tele, "interval")["pattern"] == INTERVAL_PATTERN.pattern
    assert schema(tele, "tz") == {"type": "string", "pattern": TZ_PATTERN.pattern, "maxLength": MAX_TZ_CHARS}
    assert schema(tele, "agg")["enum"] == list(AGGREGATES)


def _values(param: Param) -> st.SearchStrategy[str]:
    """Query values the declaration's documented schema allows (as they travel: strings)."""
    schema = param.schema()
    if isinstance(param, IntParam | OptionalIntParam):
        return st.integers(schema["minimum"], schema["maximum"]).map(str)
    if isinstance(param, ChoiceParam):
        return st.sampled_from(schema["enum"])
    if isinstance(param, PatternParam | WordParam):
        values = st.from_regex(re.compile(schema["pattern"]), fullmatch=True)
        return values.filter(lambda v: len(v) <= schema.get("maxLength", len(v)))
    raise AssertionError(f"no strategy for {param}")


CHECKED = [
    p
    for p in (*DEVICE_TELEMETRY_QUERY, *SEARCH_QUERY, *alerts_query(), *FLEET_QUERY, *DEVICE_QUERY, *REPORTS_PAGE_QUERY)
    if isinstance(p, IntParam | OptionalIntParam | ChoiceParam | PatternParam | WordParam)
]


@pytest.mark.parametrize("param", CHECKED, ids=lambda p: f"{type(p).__name__}:{p.name}")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_value_the_document_allows_is_not_refused(param: Param, data: st.DataObject) -> None:
    value = data.draw(_values(param))
    as_json: Any = int(value) if isinstance(param, IntParam | OptionalIntParam) else value
    assert OAS30Validator(param.schema()).is_valid(as_json), (param.name, value)
    param.read({param.name: value}, NOW)  # no InvalidParameterError


@pytest.mark.parametrize(
    "param", [p for p in CHECKED if isinstance(p, IntParam | OptionalIntParam)], ids=lambda p: p.name
)
def test_an_integer_one_past_its_bound_is_refused_by_both(param: IntParam | OptionalIntParam) -> None:
    for outside in (param.low - 1, param.high + 1):
        assert not OAS30Validator(param.schema()).is_valid(outside)
        with pytest.raises(InvalidParameterError, match=f"{param.name} must be between"):
            param.read({param.name: str(outside)}, NOW)


def test_limits_at_and_over_their_max_over_http(api: Any, device: dict[str, Any]) -> None:
    tele = f"/v1/devices/{device['id']}/telemetry"
    assert api.request("GET", f"{tele}?limit={MAX_PAGE}", device["token"]).status_code == 200
    over = api.request("GET", f"{tele}?limit={MAX_PAGE + 1}", device["token"])
    assert over.status_code == 400
    assert error_of(over)["code"] == "invalid_parameter"
    assert api.request("GET", f"/v1/devices?limit={DEVICES_PAGE[1]}", api.admin).status_code == 200
    assert api.request("GET", f"/v1/devices?limit={DEVICES_PAGE[1] + 1}", api.admin).status_code == 400
    assert api.request("GET", f"/v1/alerts?limit={ALERTS_PAGE[1]}", api.admin).status_code == 200
    assert api.request("GET", f"/v1/alerts?limit={ALERTS_PAGE[1] + 1}", api.admin).status_code == 400
    # q as the document allows it (any case, spaces around) is searched as the trimmed word.
    found = api.request("GET", "/v1/search?q=%20Eco%20", api.admin)
    assert found.status_code == 200 and body_of(found)["word"] == "eco"
    assert api.request("GET", f"/v1/search?q={'a' * 65}", api.admin).status_code == 400
