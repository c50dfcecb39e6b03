"""Device tokens' shape, and how the Authenticator reads them (a fake table; the real one:
tests/functional/test_device_tokens.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest

from chalicelib.domain.auth import Authenticator
from chalicelib.domain.tokens import (
    MalformedTokenError,
    hash_token,
    new_admin_token,
    new_device_token,
    token_device_id,
)
from chalicelib.errors import DeviceDisabledError, UnauthorizedError


@pytest.mark.parametrize("device_id", ["d", "dev-1", "meter:42.a_b-c", "a.b.c", "x" * 64, "9_:.-"])
def test_a_token_gives_back_the_id_it_was_issued_for(device_id: str) -> None:
    token = new_device_token(device_id)
    assert token_device_id(token) == device_id
    assert len(token) <= 135
    assert quote(token, safe="") == token  # the same in a path, a header and a query


@pytest.mark.parametrize("device_id", ["", "-x", "has space", "x" * 65, "a/b", "a~b", "new\n"])
def test_no_token_is_issued_for_what_is_not_a_device_id(device_id: str) -> None:
    with pytest.raises(ValueError):
        new_device_token(device_id)


def test_two_tokens_of_a_device_differ() -> None:
    assert new_device_token("d") != new_device_token("d")


@pytest.mark.parametrize("token", ["iotd_" + "A" * 43, "iotd_abcdef", new_admin_token(), "anything"])
def test_tokens_that_name_no_device(token: str) -> None:
    assert token_device_id(token) is None


D = "ZA"  # "d" in base64url


@pytest.mark.parametrize(
    "token",
    [
        "iotd_." + "A" * 43,
        "iotd_LXg." + "A" * 43,  # "-x"
        "iotd_eAo." + "A" * 43,  # "x\n"
        "iotd_ZB." + "A" * 43,  # "d", not canonically
        "iotd_Z." + "A" * 43,
        "iotd_w4c." + "A" * 43,  # not ASCII
        "iotd_d+." + "A" * 43,
        f"iotd_{D}." + "A" * 42,
        f"iotd_{D}." + "A" * 42 + "\n",
        f"iotd_{D}." + "A" * 42 + "=",
        f"iotd_{D}.",
        f"iotd_{D}.{'A' * 21}.{'A' * 21}",
        "iotd_" + "x" * 500 + "." + "A" * 43,
        "iotd_d." + "A" * 43,  # an id in clear
    ],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        token_device_id(token)


@dataclass(frozen=True)
class Found:
    device_id: str
    token_hash: str
    disabled: bool = False


class Table:
    """Devices as an eventually consistent read sees them (`stale`) and as the last write left them."""

    def __init__(self) -> None:
        self.latest: dict[str, Found] = {}
        self.stale: dict[str, Found] = {}
        self.reads: list[tuple[str, bool]] = []

    def put(self, found: Found, *, replicated: bool = True) -> None:
        self.latest[found.device_id] = found
        if replicated:
            self.stale[found.device_id] = found

    def read(self, device_id: str, consistent: bool) -> Found | None:
        self.reads.append((device_id, consistent))
        return (self.latest if consistent else self.stale).get(device_id)


def no_index(_token_hash: str) -> None:
    raise AssertionError("a token that names its device is not looked up by hash")


def authenticator(table: Table, clock: list[float] | None = None) -> Authenticator:
    now = clock if clock is not None else [0.0]
    return Authenticator(no_index, frozenset(), 5.0, clock=lambda: now[0], device_lookup=table.read)


def test_an_accepted_token_costs_one_eventually_consistent_read() -> None:
    table = Table()
    token = new_device_token("d")
    table.put(Found("d", hash_token(token)))
    assert authenticator(table).authenticate(token).device_id == "d"
    assert table.reads == [("d", False)]


def test_a_token_issued_a_moment_ago_is_not_refused_on_a_stale_read() -> None:
    table = Table()
    old, new = new_device_token("d"), new_device_token("d")
    table.put(Found("d", hash_token(old)))
    table.put(Found("d", hash_token(new)), replicated=False)  # rotated, not yet on every replica
    assert authenticator(table).authenticate(new).device_id == "d"
    assert table.reads == [("d", False), ("d", True)]


def test_a_device_enabled_a_moment_ago_is_not_refused_on_a_stale_read() -> None:
    table = Table()
    token = new_device_token("d")
    table.put(Found("d", hash_token(token), disabled=True))
    table.put(Found("d", hash_token(token)), replicated=False)
    assert authenticator(table).authenticate(token).device_id == "d"


def test_a_stale_read_may_accept_a_token_revoked_a_moment_ago() -> None:
    """The documented bound: within the read lag a stale replica still holds the old hash."""
    table = Table()
    old, new = new_device_token("d"), new_device_token("d")
    table.put(Found("d", hash_token(old)))
    table.put(Found("d", hash_token(new)), replicated=False)
    auth = authenticator(table)
    assert auth.authenticate(old).device_id == "d"
    table.put(Found("d", hash_token(new)))  # replicated
    auth.forget("d")
    with pytest.raises(UnauthorizedError, match="unknown token"):
        auth.authenticate(old)


def test_answers_are_cached_for_the_ttl_refusals_included() -> None:
    table = Table()
    token = new_device_token("d")
    table.put(Found("d", hash_token(token)))
    clock = [0.0]
    auth = authenticator(table, clock)
    wrong = new_device_token("d")
    for _ in range(3):
        auth.authenticate(token)
        with pytest.raises(UnauthorizedError):
            auth.authenticate(wrong)
    assert table.reads == [("d", False), ("d", False), ("d", True)]
    clock[0] = 5.0
    auth.authenticate(token)
    assert len(table.reads) == 4


def test_a_disabled_device_is_refused_as_disabled_and_a_missing_one_as_unknown() -> None:
    table = Table()
    token = new_device_token("d")
    table.put(Found("d", hash_token(token), disabled=True))
    auth = authenticator(table)
    with pytest.raises(DeviceDisabledError):
        auth.authenticate(token)
    with pytest.raises(UnauthorizedError, match="unknown token"):
        auth.authenticate(new_device_token("gone"))


def test_without_a_device_lookup_every_token_goes_through_the_hash_index() -> None:
    token = new_device_token("d")
    seen: list[str] = []

    def index(token_hash: str) -> Found | None:
        seen.append(token_hash)
        return Found("d", token_hash)

    assert Authenticator(index, frozenset()).authenticate(token).device_id == "d"
    assert seen == [hash_token(token)]


def test_a_token_of_no_device_shape_is_refused_without_a_lookup() -> None:
    auth = authenticator(Table())
    for token in ("iota_" + "A" * 43, "Zm9vYmFy", "iotx_d." + "A" * 43):
        with pytest.raises(UnauthorizedError, match="unknown token"):
            auth.authenticate(token)


def test_an_admin_token_is_the_admin_whatever_its_shape() -> None:
    admin = "iotd_YWRtaW4." + "B" * 43  # configured hashes are checked before any device lookup
    auth = Authenticator(no_index, frozenset({hash_token(admin)}), device_lookup=Table().read)
    assert auth.authenticate(admin).is_admin
