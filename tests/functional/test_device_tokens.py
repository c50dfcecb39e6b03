"""Device tokens that name their device: one eventually consistent GetItem per lookup, old tokens
through the hash index, and how long a revoked token may live on in another warm process."""

from __future__ import annotations

import base64
import dataclasses
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib import wiring
from chalicelib.config import Settings
from chalicelib.domain.auth import EVENTUAL_READ_LAG_SECONDS, REVOCATION_BOUND_SECONDS, Authenticator
from chalicelib.domain.tokens import SECRET_PATTERN, hash_token, token_device_id
from chalicelib.errors import DeviceDisabledError, UnauthorizedError
from chalicelib.models import DeviceModel
from tests.functional.helpers import T0, dynamodb, error_of, throttled

SECRET = "A" * 43  # the shape of a secret, held by no device


def named(device_id: str, secret: str = SECRET) -> str:
    """A token of the new shape naming `device_id` (with a secret no device holds, by default)."""
    return f"iotd_{base64.urlsafe_b64encode(device_id.encode()).rstrip(b'=').decode()}.{secret}"


@contextmanager
def reads() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB call made in the block, with its arguments."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(operation: str, kwargs: dict[str, Any]) -> None:
        seen.append((operation, kwargs))

    with dynamodb(record):
        yield seen


def give_old_token(device_id: str) -> str:
    """Give a device a token of the shape issued before tokens named their device."""
    token = "iotd_" + secrets.token_urlsafe(32)
    DeviceModel(device_id).update(actions=[DeviceModel.token_hash.set(hash_token(token))])
    return token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def other_process(clock: Clock, ttl: float = 5.0) -> Authenticator:
    """The authenticator of another warm process: its own cache, the same table."""
    repository = wiring.devices()
    return Authenticator(
        repository.find_by_token_hash, frozenset(), ttl, clock=clock, device_lookup=repository.find_credential
    )


def test_a_token_names_its_device_and_works_in_a_header_and_in_a_path(api):
    created = api.create_device("meter", id="meter:42.a_b-c")
    token = created["token"]
    assert token_device_id(token) == "meter:42.a_b-c"
    assert token.startswith(named("meter:42.a_b-c", ""))
    assert SECRET_PATTERN.fullmatch(token.split(".")[1])
    assert re.fullmatch(r"iotd_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)  # nothing a URL encoder escapes
    assert quote(token, safe="") == token
    assert api.post(token, {"ts": T0, "values": {"temp": 1}}).status_code == 200
    answer = api.request("POST", f"/api/v1/{token}/telemetry", None, {"ts": T0 + 1, "values": {"temp": 2}})
    assert answer.status_code == 200, answer.body
    assert [r["value"] for r in api.readings("meter:42.a_b-c")] == [1, 2]


def test_a_longest_id_makes_a_token_well_under_the_limit(api):
    token = api.create_device("long", id="L" * 64)["token"]
    assert len(token) == len("iotd_") + 86 + 1 + 43 <= 512  # 64 characters are 86 in base64url
    assert api.request("POST", f"/api/v1/{token}/telemetry", None, {"temp": 1}).status_code == 200


def test_a_new_token_costs_one_eventually_consistent_get_item_and_no_query(api, device):
    with reads() as seen:
        principal = wiring.authenticator().authenticate(device["token"])
    assert principal.device_id == device["id"]
    ((operation, kwargs),) = seen
    assert operation == "GetItem"
    assert kwargs["Key"] == {"device_id": {"S": device["id"]}}
    assert not kwargs.get("ConsistentRead")


def test_a_posted_request_reads_no_token_index(api, device):
    wiring.authenticator().forget(device["id"])
    with reads() as seen:
        assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert [op for op, _ in seen if op in ("GetItem", "Query", "Scan", "BatchGetItem")] == ["GetItem"]


def test_an_old_format_token_still_works_through_the_hash_index(api, device):
    old = give_old_token(device["id"])
    with reads() as seen:
        assert api.post(old, {"ts": T0, "values": {"temp": 1}}).status_code == 200
    lookups = [(op, kw) for op, kw in seen if op in ("GetItem", "Query")]
    assert [op for op, _ in lookups] == ["Query", "GetItem"]
    assert lookups[0][1]["IndexName"] == "token_hash-index"
    assert lookups[1][1]["ConsistentRead"] is True
    assert (
        api.request("POST", f"/api/v1/{old}/telemetry", None, {"ts": T0 + 1, "values": {"temp": 2}}).status_code == 200
    )


def test_rotating_an_old_format_token_issues_one_that_names_the_device(api, device):
    old = give_old_token(device["id"])
    assert api.post(old, {"ts": T0, "values": {"temp": 1}}).status_code == 200
    new = api.request("POST", f"/v1/devices/{device['id']}/token", api.admin).json_body["token"]
    assert token_device_id(new) == device["id"]
    assert api.post(old, {"ts": T0 + 1, "values": {"temp": 2}}).status_code == 401
    assert api.post(new, {"ts": T0 + 1, "values": {"temp": 2}}).status_code == 200


def test_a_throttled_old_format_lookup_is_503_not_401(api, device, sleeps):
    old = give_old_token(device["id"])

    def throttle_index(operation: str, kwargs: dict[str, Any]) -> None:
        if operation == "Query" and kwargs.get("IndexName") == "token_hash-index":
            raise throttled(operation)

    with dynamodb(throttle_index):
        answer = api.post(old, {"temp": 1})
    assert answer.status_code == 503, answer.body
    assert error_of(answer)["code"] == "storage_unavailable"
    assert api.post(old, {"temp": 1}).status_code == 200


def test_a_rotated_token_works_in_another_process_until_its_ttl_and_no_longer(api, device):
    clock = Clock()
    elsewhere = other_process(clock, ttl=5.0)
    assert elsewhere.authenticate(device["token"]).device_id == device["id"]  # cached there
    new = api.request("POST", f"/v1/devices/{device['id']}/token", api.admin).json_body["token"]
    # This process forgot at once; the other one still has its answer cached.
    assert api.post(device["token"], {"temp": 1}).status_code == 401
    clock.now += 4.9
    assert elsewhere.authenticate(device["token"]).device_id == device["id"]
    clock.now += 0.2
    with pytest.raises(UnauthorizedError, match="unknown token"):
        elsewhere.authenticate(device["token"])
    assert elsewhere.authenticate(new).device_id == device["id"]
    assert elsewhere.revocation_bound_seconds == 5.0 + EVENTUAL_READ_LAG_SECONDS


def test_forget_makes_a_rotation_immediate_in_this_process(api, device):
    clock = Clock()
    auth = other_process(clock)
    assert auth.authenticate(device["token"]).device_id == device["id"]
    repository = wiring.devices()
    repository.set_token_hash(device["id"], hash_token(named(device["id"])), 0)
    auth.forget(device["id"])
    with pytest.raises(UnauthorizedError):
        auth.authenticate(device["token"])


def test_the_default_revocation_bound_is_the_default_ttl_plus_the_read_lag():
    default_ttl = {f.name: f.default for f in dataclasses.fields(Settings)}["auth_cache_ttl_seconds"]
    assert default_ttl + EVENTUAL_READ_LAG_SECONDS == REVOCATION_BOUND_SECONDS


def test_a_deleted_devices_token_is_unknown_and_a_disabled_ones_is_refused(api, device, other_device):
    clock = Clock()
    auth = other_process(clock, ttl=0.0)
    assert api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"disabled": True}).status_code == 200
    with pytest.raises(DeviceDisabledError):
        auth.authenticate(device["token"])
    assert api.request("DELETE", f"/v1/devices/{other_device['id']}", api.admin).status_code == 204
    with pytest.raises(UnauthorizedError, match="unknown token"):
        auth.authenticate(other_device["token"])


