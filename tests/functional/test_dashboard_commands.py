"""A command sent from the dashboard runs the API's own use case: same validation, same writes."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import boto3
import pytest

from chalicelib import wiring
from chalicelib.clock import now_ms
from chalicelib.web import session as sessions
from tests.functional.helpers import body_of, dynamodb, error_of

WAMP_JSON = "wamp.2.json"
GATEWAY = "abcdef1234.execute-api.us-east-1.amazonaws.com"


@pytest.fixture
def callee(api: Any, device: dict[str, Any]) -> str:
    """The device, connected over WAMP (the app's own $connect and message handling) with `reboot` registered."""
    boto3.client("sqs", region_name="us-east-1").create_queue(QueueName=wiring.bound_settings().call_timeout_queue)
    realtime = wiring.realtime()
    answer = realtime.connect("conn-1", {"Sec-WebSocket-Protocol": WAMP_JSON}, GATEWAY, "api")
    assert answer["statusCode"] == 200, answer
    realtime.message("conn-1", json.dumps([1, "iotcloud", {"roles": {"callee": {}}, "authmethods": ["ticket"]}]))
    realtime.message("conn-1", json.dumps([5, device["token"], {}]))
    realtime.message("conn-1", json.dumps([64, 1, {}, f"iotcloud.device.{device['id']}.reboot"]))
    return "conn-1"


def dashboard_post(api: Any, path: str, form: dict[str, str]) -> Any:
    secret = sessions.secret()
    session, cookie = sessions.new_session(secret, now_ms(), 3600)
    body = urllib.parse.urlencode({**form, "csrf": sessions.csrf_token(secret, session)}).encode()
    headers = {"Cookie": f"{sessions.SESSION_COOKIE}={cookie}"}
    return api.request("POST", path, None, raw=body, content_type="application/x-www-form-urlencoded", headers=headers)


def test_the_dashboard_sends_a_command_with_the_apis_writes_and_no_failing_one(api, device, callee):
    with dynamodb() as by_api:
        sent = api.request("POST", f"/v1/devices/{device['id']}/commands", api.admin, {"procedure": "reboot"})
    assert sent.status_code == 202 and body_of(sent)["status"] == "invoked"

    with dynamodb() as by_dashboard:
        answer = dashboard_post(api, f"/dashboard/devices/{device['id']}/commands", {"procedure": "reboot"})
    assert answer.status_code == 303, answer.body
    command_id = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)["command"][0]
    command = wiring.realtime_store().get_command(command_id)
    assert command is not None and command["status"] == "invoked"
    # The router marks the command invoked; a second mark would be one more (always failing) UpdateItem.
    assert by_dashboard == by_api


def test_the_dashboard_validates_a_command_as_the_api_does(api, device):
    path = f"/dashboard/devices/{device['id']}/commands"
    answer = dashboard_post(api, path, {"procedure": "not a uri", "timeout": "9999"})
    assert answer.status_code == 422
    via_api = api.request(
        "POST", f"/v1/devices/{device['id']}/commands", api.admin, {"procedure": "not a uri", "timeout": 9999}
    )
    assert via_api.status_code == 422
    details = error_of(via_api)["details"]
    assert sorted((d["code"], d["field"]) for d in details) == [
        ("invalid_field", "procedure"),
        ("invalid_field", "timeout"),
    ]
    assert all("metric" not in d for d in details)  # `metric` names a reading's metric, never a body's member
    page = answer.body.decode()
    assert "<strong>procedure</strong>: procedure: a WAMP URI component" in page
    assert "<strong>timeout</strong>: timeout: seconds, 0 &lt; timeout &lt;= 900" in page


def test_the_pages_forms_state_the_rules_the_server_checks(api, device, monkeypatch):
    from chalicelib import config
    from chalicelib.domain.commands import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S
    from chalicelib.domain.rules import MAX_ID_CHARS

    monkeypatch.setenv("PUBLIC_WS_URL", "wss://ws.example.test/test")  # the command form needs a realtime stage
    config.settings.cache_clear()
    try:
        secret = sessions.secret()
        _, cookie = sessions.new_session(secret, now_ms(), 3600)
        headers = {"Cookie": f"{sessions.SESSION_COOKIE}={cookie}"}
        page = api.request("GET", f"/dashboard/devices/{device['id']}", None, headers=headers)
        assert page.status_code == 200, page.body
        assert f'max="{MAX_TIMEOUT_S}" value="{DEFAULT_TIMEOUT_S}"' in page.body.decode()
        alerts = api.request("GET", "/dashboard/alerts", None, headers=headers)
        assert f'name="device" value="" maxlength="{MAX_ID_CHARS}"' in alerts.body.decode()
    finally:
        config.settings.cache_clear()  # the next reader sees the environment without the URL
