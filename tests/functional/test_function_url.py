"""The Function URL door: the `ingest` function given Function URL events (payload format 2.0).

Every payload shape goes through it in test_ingest_shapes.py; here: what is particular to the
door (its routing, its event and answer shapes) and that its errors and idempotency are the
REST API's.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chalicelib.api.function_url import DOOR_ROUTES, rest_event, url_response
from chalicelib.errors import MethodNotAllowedError, RouteNotFoundError
from devstack.function_url import function_url_event
from tests.functional.helpers import error_of, state_of

RECORD = {"ts": 1_764_028_800_000, "values": {"temperature": 21.5, "humidity": 40}}


def test_the_door_serves_exactly_the_ingestion_routes() -> None:
    assert sorted((r.spec.method, r.spec.path) for r in DOOR_ROUTES) == [
        ("POST", "/api/v1/{token}/telemetry"),
        ("POST", "/v1/telemetry"),
    ]


def test_a_posted_record_is_stored_as_through_the_rest_api(api: Any, device: dict[str, Any]) -> None:
    answer = api.door("POST", "/v1/telemetry", device["token"], RECORD)
    assert answer.status_code == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body) == {"accepted": 2, "records": 1, "ignored": 0}
    readings = api.readings(device["id"], start=RECORD["ts"], end=RECORD["ts"] + 1)
    assert sorted((r["metric"], r["value"]) for r in readings) == [("humidity", 40), ("temperature", 21.5)]
    assert {r["metric"] for r in state_of(api, device["id"])["latest"]} == {"humidity", "temperature"}


def test_the_thingsboard_path_takes_the_token_from_the_path(api: Any, device: dict[str, Any]) -> None:
    answer = api.door("POST", f"/api/v1/{device['token']}/telemetry", None, {"temperature": 20})
    assert answer.status_code == 200, answer.body
    assert json.loads(answer.body)["accepted"] == 1


def test_an_unknown_path_is_404_not_found(api: Any, device: dict[str, Any]) -> None:
    for path in ("/", "/v1/devices", "/v1/telemetry/", "/api/v1/telemetry", "/api/v1/a/b/telemetry"):
        answer = api.door("POST", path, device["token"], RECORD)
        assert answer.status_code == 404, path
        assert error_of(answer)["code"] == "not_found"


def test_another_method_on_an_ingestion_path_is_405_with_allow(api: Any, device: dict[str, Any]) -> None:
    answer = api.door("GET", "/v1/telemetry", device["token"])
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert error_of(answer)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [(None, 401, "unauthorized"), ("iotd_nobody", 401, "unauthorized"), ("admin", 403, "forbidden")],
)
def test_auth_errors_are_the_rest_apis(api: Any, token: str | None, status: int, code: str) -> None:
    answer = api.door("POST", "/v1/telemetry", api.admin if token == "admin" else token, RECORD)
    assert answer.status_code == status
    assert error_of(answer)["code"] == code
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="iotcloud"'


def test_a_rejected_body_stores_nothing(api: Any, device: dict[str, Any]) -> None:
    bad = {"ts": RECORD["ts"], "values": {"temperature": "x" * 5000}}
    answer = api.door("POST", "/v1/telemetry", device["token"], [RECORD, bad])
    assert answer.status_code == 422, answer.body
    assert error_of(answer)["code"] == "validation_failed"
    assert api.readings(device["id"]) == []


def test_an_idempotent_retry_through_either_door_stores_once(api: Any, device: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "retry-1"}
    first = api.door("POST", "/v1/telemetry", device["token"], RECORD, headers=key)
    again = api.post(device["token"], RECORD, headers=key)
    assert first.status_code == again.status_code == 200
    assert len(api.readings(device["id"])) == 2


def test_a_binary_body_arrives_base64_encoded_and_is_decoded() -> None:
    event = function_url_event("POST", "/v1/telemetry", "", {"Content-Type": "application/cbor"}, b"\x00\xff")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xff"
    rest = rest_event(event)
    assert rest["isBase64Encoded"] is True and rest["body"] == event["body"]


def test_the_rest_event_carries_headers_query_cookies_and_decoded_path_parameters() -> None:
    event = function_url_event(
        "post",
        "/api/v1/tok%2Ben/telemetry",
        "a=1&a=2&b=",
        {"Content-Type": "application/json", "X-Twice": "one", "x-twice": "two", "Cookie": "s=1; t=2"},
        b"{}",
    )
    assert event["headers"]["x-twice"] == "one,two"  # the URL joins repeated headers
    assert event["cookies"] == ["s=1", "t=2"]
    rest = rest_event(event)
    assert rest["httpMethod"] == "POST"
    assert rest["requestContext"]["resourcePath"] == "/api/v1/{token}/telemetry"
    assert rest["pathParameters"] == {"token": "tok+en"}
    assert rest["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert rest["headers"]["cookie"] == "s=1; t=2"
    assert rest["body"] == "{}" and rest["isBase64Encoded"] is False


def test_routing_errors_name_the_path() -> None:
    with pytest.raises(RouteNotFoundError):
        rest_event(function_url_event("POST", "/nope", "", {}, b""))
    with pytest.raises(MethodNotAllowedError) as caught:
        rest_event(function_url_event("PUT", "/v1/telemetry", "", {}, b""))
    assert caught.value.allow == "POST"


def test_multi_value_headers_are_folded_into_the_urls_answer_format() -> None:
    rest = {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Vary": ["a", "b"], "Set-Cookie": ["x=1", "y=2"]},
        "body": "{}",
    }
    assert url_response(rest) == {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "Vary": "a,b"},
        "cookies": ["x=1", "y=2"],
        "body": "{}",
        "isBase64Encoded": False,
    }
