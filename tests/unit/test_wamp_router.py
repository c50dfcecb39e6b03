"""The WAMP router's rules, over the in-memory store (tests/contracts/router_store.py). The tests that
go through the harness run again over DynamoDB: tests/functional/test_wamp_router_dynamodb.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.wamp.codec import encoded_size
from chalicelib.domain.wamp.protocol import MAX_ID, MAX_MESSAGE_BYTES, MAX_PREFIX_COMPONENTS, Code, device_prefix
from chalicelib.domain.wamp.router import ConnectAnswer, Outgoing
from chalicelib.domain.wamp.store import Identity, Subscription
from chalicelib.errors import PayloadTooLargeError
from tests.contracts.router_harness import START_MS, TICKETS, Harness, HarnessFactory
from tests.contracts.router_store import CommandRecord, KitFactory, MemoryKit

D1 = "iotcloud.device.d1."
D2 = "iotcloud.device.d2."
PSE = "wamp.error.payload_size_exceeded"


def sent(out: list[Outgoing]) -> list[tuple[str, list[Any]]]:
    return [(o.connection_id, o.message) for o in out]


def aborted(out: list[Outgoing], conn: str, reason: str) -> bool:
    last = out[-1]
    return last.connection_id == conn and last.message[0] == Code.ABORT and last.message[2] == reason and last.close


@pytest.fixture
def make_kit() -> KitFactory:
    """The store the router runs over here: in memory (tests/functional gives DynamoDB); the
    harness fixtures `h` and `make_harness` (tests/contracts/router_harness.py) build on it."""
    return MemoryKit


# -- transport and session ---------------------------------------------------------------------


def test_connect_negotiates_the_json_subprotocol(h: Harness) -> None:
    assert h.router.on_connect("c", ["wamp.2.msgpack, wamp.2.json"]) == ConnectAnswer(True, "wamp.2.json", 200)
    assert h.router.on_connect("c", ["wamp.2.json"]).subprotocol == "wamp.2.json"
    assert h.router.on_connect("c", ["wamp.2.cbor"]) == ConnectAnswer(False, None, 400)
    assert h.router.on_connect("c", []).status == 400


def test_ticket_handshake_welcomes_with_identity_and_features(h: Harness) -> None:
    hello = [1, "iotcloud", {"roles": {"callee": {}, "publisher": {}}, "authmethods": ["ticket"], "authid": "d1"}]
    assert sent(h.send("c1", hello)) == [("c1", [Code.CHALLENGE, "ticket", {}])]
    (welcome,) = h.send("c1", [5, "t-d1", {}])
    code, session_id, details = welcome.message
    assert code == Code.WELCOME and 1 <= session_id <= 2**53 and not welcome.close
    assert details["authid"] == "d1" and details["authrole"] == "device"
    assert details["authmethod"] == "ticket" and details["realm"] == "iotcloud"
    assert details["roles"]["broker"]["features"]["publisher_exclusion"] is True
    assert details["roles"]["dealer"]["features"]["call_timeout"] is True
    assert h.kit.sessions()["c1"].identity == TICKETS["t-d1"]


def test_bad_ticket_aborts_and_forgets_the_session(h: Harness) -> None:
    h.send("c1", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    out = h.send("c1", [5, "wrong", {}])
    assert aborted(out, "c1", "wamp.error.authentication_failed")
    assert "c1" not in h.kit.sessions()


def test_disabled_device_is_not_authorized(h: Harness) -> None:
    h.send("c1", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    assert aborted(h.send("c1", [5, "t-disabled", {}]), "c1", "wamp.error.not_authorized")


def test_authid_must_match_the_ticket(h: Harness) -> None:
    h.send("c1", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "d2"}])
    assert aborted(h.send("c1", [5, "t-d1", {}]), "c1", "wamp.error.authentication_failed")


def test_wrong_realm_and_missing_ticket_method_abort(h: Harness) -> None:
    out = h.send("c1", [1, "other.realm", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    assert aborted(out, "c1", "wamp.error.no_such_realm")
    out = h.send("c2", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["anonymous"]}])
    assert aborted(out, "c2", "wamp.error.no_auth_method")
    out = h.send("c3", [1, "iotcloud", {"roles": {"caller": {}}}])
    assert aborted(out, "c3", "wamp.error.no_auth_method")
    assert not h.kit.sessions()


def test_hello_without_roles_is_a_protocol_violation(h: Harness) -> None:
    out = h.send("c1", [1, "iotcloud", {"authmethods": ["ticket"]}])
    assert aborted(out, "c1", "wamp.error.protocol_violation")


def test_messages_before_hello_are_protocol_violations(h: Harness) -> None:
    assert aborted(h.send("c1", [32, 1, {}, D1 + "t"]), "c1", "wamp.error.protocol_violation")
    assert aborted(h.send("c1", [6, {}, "wamp.close.close_realm"]), "c1", "wamp.error.protocol_violation")
    assert aborted(h.send("c1", [5, "t-d1", {}]), "c1", "wamp.error.protocol_violation")
    assert h.send("c1", [3, {}, "wamp.close.system_shutdown"]) == []  # ABORT expects no answer


def test_second_hello_is_a_protocol_violation(h: Harness) -> None:
    h.join("c1", "t-d1")
    h.subscribe("c1", D1 + "cmd")
    out = h.send("c1", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    assert aborted(out, "c1", "wamp.error.protocol_violation")
    assert "c1" not in h.kit.sessions() and not h.kit.subscriptions()  # disposed of (BP "Protocol errors")


def test_hello_while_challenging_is_a_protocol_violation(h: Harness) -> None:
    h.send("c1", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    out = h.send("c1", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    assert aborted(out, "c1", "wamp.error.protocol_violation")


def test_goodbye_is_answered_and_ends_the_session(h: Harness) -> None:
    h.join("c1", "t-d1")
    h.subscribe("c1", D1 + "cmd")
    assert h.send("c1", [6, {}, "wamp.close.close_realm"]) == [
        Outgoing("c1", [Code.GOODBYE, {}, "wamp.close.goodbye_and_out"])
    ]
    assert not h.kit.subscriptions() and "c1" not in h.kit.sessions()
    h.join("c1", "t-d1")  # the transport may carry a new session


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "{}",
        "[]",
        '["1"]',
        "[99, 1]",
        "[2, 1, {}]",  # WELCOME is sent by routers only
        "[36, 1, 2, {}]",
        '[32, "1", {}, "iotcloud.device.d1.t"]',
        '[32, 0, {}, "iotcloud.device.d1.t"]',
        '[32, 9007199254740993, {}, "iotcloud.device.d1.t"]',
        '[32, true, {}, "iotcloud.device.d1.t"]',
        '[32, 1.5, {}, "iotcloud.device.d1.t"]',
        '[32, 1, [], "iotcloud.device.d1.t"]',
        "[32, 1, {}, 42]",
        '[32, 1, {}, "iotcloud.device.d1.t", []]',
        '[16, 1, {}, "iotcloud.device.d1.t", {"a": 1}]',
        '[16, 1, {}, "iotcloud.device.d1.t", [], []]',
        '[16, 1, {"acknowledge": "yes"}, "iotcloud.device.d1.t"]',
        '[16, 1, {}, "iotcloud.device.d1.t", [NaN]]',
        '[48, 1, {"timeout": -5}, "iotcloud.device.d1.p"]',
        '[48, 1, {"timeout": true}, "iotcloud.device.d1.p"]',
        '[8, 48, 1, {}, "com.example.error"]',  # clients send ERROR only for INVOCATION
        '[8, 68, 1, {}, "not a uri"]',
        "[70, 1]",
        "[" * 50_000 + "]" * 50_000,
    ],
)
def test_protocol_violations_abort_close_and_dispose(h: Harness, frame: str) -> None:
    h.join("c1", "t-d1")
    h.subscribe("c1", D1 + "cmd")
    out = h.send("c1", frame)
    assert aborted(out, "c1", "wamp.error.protocol_violation"), out
    assert out[-1].message[1]["message"]
    assert not h.kit.subscriptions() and "c1" not in h.kit.sessions()


def test_an_oversize_frame_aborts(h: Harness) -> None:
    h.join("c1", "t-d1")
    frame = json.dumps([16, 1, {}, D1 + "t", ["x" * MAX_MESSAGE_BYTES]])
    assert aborted(h.send("c1", frame), "c1", "wamp.error.payload_size_exceeded")


# -- broker --------------------------------------------------------------------------------------


def test_publish_delivers_args_and_kwargs_to_subscribers(h: Harness) -> None:
    h.join_device_and_admin()
    h.join("adm2", "t-admin")
    sid = h.subscribe("adm", D1 + "telemetry")
    sid2 = h.subscribe("adm2", D1 + "telemetry")
    out = h.send("dev", [16, 7, {}, D1 + "telemetry", [21.5], {"unit": "Cel"}])
    assert len(out) == 2
    by_conn = {o.connection_id: o.message for o in out}
    code, sub, publication, details, args, kwargs = by_conn["adm"]
    assert (code, sub, details, args, kwargs) == (Code.EVENT, sid, {}, [21.5], {"unit": "Cel"})
    assert by_conn["adm2"][1:3] == [sid2, publication]


def test_empty_payloads_are_left_out(h: Harness) -> None:
    h.join_device_and_admin()
    sid = h.subscribe("adm", D1 + "t")
    (event,) = h.send("dev", [16, 1, {}, D1 + "t"])
    assert len(event.message) == 4
    (event,) = h.send("dev", [16, 2, {}, D1 + "t", [], {"k": 1}])
    assert event.message[4:] == [[], {"k": 1}]
    (event,) = h.send("dev", [16, 3, {}, D1 + "t", [1], {}])
    assert event.message[1] == sid and event.message[4:] == [[1]]


def test_publisher_is_excluded_unless_it_asks(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.subscribe("dev", D1 + "echo")
    assert h.send("dev", [16, 1, {}, D1 + "echo", ["x"]]) == []
    (event,) = h.send("dev", [16, 2, {"exclude_me": False}, D1 + "echo", ["x"]])
    assert event.connection_id == "dev" and event.message[0] == Code.EVENT


def test_acknowledged_publish_gets_published_with_the_publication_id(h: Harness) -> None:
    h.join_device_and_admin()
    h.subscribe("adm", D1 + "t")
    event, published = h.send("dev", [16, 9, {"acknowledge": True}, D1 + "t", [1]])
    assert published == Outgoing("dev", [Code.PUBLISHED, 9, event.message[2]])
    (published,) = h.send("dev", [16, 10, {"acknowledge": True}, D1 + "nobody"])
    assert published.message[:2] == [Code.PUBLISHED, 10]


@pytest.mark.parametrize(
    ("attach", "receiver", "sender", "code", "role", "authid", "authrole"),
    [
        (Harness.subscribe, "adm", "dev", Code.PUBLISH, "publisher", "d1", "device"),
        (Harness.register, "dev", "adm", Code.CALL, "caller", "admin", "admin"),
    ],
    ids=["publisher", "caller"],
)
def test_disclose_me_identifies_the_sender(
    h: Harness, attach: Any, receiver: str, sender: str, code: int, role: str, authid: str, authrole: str
) -> None:
    # A publisher's EVENT details, or a caller's INVOCATION details, name its session, authid and authrole.
    sessions = dict(zip(("dev", "adm"), h.join_device_and_admin(), strict=True))
    attach(h, receiver, D1 + "p")
    (delivered,) = h.send(sender, [code, 1, {"disclose_me": True}, D1 + "p"])
    assert delivered.message[3] == {role: sessions[sender], f"{role}_authid": authid, f"{role}_authrole": authrole}


def test_unsubscribe_stops_events(h: Harness) -> None:
    h.join_device_and_admin()
    sid = h.subscribe("adm", D1 + "t")
    assert h.send("adm", [34, 2, sid]) == [Outgoing("adm", [Code.UNSUBSCRIBED, 2])]
    assert h.send("dev", [16, 1, {}, D1 + "t", [1]]) == []
    (error,) = h.send("adm", [34, 3, sid])
    assert error.message == [Code.ERROR, Code.UNSUBSCRIBE, 3, {}, "wamp.error.no_such_subscription"]


def test_subscribing_twice_returns_the_same_subscription(h: Harness) -> None:
    h.join("adm", "t-admin")
    assert h.subscribe("adm", D1 + "t", 1) == h.subscribe("adm", D1 + "t", 2)


def test_invalid_topic_uris_are_refused(h: Harness) -> None:
    h.join("adm", "t-admin")
    for bad in ["a..b", "a.b.", ".a", "a b", "a#b", "a\x01b", "x" * 1001]:
        (error,) = h.send("adm", [32, 1, {}, bad])
        assert error.message[:5] == [Code.ERROR, Code.SUBSCRIBE, 1, {}, "wamp.error.invalid_uri"], bad
    (error,) = h.send("adm", [16, 2, {"acknowledge": True}, "wamp.session.on_join"])
    assert error.message[4] == "wamp.error.invalid_uri"  # reserved for WAMP itself


def test_unsupported_match_policy_is_refused(h: Harness) -> None:
    h.join("adm", "t-admin")
    for match in ["prefix", "wildcard"]:
        (error,) = h.send("adm", [32, 1, {"match": match}, "iotcloud.device"])
        assert error.message[4] == "wamp.error.option_not_allowed"


def test_prefix_subscriptions_when_enabled(make_harness: HarnessFactory) -> None:
    h = make_harness(prefix=True)
    h.join("adm", "t-admin")
    h.join("dev", "t-d1")
    sid = h.subscribe("adm", "iotcloud.device", 1, match="prefix")
    exact = h.subscribe("adm", D1 + "t", 2)
    out = h.send("dev", [16, 1, {}, D1 + "t", [1]])
    assert sorted((o.message[1], o.message[3]) for o in out) == sorted([(sid, {"topic": D1 + "t"}), (exact, {})])
    # a string prefix, as the spec says: "iotcloud.device" also matches "iotcloud.devices"
    (event,) = h.send("adm", [16, 2, {"exclude_me": False}, "iotcloud.devices.x"])
    assert event.message[1] == sid
    h.send("x", [1, "iotcloud", {"roles": {"subscriber": {}}, "authmethods": ["ticket"]}])
    (welcome,) = h.send("x", [5, "t-admin", {}])
    assert welcome.message[2]["roles"]["broker"]["features"]["pattern_based_subscription"] is True


def test_device_prefix_subscription_cannot_reach_other_devices(make_harness: HarnessFactory) -> None:
    h = make_harness(prefix=True)
    h.join("dev", "t-d1")
    (error,) = h.send("dev", [32, 1, {"match": "prefix"}, "iotcloud.device.d1"])  # would match d10, d1x...
    assert error.message[4] == "wamp.error.not_authorized"
    assert h.subscribe("dev", D1 + "c", 2, match="prefix")
    deep = ".".join(["a"] * MAX_PREFIX_COMPONENTS)
    (error,) = h.send("dev", [32, 3, {"match": "prefix"}, D1 + deep])
    assert error.message[4] == "wamp.error.option_not_allowed"


def test_server_side_publish(h: Harness) -> None:
    h.join("adm", "t-admin")
    h.join("adm2", "t-admin")
    sid = h.subscribe("adm", D1 + "telemetry")
    h.subscribe("adm2", D1 + "telemetry")
    out = h.router.publish(D1 + "telemetry", [{"temp": 21.5}], {}, exclude="adm2")
    assert [(o.connection_id, o.message[1], o.message[4]) for o in out] == [("adm", sid, [{"temp": 21.5}])]
    with pytest.raises(ValueError):
        h.router.publish("bad..topic", [], {})
    with pytest.raises(PayloadTooLargeError):
        h.router.publish(D1 + "telemetry", ["x" * MAX_MESSAGE_BYTES], {})


# -- dealer --------------------------------------------------------------------------------------


def test_rpc_round_trip(h: Harness) -> None:
    h.join_device_and_admin()
    rid = h.register("dev", D1 + "reboot")
    (invocation,) = h.send("adm", [48, 5, {}, D1 + "reboot", [1], {"force": True}])
    assert invocation == Outgoing("dev", [Code.INVOCATION, 1, rid, {}, [1], {"force": True}])
    assert h.send("dev", [70, 1, {}, ["ok"], {"took_ms": 3}]) == [
        Outgoing("adm", [Code.RESULT, 5, {}, ["ok"], {"took_ms": 3}])
    ]
    (invocation,) = h.send("adm", [48, 6, {}, D1 + "reboot"])
    assert invocation.message == [Code.INVOCATION, 2, rid, {}]  # router-to-client ids count 1, 2, ...
    assert h.send("dev", [70, 2, {}]) == [Outgoing("adm", [Code.RESULT, 6, {}])]
    assert not h.kit.calls()


def test_callee_error_reaches_the_caller(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 5, {}, D1 + "p"])
    out = h.send("dev", [8, 68, 1, {}, "com.example.busy", ["try later"], {"retry_s": 5}])
    assert out == [Outgoing("adm", [Code.ERROR, Code.CALL, 5, {}, "com.example.busy", ["try later"], {"retry_s": 5}])]


def test_unknown_procedure(h: Harness) -> None:
    h.join("adm", "t-admin")
    (error,) = h.send("adm", [48, 1, {}, D1 + "nothing"])
    assert error.message[:5] == [Code.ERROR, Code.CALL, 1, {}, "wamp.error.no_such_procedure"]


def test_procedure_already_exists(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    (error,) = h.send("adm", [64, 1, {}, D1 + "p"])
    assert error.message == [Code.ERROR, Code.REGISTER, 1, {}, "wamp.error.procedure_already_exists"]


def test_unregister(h: Harness) -> None:
    h.join_device_and_admin()
    rid = h.register("dev", D1 + "p")
    assert h.send("dev", [66, 2, rid]) == [Outgoing("dev", [Code.UNREGISTERED, 2])]
    (error,) = h.send("adm", [48, 1, {}, D1 + "p"])
    assert error.message[4] == "wamp.error.no_such_procedure"
    (error,) = h.send("dev", [66, 3, rid])
    assert error.message == [Code.ERROR, Code.UNREGISTER, 3, {}, "wamp.error.no_such_registration"]


def test_registration_options_and_reserved_uris(h: Harness) -> None:
    h.join("adm", "t-admin")
    (error,) = h.send("adm", [64, 1, {}, "wamp.session.list"])
    assert error.message[4] == "wamp.error.invalid_uri"
    (error,) = h.send("adm", [64, 2, {"invoke": "roundrobin"}, "com.example.p"])
    assert error.message[4] == "wamp.error.option_not_allowed"


def test_call_timeout_answers_the_caller_and_a_late_yield_is_ignored(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "slow")
    h.send("adm", [48, 5, {"timeout": 5000}, D1 + "slow"])
    (call,) = h.scheduled
    assert call.deadline_ms == START_MS + 5000 and call.caller_request_id == 5
    h.now += 4000
    assert h.router.on_call_timeout(call.key) == []  # early: checked again later
    assert h.scheduled == [call, call]
    h.now += 1000
    (error,) = h.router.on_call_timeout(call.key)
    assert error.connection_id == "adm"
    assert error.message[:5] == [Code.ERROR, Code.CALL, 5, {}, "wamp.error.timeout"]
    assert h.send("dev", [70, 1, {}, ["late"]]) == []
    assert h.router.on_call_timeout(call.key) == []


def test_default_call_timeout(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 1, {}, D1 + "p"])
    h.send("adm", [48, 2, {"timeout": 0}, D1 + "p"])
    assert [c.deadline_ms for c in h.scheduled] == [START_MS + 30_000, START_MS + 30_000]


def test_callee_leaving_mid_call(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 5, {}, D1 + "p"])
    (error,) = h.router.on_disconnect("dev")
    assert error.connection_id == "adm"
    assert error.message[:5] == [Code.ERROR, Code.CALL, 5, {}, "wamp.error.no_available_callee"]
    (error,) = h.send("adm", [48, 6, {}, D1 + "p"])
    assert error.message[4] == "wamp.error.no_such_procedure"
    assert h.router.on_disconnect("dev") == []


def test_caller_leaving_drops_its_calls(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 5, {}, D1 + "p"])
    assert h.router.on_disconnect("adm") == []
    assert h.send("dev", [70, 1, {}, ["ok"]]) == []


def test_cancel_answers_canceled_and_drops_the_answer(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 5, {}, D1 + "p"])
    (error,) = h.send("adm", [49, 5, {"mode": "kill"}])
    assert error.message[:5] == [Code.ERROR, Code.CALL, 5, {}, "wamp.error.canceled"]
    assert h.send("dev", [70, 1, {}]) == []
    assert h.send("adm", [49, 5, {}]) == []


# -- authorization -------------------------------------------------------------------------------


def test_a_device_stays_in_its_namespace(h: Harness) -> None:
    h.join("d1", "t-d1")
    h.join("d2", "t-d2")
    h.subscribe("d2", D2 + "t")
    assert h.send("d1", [16, 1, {}, D2 + "t", ["spoof"]]) == []  # unacknowledged: dropped silently
    (error,) = h.send("d1", [16, 2, {"acknowledge": True}, D2 + "t"])
    assert error.message[:5] == [Code.ERROR, Code.PUBLISH, 2, {}, "wamp.error.not_authorized"]
    for code, uri in [(32, D2 + "t"), (64, D2 + "p"), (48, D2 + "p"), (64, "com.example.p")]:
        (error,) = h.send("d1", [code, 3, {}, uri])
        assert error.message[1:5] == [code, 3, {}, "wamp.error.not_authorized"], (code, uri)
    assert h.send("d1", [16, 4, {}, D1 + "t"]) == []  # its own namespace: fine (no subscribers)


def test_device_ids_with_dots_get_their_own_namespace() -> None:
    assert device_prefix("a.b") == "iotcloud.device.a%2Eb."
    assert not Identity("device", "a", "a").may_use(device_prefix("a.b") + "t")
    assert not Identity("device", "a.b", "a.b").may_use("iotcloud.device.a.b.t")
    assert Identity("device", "a.b", "a.b").may_use("iotcloud.device.a%2Eb.t")


def test_an_admin_may_do_anything(h: Harness) -> None:
    h.join("adm", "t-admin")
    h.join("dev", "t-d1")
    h.subscribe("dev", D1 + "cmd")
    assert h.subscribe("adm", "com.example.any") > 0
    assert h.register("adm", "com.example.proc") > 0
    (event, published) = h.send("adm", [16, 1, {"acknowledge": True}, D1 + "cmd", ["hi"]])
    assert event.connection_id == "dev" and published.message[0] == Code.PUBLISHED


# -- size ----------------------------------------------------------------------------------------


def test_oversize_messages_are_not_sent_and_the_originator_is_told(h: Harness) -> None:
    h.join_device_and_admin()
    h.subscribe("adm", D1 + "t")
    h.register("dev", D1 + "p")

    def filling(message: list[Any]) -> list[str]:
        """Arguments that make `message` (ending in [""]) exactly MAX_MESSAGE_BYTES long."""
        return ["x" * (MAX_MESSAGE_BYTES - encoded_size(message))]

    # the frames fit; what the router would send (with the publisher's / caller's details) does not
    options = {"acknowledge": True, "disclose_me": True}
    big = filling([16, 1, options, D1 + "t", [""]])
    (error,) = h.send("dev", [16, 1, options, D1 + "t", big])
    assert error.connection_id == "dev" and error.message[:5] == [Code.ERROR, Code.PUBLISH, 1, {}, PSE]
    assert h.send("dev", [16, 2, {"disclose_me": True}, D1 + "t", big]) == []  # unacknowledged: no answer (BP)
    big = filling([48, 1, {"disclose_me": True}, D1 + "p", [""]])
    (error,) = h.send("adm", [48, 1, {"disclose_me": True}, D1 + "p", big])
    assert error.connection_id == "adm" and error.message[:5] == [Code.ERROR, Code.CALL, 1, {}, PSE]
    assert not h.kit.calls()
    h.send("adm", [48, MAX_ID, {}, D1 + "p"])
    big = filling([70, 1, {}, [""]])
    (error,) = h.send("dev", [70, 1, {}, big])
    assert error.connection_id == "adm" and error.message[:5] == [Code.ERROR, Code.CALL, MAX_ID, {}, PSE]
    assert encoded_size(error.message) <= MAX_MESSAGE_BYTES


# -- through the store's own reads (these came from tests/functional/test_realtime_store.py) ---------


def test_handshake_stores_the_session(h: Harness) -> None:
    session_id = h.join("c1", "t-d1")
    session = h.store.get_session("c1")
    assert session is not None and session.session_id == session_id and session.identity == TICKETS["t-d1"]
    h.send("c2", [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}])
    out = h.send("c2", [5, "wrong", {}])
    assert out[-1].message[2] == "wamp.error.authentication_failed" and out[-1].close
    assert h.store.get_session("c2") is None


def test_subscriptions_are_deduplicated_and_removable(h: Harness) -> None:
    h.join("adm", "t-admin")
    h.join("dev", "t-d1")
    sid = h.subscribe("adm", D1 + "t", 1)
    assert h.subscribe("adm", D1 + "t", 2) == sid
    assert h.store.subscribers(D1 + "t") == [Subscription("adm", sid, D1 + "t")]
    assert h.send("adm", [34, 3, sid]) == [Outgoing("adm", [Code.UNSUBSCRIBED, 3])]
    assert h.store.subscribers(D1 + "t") == []
    (error,) = h.send("adm", [34, 4, sid])
    assert error.message[4] == "wamp.error.no_such_subscription"


def test_callee_error_timeout_and_late_yield(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 1, {}, D1 + "p"])
    (error,) = h.send("dev", [8, 68, 1, {}, "com.example.busy", ["later"]])
    assert error.message == [Code.ERROR, Code.CALL, 1, {}, "com.example.busy", ["later"]]
    h.send("adm", [48, 2, {"timeout": 1000}, D1 + "p"])
    call = h.scheduled[-1]
    assert h.store.get_call(call.key) == call
    h.now += 1000
    (error,) = h.router.on_call_timeout(call.key)
    assert error.message[:5] == [Code.ERROR, Code.CALL, 2, {}, "wamp.error.timeout"]
    assert h.send("dev", [70, 2, {}]) == []
    assert h.store.get_call(call.key) is None


def test_caller_disconnect_and_cancel(h: Harness) -> None:
    h.join_device_and_admin()
    h.register("dev", D1 + "p")
    h.send("adm", [48, 1, {}, D1 + "p"])
    (error,) = h.send("adm", [49, 1, {}])
    assert error.message[4] == "wamp.error.canceled"
    assert h.send("dev", [70, 1, {}]) == []
    h.send("adm", [48, 2, {}, D1 + "p"])
    assert h.router.on_disconnect("adm") == []
    assert h.send("dev", [70, 2, {}]) == []


# -- commands ------------------------------------------------------------------------------------


def command(h: Harness) -> CommandRecord:
    """A queued command of device d1, as the HTTP API makes one; reads show the store's record."""
    return CommandRecord(h.kit, h.kit.queue_command("d1", D1 + "p"))