def test_an_unknown_device_and_a_wrong_secret_get_the_same_answer(api, device):
    wrong_secret = api.post(named(device["id"]), {"temp": 1})
    unknown_device = api.post(named("no-such-device"), {"temp": 1})
    assert wrong_secret.status_code == unknown_device.status_code == 401
    assert error_of(wrong_secret) == error_of(unknown_device)
    assert error_of(wrong_secret)["code"] == "unauthorized"


def test_a_wrong_secret_for_a_disabled_device_is_unknown_not_disabled(api, device):
    assert api.request("PATCH", f"/v1/devices/{device['id']}", api.admin, {"disabled": True}).status_code == 200
    answer = api.post(named(device["id"]), {"temp": 1})
    assert (answer.status_code, error_of(answer)["code"]) == (401, "unauthorized")


MALFORMED = {
    "bad_id": named("-leading-dash"),
    "id_too_long": named("i" * 65),
    "empty_id": f"iotd_.{SECRET}",
    "id_not_base64url": f"iotd_dGhlcm1vLTE+.{SECRET}",
    "id_not_canonical": f"iotd_ZB.{SECRET}",  # decodes to "d" as "ZA" does
    "id_not_ascii": named("thermo-1").replace("iotd_", "iotd_w4", 1),
    "id_of_impossible_length": f"iotd_ZAAAA.{SECRET}",
    "raw_id": f"iotd_thermo-1.{SECRET}",
    "short_secret": named("thermo-1", "A" * 42),
    "long_secret": named("thermo-1", "A" * 44),
    "secret_with_a_dot": named("thermo-1", "A" * 21 + "." + "A" * 21),
    "empty_secret": named("thermo-1", ""),
    "wrong_prefix": named("thermo-1").replace("iotd_", "iotx_"),
    "admin_prefix": named("thermo-1").replace("iotd_", "iota_"),
    "no_prefix": named("thermo-1").removeprefix("iotd_"),
    "overlong": named("thermo-1") + "A" * 500,
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_token_is_401_without_a_read(api, device, name):
    token = MALFORMED[name]
    with reads() as seen:
        in_header = api.post(token, {"ts": T0, "values": {"temp": 1}})
        in_path = api.request("POST", f"/api/v1/{token}/telemetry", None, {"ts": T0, "values": {"temp": 1}})
    for answer in (in_header, in_path):
        assert answer.status_code == 401, answer.body
        assert error_of(answer)["code"] == "unauthorized"
    assert seen == []
    assert api.readings(device["id"]) == []


def test_a_path_token_quoted_by_its_client_is_unchanged_and_works(api):
    """Clients quote a path segment (device_sim: quote(token, safe="")); an id's ":" must not reach
    the path raw, where it would arrive as %3A (API Gateway does not decode path parameters)."""
    token = api.create_device("meter", id="meter:42")["token"]
    assert quote(token, safe="") == token
    answer = api.request("POST", f"/api/v1/{quote(token, safe='')}/telemetry", None, {"ts": T0, "values": {"t": 1}})
    assert answer.status_code == 200, answer.body
