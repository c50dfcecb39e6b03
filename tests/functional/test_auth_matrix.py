"""Who may call what: every route against every kind of caller, and token lifecycle."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

import pytest

from chalicelib.models import DeviceModel, ReadingChunkModel
from tests.functional.helpers import T0, body_of, error_of


class Route(NamedTuple):
    method: str
    path: str  # {id}: the target device
    kind: str  # "admin": admin only; "read": admin or the device itself; "ingest": a device posts as itself
    body: Any
    ok: int


ROUTES = {
    "create_device": Route("POST", "/v1/devices", "admin", {"name": "new", "id": "new-device"}, 201),
    "list_devices": Route("GET", "/v1/devices", "admin", None, 200),
    "get_device": Route("GET", "/v1/devices/{id}", "admin", None, 200),
    "patch_device": Route("PATCH", "/v1/devices/{id}", "admin", {"name": "renamed"}, 200),
    "delete_device": Route("DELETE", "/v1/devices/{id}", "admin", None, 204),
    "rotate_token": Route("POST", "/v1/devices/{id}/token", "admin", None, 200),
    "post_telemetry": Route("POST", "/v1/telemetry", "ingest", {"ts": T0, "values": {"temp": 1}}, 200),
    "get_telemetry": Route("GET", "/v1/devices/{id}/telemetry", "read", None, 200),
    "get_state": Route("GET", "/v1/devices/{id}/state", "read", None, 200),
}

MALFORMED_HEADERS = {
    "basic_scheme": "Basic dXNlcjpwYXNz",
    "scheme_only": "Bearer",
    "scheme_and_space": "Bearer   ",
    "no_scheme": "iotd_abcdef",
    "token_scheme": "Token iotd_abcdef",
    "token_too_long": "Bearer " + "x" * 600,
}

CALLERS = ["none", "unknown", "malformed", "own_device", "other_device", "disabled", "admin"]


def expected(route: Route, caller: str) -> tuple[int, str | None]:
    """(status, error code) the matrix promises."""
    if caller in ("none", "unknown", "malformed"):
        return 401, "unauthorized"
    if caller == "disabled":
        return 403, "device_disabled"
    if caller == "admin":
        return (403, "forbidden") if route.kind == "ingest" else (route.ok, None)
    if route.kind == "admin":
        return 403, "forbidden"
    if route.kind == "read" and caller == "other_device":
        return 403, "forbidden"
    return route.ok, None


def tables_snapshot() -> tuple[list[str], int]:
    devices = sorted(json.dumps(item.serialize(), sort_keys=True, default=str) for item in DeviceModel.scan())
    return devices, sum(1 for _ in ReadingChunkModel.scan())


def call(api: Any, route: Route, device_id: str, headers: dict[str, str]) -> Any:
    return api.request(route.method, route.path.format(id=device_id), None, route.body, headers=headers)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_route_by_caller(api, device, other_device, name, caller):
    route = ROUTES[name]
    if caller == "disabled":
        patched = api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"disabled": True})
        assert patched.status_code == 200 and body_of(patched)["disabled"] is True
    token = {
        "none": None,
        "unknown": "iotd_not-a-token-of-anyone",
        "malformed": None,
        "own_device": device["token"],
        "other_device": other_device["token"],
        "disabled": device["token"],
        "admin": api.admin,
    }[caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    before = tables_snapshot()
    status, code = expected(route, caller)

    if caller == "malformed":
        for label, header in MALFORMED_HEADERS.items():
            answer = call(api, route, device["id"], {"Authorization": header})
            assert answer.status_code == 401, (label, answer.body)
            assert error_of(answer)["code"] == "unauthorized"
        assert tables_snapshot() == before
        return

    answer = call(api, route, device["id"], headers)
    assert answer.status_code == status, answer.body
    if code is not None:
        assert error_of(answer)["code"] == code
        if status == 401:
            assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert tables_snapshot() == before, "a refused request changed the tables"


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("own_device", 200, None),
        ("unknown", 401, "unauthorized"),
        ("too_long", 401, "unauthorized"),
        ("admin", 403, "forbidden"),
        ("disabled", 403, "device_disabled"),
    ],
)
def test_thingsboard_path_by_token(api, device, caller, status, code):
    if caller == "disabled":
        assert api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"disabled": True}).status_code == 200
    token = {
        "own_device": device["token"],
        "unknown": "iotd_not-a-token-of-anyone",
        "too_long": "x" * 600,
        "admin": api.admin,
        "disabled": device["token"],
    }[caller]
    answer = api.request("POST", f"/api/v1/{token}/telemetry", None, {"ts": T0, "values": {"temp": 1}})
    assert answer.status_code == status, answer.body
    if code is not None:
        assert error_of(answer)["code"] == code
        assert api.readings(device["id"]) == []
    else:
        assert api.readings(device["id"]) == [{"metric": "temp", "unit": "", "ts": T0, "value": 1}]


def test_thingsboard_path_ignores_the_authorization_header(api, device):
    answer = api.request("POST", "/api/v1/iotd_unknown/telemetry", device["token"], {"ts": T0, "values": {"temp": 1}})
    assert answer.status_code == 401
    assert api.readings(device["id"]) == []


def test_a_device_reads_only_its_own_data(api, device, other_device):
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert api.readings(device["id"], token=device["token"]) == [{"metric": "temp", "unit": "", "ts": T0, "value": 1}]
    answer = api.request("GET", f"/v1/devices/{device['id']}/telemetry", other_device["token"])
    assert answer.status_code == 403
    assert api.readings(other_device["id"], token=other_device["token"]) == []


def test_a_device_token_reading_an_unknown_device_is_forbidden_not_not_found(api, device):
    # A device must not learn which other ids exist.
    for path in ("/v1/devices/no-such-device/telemetry", "/v1/devices/no-such-device/state"):
        answer = api.request("GET", path, device["token"])
        assert answer.status_code == 403
        assert error_of(answer)["code"] == "forbidden"


def test_disabling_is_immediate_and_reversible(api, device):
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"disabled": True}).status_code == 200
    answer = api.post(device["token"], {"ts": T0 + 1000, "values": {"temp": 2}})
    assert answer.status_code == 403
    assert error_of(answer)["code"] == "device_disabled"
    for path in ("telemetry", "state"):
        answer = api.request("GET", f"/v1/devices/{device['id']}/{path}", device["token"])
        assert (answer.status_code, error_of(answer)["code"]) == (403, "device_disabled")
    # The admin still reads a disabled device's data.
    assert api.readings(device["id"]) == [{"metric": "temp", "unit": "", "ts": T0, "value": 1}]
    assert api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"disabled": False}).status_code == 200
    assert api.post(device["token"], {"ts": T0 + 1000, "values": {"temp": 2}}).status_code == 200
    assert len(api.readings(device["id"])) == 2


def test_rotating_the_token_retires_the_old_one_at_once(api, device):
    old = device["token"]
    assert api.post(old, {"ts": T0, "values": {"temp": 1}}).status_code == 200  # cached as valid
    answer = api.request("POST", f"/v1/devices/{device['id']}/token", api.admin)
    assert answer.status_code == 200
    rotated = body_of(answer)
    assert rotated["id"] == device["id"]
    new = rotated["token"]
    assert new != old
    assert api.request("POST", f"/api/v1/{old}/telemetry", None, {"temp": 1}).status_code == 401
    answer = api.post(old, {"ts": T0 + 1000, "values": {"temp": 2}})
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthorized"
    assert api.post(new, {"ts": T0 + 1000, "values": {"temp": 2}}).status_code == 200
    assert (
        api.request("POST", f"/api/v1/{new}/telemetry", None, {"ts": T0 + 2000, "values": {"temp": 3}}).status_code
        == 200
    )
    assert [r["value"] for r in api.readings(device["id"], token=new)] == [1, 2, 3]


def test_rotating_the_token_of_an_unknown_device_is_not_found(api):
    answer = api.request("POST", "/v1/devices/no-such-device/token", api.admin)
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "device_not_found"


def test_deleting_a_device_retires_its_token(api, device, other_device):
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert api.request("DELETE", f"/v1/devices/{device['id']}", api.admin).status_code == 204
    answer = api.post(device["token"], {"ts": T0, "values": {"temp": 2}})
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthorized"
    assert api.request("POST", f"/api/v1/{device['token']}/telemetry", None, {"temp": 1}).status_code == 401
    assert api.request("GET", f"/v1/devices/{device['id']}/state", device["token"]).status_code == 401
    # Others are unaffected.
    assert api.post(other_device["token"], {"ts": T0, "values": {"temp": 2}}).status_code == 200


def test_tokens_are_stored_only_as_sha256_hashes(api, device, other_device):
    rotated = body_of(api.request("POST", f"/v1/devices/{other_device['id']}/token", api.admin))["token"]
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert api.post(rotated, {"ts": T0, "values": {"temp": 1}}).status_code == 200
    tokens = [device["token"], other_device["token"], rotated, api.admin]

    connection = DeviceModel._get_connection().connection
    for table in (DeviceModel.Meta.table_name, ReadingChunkModel.Meta.table_name):
        items = connection.scan(table)["Items"]
        assert items
        dumped = json.dumps(items, default=str)
        for token in tokens:
            assert token not in dumped
            assert token.split("_", 1)[1] not in dumped  # not even without its prefix

    hashes = {item.device_id: item.token_hash for item in DeviceModel.scan()}
    assert hashes == {
        device["id"]: hashlib.sha256(device["token"].encode()).hexdigest(),
        other_device["id"]: hashlib.sha256(rotated.encode()).hexdigest(),
    }


def test_tokens_are_never_shown_after_creation(api, device):
    for answer in (
        api.request("GET", f"/v1/devices/{device['id']}", api.admin),
        api.request("GET", "/v1/devices", api.admin),
        api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"name": "x"}),
        api.request("GET", f"/v1/devices/{device['id']}/state", api.admin),
    ):
        assert answer.status_code == 200
        assert device["token"] not in answer.body.decode()
        doc = body_of(answer)
        for shown in doc.get("devices", [doc]):
            assert "token" not in shown and "token_hash" not in shown


def test_the_admin_is_refused_403_on_every_device_only_route(api, device, other_device):
    """Device-only routes refuse a caller of the wrong kind one way, before any lookup (RELIABILITY finding 2)."""
    from app import app
    from chalicelib.api.routing import Auth, spec_of

    sent = api.request("POST", f"/v1/devices/{device['id']}/commands", api.admin, {"procedure": "reboot"})
    assert sent.status_code == 202, sent.body
    command_id = body_of(sent)["id"]
    device_only = sorted(
        (method, path)
        for path, entries in app.routes.items()
        for method, entry in entries.items()
        if (spec := spec_of(entry.view_function)) is not None and spec.auth is Auth.DEVICE
    )
    assert device_only == [
        ("GET", "/v1/commands"),
        ("POST", "/api/v1/{token}/telemetry"),
        ("POST", "/v1/commands/{command_id}/result"),
        ("POST", "/v1/telemetry"),
    ]
    for method, path in device_only:
        in_path = "{token}" in path
        url = path.replace("{command_id}", command_id).replace("{token}", api.admin)
        answer = api.request(method, url, None if in_path else api.admin, {"result": 1})
        assert (answer.status_code, error_of(answer)["code"]) == (403, "forbidden"), (path, answer.body)

    result = f"/v1/commands/{command_id}/result"
    # Another device is of the right kind: the command is not one of its own, and stays unseen.
    assert error_of(api.request("POST", result, other_device["token"], {"result": 1}))["code"] == "command_not_found"
    assert api.request("POST", result, device["token"], {"result": 1}).status_code == 200


def test_every_route_is_declared_with_the_route_helper():
    """Auth, content types and error answers come from one place: no route registered around it."""
    from app import app
    from chalicelib.api.routing import spec_of

    entries = [(method, path, entry) for path, by_method in app.routes.items() for method, entry in by_method.items()]
    assert entries
    for method, path, entry in entries:
        spec = spec_of(entry.view_function)
        assert spec is not None, f"{method} {path} is not declared with api.routing.route"
        assert (spec.method, spec.path) == (method, path)
        assert entry.content_types == ["*/*"]
