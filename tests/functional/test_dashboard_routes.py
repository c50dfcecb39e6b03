"""The dashboard's routes through the route helper: sessions, error pages and their JSON."""

from __future__ import annotations

from tests.functional.helpers import body_of, error_of
from tests.functional.test_openapi import dashboard_session


def test_a_page_without_a_session_redirects_to_sign_in(api, device):
    answer = api.request("GET", f"/dashboard/devices/{device['id']}")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/dashboard/sign-in?next=")


def test_the_pages_json_without_a_session_is_401_json(api):
    answer = api.request("GET", "/dashboard/data/states?ids=a")
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthorized"
    assert answer.headers["Content-Type"] == "application/json"


def test_a_missing_file_is_a_readable_404_page(api):
    answer = api.request("GET", "/dashboard/js/nope.js")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<code>not_found</code> (HTTP 404)" in answer.body.decode()


def test_the_sign_in_page_needs_no_session(api):
    answer = api.request("GET", "/dashboard/sign-in")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")


def test_an_id_that_cannot_exist_is_the_pages_own_404_before_the_view_runs(api):
    page, csrf = dashboard_session()
    for method, path in (
        ("GET", "/dashboard/devices/no%20such"),
        ("GET", "/dashboard/reports/nope"),
        ("GET", "/dashboard/reports/nope/chart"),
        ("POST", "/dashboard/alerts/nope/ack"),
        ("POST", "/dashboard/devices/no%20such/commands"),
    ):
        raw = f"csrf={csrf}".encode() if method == "POST" else None
        answer = api.request(method, path, raw=raw, content_type="application/x-www-form-urlencoded", headers=page)
        assert answer.status_code == 404, path
        assert answer.headers["Content-Type"].startswith("text/html"), path
    data = api.request("GET", "/dashboard/data/devices/no%20such/telemetry", headers=page)
    assert data.status_code == 404 and error_of(data)["code"] == "device_not_found"


def test_every_dashboard_operation_is_generated_from_its_route(api):
    document = body_of(api.request("GET", "/v1/openapi.json"))
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        if path.startswith("/dashboard")
        for method, op in item.items()
    ]
    assert len(operations) == 18
    public = {("/dashboard/sign-in", "get"), ("/dashboard/sign-in", "post"), ("/dashboard/js/{name}", "get"),
              ("/dashboard/css/{name}", "get")}  # fmt: skip
    for path, method, op in operations:
        assert op["tags"] == ["dashboard"] and op["summary"].startswith("Dashboard: "), (path, method)
        assert op["security"] == ([] if (path, method) in public else [{"dashboardSession": []}]), (path, method)
    fleet = document["paths"]["/dashboard"]["get"]
    assert [p["name"] for p in fleet["parameters"]] == ["q", "limit", "cursor"]
    assert fleet["responses"]["303"]["headers"] == {"Location": {"schema": {"type": "string"}}}
    form = document["paths"]["/dashboard/devices/{device_id}/commands"]["post"]["requestBody"]["content"]
    assert set(form["application/x-www-form-urlencoded"]["schema"]["properties"]) == {
        "csrf", "procedure", "args", "kwargs", "timeout"
    }  # fmt: skip
