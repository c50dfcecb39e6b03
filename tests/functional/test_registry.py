"""The device registry: create, read, change, delete and list devices."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.functional.helpers import T0, body_of, error_of, now_ms

DEVICE_FIELDS = {"id", "name", "type", "attributes", "disabled", "created_at", "updated_at", "last_seen"}


def get_device(api: Any, device_id: str) -> Any:
    return api.request("GET", f"/v1/devices/{device_id}", api.admin)


def list_page(api: Any, **params: Any) -> Any:
    qs = "&".join(f"{k}={v}" for k, v in params.items())
    return api.request("GET", f"/v1/devices?{qs}", api.admin)


# --------------------------------------------------------------------------- create


def test_create_answers_201_with_the_token_shown_once(api):
    start = now_ms()
    answer = api.request(
        "POST", "/v1/devices", api.admin, {"name": "  Boiler room  ", "type": "thermostat", "attributes": {"floor": 2}}
    )
    end = now_ms()
    assert answer.status_code == 201
    created = body_of(answer)
    assert set(created) == DEVICE_FIELDS | {"token"}
    assert created["id"].startswith("dev-")
    assert created["name"] == "Boiler room"
    assert created["type"] == "thermostat"
    assert created["attributes"] == {"floor": 2}
    assert created["disabled"] is False
    assert start <= created["created_at"] == created["updated_at"] <= end
    assert created["last_seen"] is None
    assert created["token"].startswith("iotd_") and len(created["token"]) > 40

    shown = body_of(get_device(api, created["id"]))
    assert shown == {k: v for k, v in created.items() if k != "token"}


def test_create_with_a_client_chosen_id(api):
    created = api.create_device("meter", id="meter:42.a_b-c")
    assert created["id"] == "meter:42.a_b-c"
    assert created["type"] == "generic"
    assert created["attributes"] == {}
    assert body_of(get_device(api, "meter:42.a_b-c"))["name"] == "meter"


def test_created_ids_are_unique(api):
    ids = {api.create_device(f"d{i}")["id"] for i in range(5)}
    assert len(ids) == 5


def test_attributes_keep_their_types(api):
    attributes = {"floor": 2, "ratio": 0.5, "indoor": True, "room": "kitchen", "serial": 10**37, "eps": 1e-100}
    created = api.create_device("x", attributes=attributes)
    assert created["attributes"] == attributes
    shown = body_of(get_device(api, created["id"]))["attributes"]
    assert shown == attributes
    assert type(shown["indoor"]) is bool and type(shown["floor"]) is int


def test_duplicate_id_is_a_conflict_and_keeps_the_first_device(api):
    first = api.create_device("first", id="twin")
    answer = api.request("POST", "/v1/devices", api.admin, {"name": "second", "id": "twin"})
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "device_exists"
    assert body_of(get_device(api, "twin"))["name"] == "first"
    assert api.post(first["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200


def test_a_create_retried_after_its_answer_was_lost_recovers_with_a_rotated_token(api):
    """The retry protocol of createDevice (OpenAPI): a client-chosen id, 409 on the retry, then a
    token rotation; one device, and the token the client ends up with is the one in force."""
    body = {"id": "sim-probe-00003-0a1b2c3d", "name": "probe 3", "type": "probe", "attributes": {"site": "x"}}
    lost = body_of(api.request("POST", "/v1/devices", api.admin, body))["token"]  # the answer the client never saw
    retry = api.request("POST", "/v1/devices", api.admin, body)
    assert retry.status_code == 409 and error_of(retry)["code"] == "device_exists"
    shown = body_of(get_device(api, body["id"]))
    assert {k: shown[k] for k in ("name", "type", "attributes")} == {k: body[k] for k in ("name", "type", "attributes")}
    token = body_of(api.request("POST", f"/v1/devices/{body['id']}/token", api.admin))["token"]
    confirm = f"/v1/devices/{body['id']}/telemetry?limit=1"  # the read the simulator confirms a token with
    assert api.request("GET", confirm, token).status_code == 200
    assert api.request("GET", confirm, lost).status_code == 401
    listed = body_of(api.request("GET", "/v1/devices", api.admin))["devices"]
    assert [d["id"] for d in listed] == [body["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 5}, "name"),
        ({"name": "n" * 129}, "name"),
        ({"name": "x", "id": "-leading-dash"}, "id"),
        ({"name": "x", "id": "has space"}, "id"),
        ({"name": "x", "id": "i" * 65}, "id"),
        ({"name": "x", "id": 7}, "id"),
        ({"name": "x", "type": "two words"}, "type"),
        ({"name": "x", "attributes": ["a"]}, "attributes"),
        ({"name": "x", "attributes": {"nested": {"a": 1}}}, "attributes"),
        ({"name": "x", "attributes": {"big": "v" * 257}}, "attributes"),
        ({"name": "x", "attributes": {"huge": 1e200}}, "attributes"),  # beyond DynamoDB's number range
        ({"name": "x", "attributes": {"tiny": 1e-200}}, "attributes"),
        ({"name": "x", "attributes": {"long": 2**140}}, "attributes"),  # more than 38 digits
        ({"name": "x", "disabled": True}, "disabled"),
        ({"name": "x", "token": "iotd_mine"}, "token"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, dict) else v,
)
def test_create_with_bad_fields_is_422(api, body, field):
    answer = api.request("POST", "/v1/devices", api.admin, body)
    assert answer.status_code == 422, answer.body
    error = error_of(answer)
    assert error["code"] == "validation_failed"
    assert field in [d.get("field") for d in error["details"]]
    assert body_of(list_page(api))["devices"] == []


def test_create_lists_every_bad_field(api):
    answer = api.request("POST", "/v1/devices", api.admin, {"id": "-x", "name": "", "type": "a b", "extra": 1})
    assert answer.status_code == 422
    assert sorted(d["field"] for d in error_of(answer)["details"]) == ["extra", "id", "name", "type"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"name": ', 400, "malformed_payload"),
        (b"", 400, "malformed_payload"),
        (b'["name"]', 422, "validation_failed"),
        (b"null", 422, "validation_failed"),
    ],
)
def test_create_with_a_bad_body(api, raw, status, code):
    answer = api.request("POST", "/v1/devices", api.admin, raw=raw)
    assert answer.status_code == status
    assert error_of(answer)["code"] == code


# --------------------------------------------------------------------------- get, patch, delete


@pytest.mark.parametrize("device_id", ["no-such-device", "bad id", "-x"])
def test_unknown_device_is_404(api, device_id):
    for method, path, body in (
        ("GET", f"/v1/devices/{device_id}", None),
        ("PATCH", f"/v1/devices/{device_id}", {"name": "x"}),
        ("DELETE", f"/v1/devices/{device_id}", None),
        ("POST", f"/v1/devices/{device_id}/token", None),
        ("GET", f"/v1/devices/{device_id}/telemetry", None),
        ("GET", f"/v1/devices/{device_id}/state", None),
    ):
        answer = api.request(method, path, api.admin, body)
        assert answer.status_code == 404, (method, path, answer.body)
        assert error_of(answer)["code"] == "device_not_found"
    assert body_of(list_page(api))["devices"] == []  # PATCH did not create it


def test_patch_changes_only_what_it_names(api, device):
    before = body_of(get_device(api, device["id"]))
    answer = api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"name": "Kitchen", "attributes": {"a": 1}})
    assert answer.status_code == 200
    after = body_of(answer)
    assert set(after) == DEVICE_FIELDS
    assert after["name"] == "Kitchen"
    assert after["attributes"] == {"a": 1}
    assert after["type"] == before["type"] == "thermometer"
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] >= before["updated_at"]
    assert body_of(get_device(api, device["id"])) == after

    answer = api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"type": "hygrometer", "disabled": True})
    assert body_of(answer)["name"] == "Kitchen"
    assert body_of(answer)["type"] == "hygrometer"
    assert body_of(answer)["disabled"] is True


def test_patch_with_an_empty_object_changes_nothing_but_updated_at(api, device):
    before = body_of(get_device(api, device["id"]))
    answer = api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {})
    assert answer.status_code == 200
    after = body_of(answer)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "other"}, "id"),
        ({"name": ""}, "name"),
        ({"disabled": "yes"}, "disabled"),
        ({"attributes": None}, None),
        ({"attributes": "x"}, "attributes"),
        ({"token": "x"}, "token"),
    ],
)
def test_patch_with_bad_fields_is_422_and_changes_nothing(api, device, body, field):
    before = body_of(get_device(api, device["id"]))
    answer = api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, body)
    if field is None:  # null means "not given"
        assert answer.status_code == 200
        return
    assert answer.status_code == 422, answer.body
    assert field in [d.get("field") for d in error_of(answer)["details"]]
    assert body_of(get_device(api, device["id"])) == before


def test_delete_removes_the_device(api, device, other_device):
    assert api.request("DELETE", f"/v1/devices/{device['id']}", api.admin).status_code == 204
    assert get_device(api, device["id"]).status_code == 404
    again = api.request("DELETE", f"/v1/devices/{device['id']}", api.admin)
    assert (again.status_code, error_of(again)["code"]) == (404, "device_not_found")
    assert [d["id"] for d in body_of(list_page(api))["devices"]] == [other_device["id"]]
    # The id is free again.
    assert api.create_device("reborn", id=device["id"])["name"] == "reborn"


def test_get_device_shows_last_seen(api, device):
    start = now_ms()
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    shown = body_of(get_device(api, device["id"]))
    assert shown["last_seen"] is not None and shown["last_seen"] >= start


# --------------------------------------------------------------------------- list


def test_list_pages_through_every_device_once_in_id_order(api):
    ids = [f"dev-{i:02d}" for i in range(25)]
    for device_id in random.Random(7).sample(ids, len(ids)):
        api.create_device(f"name of {device_id}", id=device_id)
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        answer = list_page(api, limit=7, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.body
        doc = body_of(answer)
        assert set(doc) == {"devices", "next_cursor"}
        assert len(doc["devices"]) <= 7
        for shown in doc["devices"]:
            assert shown["name"] == f"name of {shown['id']}"
        seen += [d["id"] for d in doc["devices"]]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == ids
    assert pages in (4, 5)  # 7+7+7+4 (a final empty page is allowed)


def test_list_shows_the_registry_fields_of_each_device(api, device):
    listed = body_of(list_page(api))["devices"]
    shown = body_of(get_device(api, device["id"]))
    assert len(listed) == 1
    registry = ("id", "name", "type", "attributes", "disabled", "created_at")
    assert {k: listed[0][k] for k in registry} == {k: shown[k] for k in registry}


def test_list_default_page_holds_everything_small(api):
    for i in range(3):
        api.create_device(f"d{i}", id=f"d{i}")
    doc = body_of(list_page(api))
    assert [d["id"] for d in doc["devices"]] == ["d0", "d1", "d2"]
    assert doc["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{"cursor": "-not-a-cursor"}, {"cursor": "a%20b"}, {"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"limit": -1}],
    ids=str,
)
def test_list_with_a_bad_parameter_is_400(api, params):
    answer = list_page(api, **params)
    assert answer.status_code == 400, answer.body
    assert error_of(answer)["code"] == "invalid_parameter"