def test_command_round_trip(h: Harness) -> None:
    h.join("dev", "t-d1")
    rid = h.register("dev", D1 + "reboot")
    record = command(h)
    (invocation,) = h.router.call_for_command(record.id, D1 + "reboot", [1], {"force": True}, 10_000) or []
    assert invocation == Outgoing("dev", [Code.INVOCATION, 1, rid, {}, [1], {"force": True}])
    assert record["status"] == "invoked"
    assert h.scheduled[0].command_id == record.id and h.scheduled[0].deadline_ms == START_MS + 10_000
    assert h.send("dev", [70, 1, {}, ["rebooting"]]) == []
    assert record == {"status": "done", "result": "rebooting", "error": None}  # one positional result: the value


def test_command_errors_timeouts_and_callee_leaving(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.register("dev", D1 + "p")
    failed, timed_out, orphaned = command(h), command(h), command(h)
    h.router.call_for_command(failed.id, D1 + "p", [], {}, 0)
    h.send("dev", [8, 68, 1, {}, "com.example.nope", ["no"]])
    assert failed["status"] == "failed" and failed["error"] == {"error": "com.example.nope", "args": ["no"]}
    h.router.call_for_command(timed_out.id, D1 + "p", [], {}, 1000)
    h.now += 1000
    assert h.router.on_call_timeout(h.scheduled[-1].key) == []
    assert timed_out["status"] == "timeout" and timed_out["error"]["error"] == "wamp.error.timeout"
    h.router.call_for_command(orphaned.id, D1 + "p", [], {}, 0)
    assert h.router.on_disconnect("dev") == []
    assert orphaned["status"] == "failed" and orphaned["error"]["error"] == "wamp.error.no_available_callee"


def test_command_without_callee_stays_queued(h: Harness) -> None:
    record = command(h)
    assert h.router.call_for_command(record.id, D1 + "reboot", [], {}, 1000) is None
    assert record["status"] == "queued" and not h.kit.calls()


def test_a_command_is_invoked_once(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.register("dev", D1 + "p")
    record = command(h)
    assert h.router.call_for_command(record.id, D1 + "p", [], {}, 1000)
    assert h.router.call_for_command(record.id, D1 + "p", [], {}, 1000) == []
    assert len(h.kit.calls()) == 1


def test_oversize_command_fails(h: Harness) -> None:
    h.join("dev", "t-d1")
    h.register("dev", D1 + "p")
    record = command(h)
    assert h.router.call_for_command(record.id, D1 + "p", ["x" * MAX_MESSAGE_BYTES], {}, 1000) == []
    assert record["status"] == "failed" and record["error"]["error"] == PSE


# -- encoding ------------------------------------------------------------------------------------


def test_outgoing_text_is_compact_json() -> None:
    out = Outgoing("c", [Code.EVENT, 1, 2, {}, ["é"]])
    assert out.text == '[36,1,2,{},["é"]]'
    assert encoded_size(out.message) == len(out.text.encode())
