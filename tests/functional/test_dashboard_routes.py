"""The dashboard's routes through the route helper: sessions, error pages and their JSON."""

from __future__ import annotations

from tests.functional.helpers import error_of


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
