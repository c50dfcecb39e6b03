"""A WAMP router over a store kit (tests/contracts/router_store.py), on a clock the test moves,
with the session steps every router test takes. One harness for the in-memory store
(tests/unit/test_wamp_router.py) and the DynamoDB one (tests/functional/test_wamp_router_dynamodb.py,
tests/functional/test_realtime_store.py); a module picks its store by its `make_kit` fixture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain.wamp.codec import encode
from chalicelib.domain.wamp.protocol import Code
from chalicelib.domain.wamp.router import Outgoing, Router
from chalicelib.domain.wamp.store import Identity, PendingCall
from chalicelib.errors import DeviceDisabledError, UnauthorizedError
from tests.contracts.router_store import START_MS, KitFactory, MemoryKit

TICKETS = {
    "t-d1": Identity("device", "d1", "d1"),
    "t-d2": Identity("device", "d2", "d2"),
    "t-admin": Identity("admin", None, "admin"),
}


def verify(ticket: str) -> Identity:
    """The tests' ticket check: TICKETS, and `t-disabled` for a disabled device."""
    if ticket == "t-disabled":
        raise DeviceDisabledError("device 'd9' is disabled")
    if ticket not in TICKETS:
        raise UnauthorizedError("unknown token")
    return TICKETS[ticket]


class Harness:
    """A router over a store kit, on a clock the test moves (`now`)."""

    def __init__(self, make_kit: KitFactory = MemoryKit, prefix: bool = False) -> None:
        self.now = START_MS
        self.kit = make_kit(lambda: self.now)
        self.store = self.kit.store
        self.next_id = 1000
        self.scheduled: list[PendingCall] = []
        self.router = Router(
            self.store,
            verify,
            clock_ms=lambda: self.now,
            new_id=self._new_id,
            default_call_timeout_ms=30_000,
            schedule_timeout=self.scheduled.append,
            prefix_subscriptions=prefix,
        )

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def send(self, conn: str, message: Any) -> list[Outgoing]:
        """One message from `conn` (a list is encoded; a string goes as it is)."""
        text = message if isinstance(message, str) else encode(message)
        return self.router.on_message(conn, text)

    def join(self, conn: str, ticket: str) -> int:
        """HELLO, the ticket challenge and WELCOME; the session's id."""
        assert self.send(conn, [1, "iotcloud", {"roles": {"caller": {}}, "authmethods": ["ticket"]}]) == [
            Outgoing(conn, [Code.CHALLENGE, "ticket", {}])
        ]
        (welcome,) = self.send(conn, [5, ticket, {}])
        assert welcome.message[0] == Code.WELCOME, welcome
        return int(welcome.message[1])

    def join_device_and_admin(self) -> tuple[int, int]:
        """The two sessions most tests start with, `dev` (device d1) and `adm` (an admin); their ids."""
        return self.join("dev", "t-d1"), self.join("adm", "t-admin")

    def subscribe(self, conn: str, topic: str, request: int = 1, **options: Any) -> int:
        """SUBSCRIBE, answered SUBSCRIBED; the subscription's id."""
        (answer,) = self.send(conn, [32, request, options, topic])
        assert answer.message[:2] == [Code.SUBSCRIBED, request], answer
        return int(answer.message[2])

    def register(self, conn: str, procedure: str, request: int = 1) -> int:
        """REGISTER, answered REGISTERED; the registration's id."""
        (answer,) = self.send(conn, [64, request, {}, procedure])
        assert answer.message[:2] == [Code.REGISTERED, request], answer
        return int(answer.message[2])


HarnessFactory = Callable[..., Harness]  # (prefix=False) -> a Harness over the module's store


@pytest.fixture
def make_harness(make_kit: KitFactory) -> HarnessFactory:
    """Harnesses over the store the requesting module's `make_kit` gives."""
    return lambda prefix=False: Harness(make_kit, prefix)


@pytest.fixture
def h(make_harness: HarnessFactory) -> Harness:
    return make_harness()
