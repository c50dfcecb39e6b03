"""The contract of `RouterStore` (chalicelib.domain.wamp.store): what the WAMP router relies on
from its state, whatever keeps it. `RouterStoreContract` runs over the in-memory store below
(tests/unit/test_router_store_contract.py) and over DynamoDB (adapters.realtime, against moto:
tests/functional/test_router_store_contract.py); the router's own tests run over both too
(tests/unit/test_wamp_router.py, tests/functional/test_wamp_router_dynamodb.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from chalicelib.domain.wamp.store import (
    ESTABLISHED,
    Identity,
    PendingCall,
    Registration,
    RouterStore,
    Session,
    Subscription,
    call_key,
)

START_MS = 1_764_061_200_000
DEVICE = Identity("device", "d1", "d1")
TOPIC = "iotcloud.device.d1.telemetry"
K = TypeVar("K")
V = TypeVar("V")


class StoreKit(Protocol):
    """A store under test, and what a test may read of its whole state (tests only: these scan)."""

    @property
    def store(self) -> RouterStore:
        """The store itself."""
        ...

    def sessions(self) -> dict[str, Session]:
        """Every live session, by connection id."""
        ...

    def subscriptions(self) -> list[Subscription]:
        """Every live subscription, of every connection."""
        ...

    def calls(self) -> list[PendingCall]:
        """Every pending call."""
        ...

    def queue_command(self, device_id: str, procedure: str) -> str:
        """A new queued command (as the HTTP API creates one); its id."""
        ...

    def command(self, command_id: str) -> dict[str, Any]:
        """A command's status, result and error."""
        ...


KitFactory = Callable[[Callable[[], int]], StoreKit]  # a store kit on the given clock (ms)


class CommandRecord(Mapping[str, Any]):
    """A command as the store holds it now: each read asks the store again."""

    def __init__(self, kit: StoreKit, command_id: str) -> None:
        self.kit = kit
        self.id = command_id

    def __getitem__(self, key: str) -> Any:
        return self.kit.command(self.id)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.kit.command(self.id))

    def __len__(self) -> int:
        return len(self.kit.command(self.id))


# -- the in-memory store --------------------------------------------------------------------------


