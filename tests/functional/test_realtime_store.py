"""The router over the DynamoDB store (moto): one key-addressed operation per decision, TTL, the
command records, storage failures. The router's store-agnostic rules run over this store too:
tests/functional/test_wamp_router_dynamodb.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from bench.ingest import counted_dynamodb_calls
from chalicelib.domain.wamp.codec import encode
from chalicelib.domain.wamp.protocol import Code
from chalicelib.domain.wamp.router import Outgoing
from chalicelib.errors import StorageUnavailableError
from tests.contracts.router_harness import Harness
from tests.functional.realtime_kit import DynamoDBKit

D1 = "iotcloud.device.d1."


@pytest.fixture
def h(aws: None) -> Iterator[Harness]:
    with counted_dynamodb_calls() as calls:
        yield Harness(DynamoDBKit)
    assert "Scan" not in calls


def test_publish_to_many_subscribers_is_one_query(h: Harness) -> None:
    h.join("dev", "t-d1")
    subscribers = {f"adm{i}": 0 for i in range(25)}
    for conn in subscribers:
        h.join(conn, "t-admin")
        subscribers[conn] = h.subscribe(conn, D1 + "telemetry")
    with counted_dynamodb_calls() as calls:
        out = h.send("dev", [16, 2, {}, D1 + "telemetry", [21.5], {"unit": "Cel"}])
    assert calls == Counter({"GetItem": 1, "Query": 1})  # the publisher's session, the subscribers
    assert {o.connection_id: o.message[1] for o in out} == subscribers
    assert all(o.message[4:] == [[21.5], {"unit": "Cel"}] for o in out)
    with counted_dynamodb_calls() as calls:
        assert len(h.router.publish(D1 + "telemetry", [1], {}, exclude="adm0")) == 24
    assert calls == Counter({"Query": 1})


def test_rpc_round_trip_and_its_cost(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.join("adm", "t-admin")
    rid = h.register("dev", D1 + "reboot")
    with counted_dynamodb_calls() as calls:
        (invocation,) = h.send("adm", [48, 5, {}, D1 + "reboot", [1]])
    assert invocation == Outgoing("dev", [Code.INVOCATION, 1, rid, {}, [1]])
    # caller's session, the registration, the callee's id counter, the call and the caller's back-reference
    assert calls == Counter({"GetItem": 2, "UpdateItem": 1, "PutItem": 2})
    with counted_dynamodb_calls() as calls:
        assert h.send("dev", [70, 1, {}, ["ok"]]) == [Outgoing("adm", [Code.RESULT, 5, {}, ["ok"]])]
    assert calls == Counter({"GetItem": 1, "DeleteItem": 2})
    (invocation,) = h.send("adm", [48, 6, {}, D1 + "reboot"])
    assert invocation.message[1] == 2
    (error,) = h.send("adm", [64, 1, {}, D1 + "reboot"])
    assert error.message[4] == "wamp.error.procedure_already_exists"


def test_callee_disconnect_mid_call(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.join("adm", "t-admin")
    h.register("dev", D1 + "p")
    h.subscribe("dev", D1 + "cmd")
    h.send("adm", [48, 7, {}, D1 + "p"])
    with counted_dynamodb_calls() as calls:
        (error,) = h.router.on_disconnect("dev")
    assert error.connection_id == "adm"
    assert error.message[:5] == [Code.ERROR, Code.CALL, 7, {}, "wamp.error.no_available_callee"]
    assert calls["Query"] == 1 and "Scan" not in calls
    assert h.store.get_session("dev") is None
    assert h.store.registration(D1 + "p") is None and h.store.subscribers(D1 + "cmd") == []
    assert h.store.take_call_by_caller("adm", 7) is None
    assert h.router.on_disconnect("dev") == []


def test_expired_state_is_ignored(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.register("dev", D1 + "p")
    h.now += (2 * 3600 + 16 * 60) * 1000  # past the connection's TTL; DynamoDB deletes lazily
    assert h.store.get_session("dev") is None and h.store.registration(D1 + "p") is None
    h.join("dev2", "t-d1")
    assert h.register("dev2", D1 + "p") > 0  # the stale registration does not block


def test_prefix_subscriptions_cost_one_query_per_level(aws: None) -> None:
    h = Harness(DynamoDBKit, prefix=True)
    h.join("adm", "t-admin")
    h.join("dev", "t-d1")
    tem = h.subscribe("adm", D1 + "tem", 1, match="prefix")
    h.subscribe("adm", D1 + "tea", 2, match="prefix")  # a sibling, read and dropped
    h.subscribe("adm", D1 + "temperature", 3, match="prefix")  # longer than the topic
    everything = h.subscribe("adm", "iotcloud", 4, match="prefix")
    with counted_dynamodb_calls() as calls:
        out = h.send("dev", [16, 1, {}, D1 + "temp", [1]])
    assert sorted(o.message[1] for o in out) == sorted([tem, everything])
    assert all(o.message[3] == {"topic": D1 + "temp"} for o in out)
    assert calls == Counter({"GetItem": 1, "Query": 1 + 4})  # exact, then one per dotted level
    assert "Scan" not in calls


def test_commands(h: Harness) -> None:
    first = h.store.create_command("d1", D1 + "reboot", [1], {"force": True}, 10_000)
    h.now += 1
    second = h.store.create_command("d1", D1 + "reboot", [], {}, 10_000)
    assert first["id"].startswith("d1~") and first["status"] == "queued"
    assert h.store.get_command(first["id"]) == first
    assert h.store.get_command("nonsense") is None and h.store.get_command("d1~0000000000000~000000000000") is None
    assert [c["id"] for c in h.store.queued_commands("d1", 10)] == [first["id"], second["id"]]
    assert h.store.queued_commands("d1", 1) == [first]

    assert h.router.call_for_command(first["id"], D1 + "reboot", [1], {}, 0) is None  # no callee yet
    h.join("dev", "t-d1")
    rid = h.register("dev", D1 + "reboot")
    (invocation,) = h.router.call_for_command(first["id"], D1 + "reboot", [1], {"force": True}, 10_000) or []
    assert invocation == Outgoing("dev", [Code.INVOCATION, 1, rid, {}, [1], {"force": True}])
    assert h.store.get_command(first["id"])["status"] == "invoked"  # type: ignore[index]
    assert h.router.call_for_command(first["id"], D1 + "reboot", [], {}, 0) == []  # not twice
    assert h.send("dev", [70, 1, {}, ["rebooting"]]) == []
    done = h.store.get_command(first["id"])
    assert done is not None and done["status"] == "done"
    assert done["result"] == "rebooting" and done["error"] is None
    assert [c["id"] for c in h.store.queued_commands("d1", 10)] == [second["id"]]
    assert [c["id"] for c in h.store.queued_commands("d1", 1)] == [second["id"]]  # past the done one
    assert not h.store.mark_command(first["id"], "failed", error={"error": "x"})  # completes once

    h.router.call_for_command(second["id"], D1 + "reboot", [], {}, 500)
    h.now += 500
    assert h.router.on_call_timeout(h.scheduled[-1].key) == []
    timed_out = h.store.get_command(second["id"])
    assert timed_out is not None and timed_out["status"] == "timeout"
    assert timed_out["error"]["error"] == "wamp.error.timeout"
    with pytest.raises(ValueError):
        h.store.mark_command(second["id"], "queued")


def test_storage_failures_become_storage_unavailable(h: Harness) -> None:
    from chalicelib.models import RealtimeModel

    RealtimeModel.delete_table()
    with pytest.raises(StorageUnavailableError):
        h.store.get_session("c1")
    with pytest.raises(StorageUnavailableError):
        h.router.on_message("c1", encode([1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}]))