class MemoryStore:
    """RouterStore in dicts, with the DynamoDB adapter's semantics."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.counters: dict[str, int] = {}
        self.subs: dict[tuple[str, str, str], Subscription] = {}
        self.regs: dict[str, Registration] = {}
        self.calls: dict[str, PendingCall] = {}
        self.commands: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # take_call's "only one of concurrent takers gets it"

    def get_session(self, connection_id: str) -> Session | None:
        return self.sessions.get(connection_id)

    def put_session(self, session: Session) -> None:
        self.sessions[session.connection_id] = session
        self.counters[session.connection_id] = 0

    def next_request_id(self, connection_id: str) -> int | None:
        if connection_id not in self.sessions:
            return None
        self.counters[connection_id] += 1
        return self.counters[connection_id]

    def add_subscription(self, subscription: Subscription) -> int:
        key = (subscription.connection_id, subscription.topic, subscription.match)
        return self.subs.setdefault(key, subscription).subscription_id

    def remove_subscription(self, connection_id: str, subscription_id: int) -> bool:
        return _remove_first(
            self.subs, lambda sub: sub.connection_id == connection_id and sub.subscription_id == subscription_id
        )

    def subscribers(self, topic: str, *, include_prefix: bool = False) -> list[Subscription]:
        return [
            s
            for s in self.subs.values()
            if (s.match == "exact" and s.topic == topic)
            or (include_prefix and s.match == "prefix" and topic.startswith(s.topic))
        ]

    def add_registration(self, registration: Registration) -> bool:
        if registration.procedure in self.regs:
            return False
        self.regs[registration.procedure] = registration
        return True

    def remove_registration(self, connection_id: str, registration_id: int) -> bool:
        return _remove_first(
            self.regs, lambda reg: reg.connection_id == connection_id and reg.registration_id == registration_id
        )

    def registration(self, procedure: str) -> Registration | None:
        return self.regs.get(procedure)

    def put_call(self, call: PendingCall) -> None:
        self.calls[call.key] = call

    def get_call(self, key: str) -> PendingCall | None:
        return self.calls.get(key)

    def take_call(self, key: str) -> PendingCall | None:
        with self._lock:
            return self.calls.pop(key, None)

    def take_call_by_caller(self, caller_connection: str, request_id: int) -> PendingCall | None:
        for key, call in list(self.calls.items()):
            if call.caller_connection == caller_connection and call.caller_request_id == request_id:
                return self.take_call(key)
        return None

    def drop_connection(self, connection_id: str) -> list[PendingCall]:
        self.sessions.pop(connection_id, None)
        self.subs = {k: s for k, s in self.subs.items() if s.connection_id != connection_id}
        self.regs = {p: r for p, r in self.regs.items() if r.connection_id != connection_id}
        taken = []
        for key, call in list(self.calls.items()):
            if call.callee_connection == connection_id:
                taken.append(self.calls.pop(key))
            elif call.caller_connection == connection_id:
                del self.calls[key]
        return taken

    def mark_command(self, command_id: str, status: str, result: Any = None, error: Any = None) -> bool:
        command = self.commands.get(command_id)
        allowed = ("queued",) if status == "invoked" else ("queued", "invoked")
        if command is None or command["status"] not in allowed:
            return False
        command.update(status=status, result=result, error=error)
        return True


def _remove_first(items: dict[K, V], found: Callable[[V], bool]) -> bool:
    """Delete the first value `found` accepts; whether there was one."""
    for key, value in list(items.items()):
        if found(value):
            del items[key]
            return True
    return False


class MemoryKit:
    """StoreKit over MemoryStore (it keeps no time, so the clock goes unused)."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self.store = MemoryStore()

    def sessions(self) -> dict[str, Session]:
        return dict(self.store.sessions)

    def subscriptions(self) -> list[Subscription]:
        return list(self.store.subs.values())

    def calls(self) -> list[PendingCall]:
        return list(self.store.calls.values())

    def queue_command(self, device_id: str, procedure: str) -> str:
        command_id = f"{device_id}~{len(self.store.commands) + 1}"
        self.store.commands[command_id] = {"status": "queued", "result": None, "error": None}
        return command_id

    def command(self, command_id: str) -> dict[str, Any]:
        record = self.store.commands[command_id]
        return {key: record[key] for key in ("status", "result", "error")}


# -- the contract -------------------------------------------------------------------------------


def _session(conn: str, identity: Identity | None = DEVICE) -> Session:
    return Session(conn, ESTABLISHED, 7, None, identity)


def _call(callee: str, invocation: int, caller: str | None = "caller", request: int | None = 5) -> PendingCall:
    command = None if caller is not None else f"cmd-{invocation}"
    return PendingCall(
        call_key(callee, invocation), callee, invocation, caller, request, command, START_MS + 30_000, "p"
    )


class RouterStoreContract:
    """What every RouterStore does. A subclass provides the `kit` fixture (a StoreKit)."""

    # -- sessions

    def test_a_session_reads_back_as_it_was_put(self, kit: StoreKit) -> None:
        assert kit.store.get_session("c1") is None
        kit.store.put_session(_session("c1"))
        kit.store.put_session(Session("c2", "challenging", 0, "d2", None))
        assert kit.store.get_session("c1") == _session("c1")
        assert kit.store.get_session("c2") == Session("c2", "challenging", 0, "d2", None)
        assert kit.sessions() == {"c1": _session("c1"), "c2": Session("c2", "challenging", 0, "d2", None)}

    def test_request_ids_count_from_one_per_session_and_restart_with_it(self, kit: StoreKit) -> None:
        assert kit.store.next_request_id("c1") is None  # no session
        kit.store.put_session(_session("c1"))
        kit.store.put_session(_session("c2"))
        assert [kit.store.next_request_id("c1") for _ in range(3)] == [1, 2, 3]
        assert kit.store.next_request_id("c2") == 1
        kit.store.put_session(_session("c1"))  # a new session on the connection
        assert kit.store.next_request_id("c1") == 1

    # -- subscriptions

    def test_subscribing_twice_keeps_the_first_subscription(self, kit: StoreKit) -> None:
        assert kit.store.add_subscription(Subscription("c1", 11, TOPIC)) == 11
        assert kit.store.add_subscription(Subscription("c1", 12, TOPIC)) == 11
        assert kit.store.add_subscription(Subscription("c1", 13, TOPIC, "prefix")) == 13  # another policy
        assert kit.store.add_subscription(Subscription("c2", 14, TOPIC)) == 14  # another connection
        assert sorted(s.subscription_id for s in kit.subscriptions()) == [11, 13, 14]

    def test_subscribers_are_exact_unless_prefixes_are_asked_for(self, kit: StoreKit) -> None:
        kit.store.add_subscription(Subscription("c1", 1, TOPIC))
        kit.store.add_subscription(Subscription("c2", 2, "iotcloud.device.d1", "prefix"))
        kit.store.add_subscription(Subscription("c3", 3, "iotcloud.device.d2", "prefix"))
        kit.store.add_subscription(Subscription("c4", 4, TOPIC + ".more"))
        assert kit.store.subscribers(TOPIC) == [Subscription("c1", 1, TOPIC)]
        found = kit.store.subscribers(TOPIC, include_prefix=True)
        assert sorted(found, key=lambda s: s.subscription_id) == [
            Subscription("c1", 1, TOPIC),
            Subscription("c2", 2, "iotcloud.device.d1", "prefix"),
        ]
        assert kit.store.subscribers("iotcloud.device.d3.telemetry", include_prefix=True) == []

    def test_a_prefix_matches_as_a_string_prefix(self, kit: StoreKit) -> None:
        # WAMP's prefix match compares strings, not dotted components: d1 also covers d10.
        kit.store.add_subscription(Subscription("c1", 1, "iotcloud.device.d1", "prefix"))
        assert kit.store.subscribers("iotcloud.device.d10.telemetry", include_prefix=True) == [
            Subscription("c1", 1, "iotcloud.device.d1", "prefix")
        ]
        assert kit.store.subscribers("iotcloud.device.d", include_prefix=True) == []

    def test_a_subscription_is_removed_once_and_only_by_its_connection(self, kit: StoreKit) -> None:
        kit.store.add_subscription(Subscription("c1", 1, TOPIC))
        kit.store.add_subscription(Subscription("c2", 2, TOPIC))
        assert kit.store.remove_subscription("c2", 1) is False
        assert kit.store.remove_subscription("c1", 1) is True
        assert kit.store.remove_subscription("c1", 1) is False
        assert kit.store.subscribers(TOPIC) == [Subscription("c2", 2, TOPIC)]

    # -- registrations

    def test_a_procedure_has_one_registration(self, kit: StoreKit) -> None:
        assert kit.store.registration("p") is None
        assert kit.store.add_registration(Registration("c1", 1, "p")) is True
        assert kit.store.add_registration(Registration("c2", 2, "p")) is False
        assert kit.store.add_registration(Registration("c1", 3, "p")) is False
        assert kit.store.registration("p") == Registration("c1", 1, "p")

    def test_a_registration_is_removed_once_and_only_by_its_connection(self, kit: StoreKit) -> None:
        kit.store.add_registration(Registration("c1", 1, "p"))
        assert kit.store.remove_registration("c2", 1) is False
        assert kit.store.remove_registration("c1", 2) is False
        assert kit.store.remove_registration("c1", 1) is True
        assert kit.store.remove_registration("c1", 1) is False
        assert kit.store.registration("p") is None
        assert kit.store.add_registration(Registration("c2", 2, "p")) is True  # free again

    # -- pending calls

    def test_a_call_is_taken_once(self, kit: StoreKit) -> None:
        call = _call("callee", 1)
        kit.store.put_call(call)
        assert kit.store.get_call(call.key) == call
        assert kit.calls() == [call]
        assert kit.store.take_call(call.key) == call
        assert kit.store.take_call(call.key) is None
        assert kit.store.get_call(call.key) is None and kit.calls() == []
        assert kit.store.take_call(call_key("nobody", 9)) is None

    def test_a_call_is_taken_by_its_callers_request_id(self, kit: StoreKit) -> None:
        call = _call("callee", 1, "caller", 5)
        kit.store.put_call(call)
        assert kit.store.take_call_by_caller("caller", 6) is None
        assert kit.store.take_call_by_caller("other", 5) is None
        assert kit.store.take_call_by_caller("caller", 5) == call
        assert kit.store.get_call(call.key) is None
        assert kit.store.take_call_by_caller("caller", 5) is None
        assert kit.store.take_call(call.key) is None  # gone by either key

    def test_of_concurrent_takers_only_one_gets_the_call(self, kit: StoreKit) -> None:
        call = _call("callee", 1)
        kit.store.put_call(call)
        takers = 8
        barrier = threading.Barrier(takers)
        got: list[PendingCall | None] = []

        def take() -> None:
            barrier.wait()
            got.append(kit.store.take_call(call.key))

        threads = [threading.Thread(target=take) for _ in range(takers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(got, key=lambda c: c is None) == [call] + [None] * (takers - 1)

    # -- a connection going away

    def test_dropping_a_connection_deletes_what_it_holds_and_returns_its_callee_calls(self, kit: StoreKit) -> None:
        store = kit.store
        for conn in ("gone", "stays"):
            store.put_session(_session(conn))
            store.add_subscription(Subscription(conn, 1, TOPIC))
            store.add_subscription(Subscription(conn, 2, "iotcloud.device", "prefix"))
        store.add_registration(Registration("gone", 3, "p.gone"))
        store.add_registration(Registration("stays", 3, "p.stays"))
        as_callee = _call("gone", 1, "stays", 7)
        as_caller = _call("stays", 1, "gone", 8)
        for_command = _call("gone", 2, None, None)
        untouched = _call("stays", 2, "stays", 9)
        for call in (as_callee, as_caller, for_command, untouched):
            store.put_call(call)
        taken = store.drop_connection("gone")
        assert sorted(taken, key=lambda c: c.invocation_id) == [as_callee, for_command]
        assert store.get_session("gone") is None and store.get_session("stays") == _session("stays")
        assert {s.connection_id for s in kit.subscriptions()} == {"stays"}
        assert store.registration("p.gone") is None and store.registration("p.stays") is not None
        assert kit.calls() == [untouched]
        assert store.take_call_by_caller("gone", 8) is None
        assert store.drop_connection("gone") == []  # nothing left

    # -- commands

    def test_a_command_is_invoked_once_and_completes_once(self, kit: StoreKit) -> None:
        first, second = kit.queue_command("d1", "p"), kit.queue_command("d1", "p")
        assert kit.store.mark_command(first, "invoked") is True
        assert kit.store.mark_command(first, "invoked") is False
        assert kit.store.mark_command(first, "done", result={"ok": 1}) is True
        assert kit.command(first) == {"status": "done", "result": {"ok": 1}, "error": None}
        assert kit.store.mark_command(first, "failed", error={"error": "late"}) is False
        assert kit.command(first)["status"] == "done"
        # queued -> failed directly (no callee ever took it), then nothing more
        assert kit.store.mark_command(second, "timeout", error={"error": "wamp.error.timeout"}) is True
        assert kit.command(second) == {"status": "timeout", "result": None, "error": {"error": "wamp.error.timeout"}}
        assert kit.store.mark_command(second, "invoked") is False

    def test_an_unknown_command_is_not_marked(self, kit: StoreKit) -> None:
        assert kit.store.mark_command("d1~no-such-command", "invoked") is False
        assert kit.store.mark_command("d1~0000000000000~000000000000", "done") is False
