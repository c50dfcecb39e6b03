"""The router's state (sessions, subscriptions, registrations, pending calls) and `RouterStore`,
the protocol a storage adapter implements (adapters.realtime over DynamoDB; an in-memory one in the tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from chalicelib.domain.wamp.codec import ProtocolViolation
from chalicelib.domain.wamp.protocol import device_prefix

CHALLENGING: Literal["challenging"] = "challenging"
ESTABLISHED: Literal["established"] = "established"


def call_key(callee_connection: str, invocation_id: int) -> str:
    """The key of a pending call: the callee's connection and its INVOCATION request id."""
    return f"{callee_connection}#{invocation_id}"


def split_call_key(key: str) -> tuple[str, int] | None:
    connection, sep, number = key.rpartition("#")
    if not sep or not connection or not number.isdigit():
        return None
    return connection, int(number)


@dataclass(frozen=True)
class Identity:
    """Who a ticket belongs to: a device (that may touch only its own namespace) or an admin."""

    role: Literal["device", "admin"]
    device_id: str | None
    authid: str

    def may_use(self, uri: str) -> bool:
        """Admins use any URI; a device only URIs under `device_prefix(its id)`."""
        if self.role == "admin":
            return True
        return self.device_id is not None and uri.startswith(device_prefix(self.device_id))


@dataclass(frozen=True)
class Session:
    """A connection's WAMP session: `challenging` between HELLO and AUTHENTICATE, then `established`."""

    connection_id: str
    state: Literal["challenging", "established"]
    session_id: int = 0
    requested_authid: str | None = None
    identity: Identity | None = None


def identity_of(session: Session) -> Identity:
    """Whom an established session belongs to (it always has an identity; a stored session
    without one is a broken record, refused like a broken message)."""
    if session.identity is None:
        raise ProtocolViolation("session without identity")
    return session.identity


@dataclass(frozen=True)
class Subscription:
    connection_id: str
    subscription_id: int
    topic: str
    match: Literal["exact", "prefix"] = "exact"

    def matches(self, topic: str) -> bool:
        return topic == self.topic if self.match == "exact" else topic.startswith(self.topic)


@dataclass(frozen=True)
class Registration:
    connection_id: str
    registration_id: int
    procedure: str


@dataclass(frozen=True)
class PendingCall:
    """An INVOCATION sent and not yet answered. Exactly one of caller_connection / command_id is set."""

    key: str
    callee_connection: str
    invocation_id: int
    caller_connection: str | None
    caller_request_id: int | None
    command_id: str | None
    deadline_ms: int
    procedure: str


class RouterStore(Protocol):
    """The router's state. Every method is one or a few key-addressed operations; none scans."""

    def get_session(self, connection_id: str) -> Session | None: ...

    def put_session(self, session: Session) -> None: ...

    def next_request_id(self, connection_id: str) -> int | None:
        """The next router-to-client session-scope request id (1, 2, ...); None without a session."""
        ...

    def add_subscription(self, subscription: Subscription) -> int:
        """Store a subscription; if the connection already holds one on that topic and policy,
        store nothing and return the existing id (BP "SUBSCRIBED")."""
        ...

    def remove_subscription(self, connection_id: str, subscription_id: int) -> bool: ...

    def subscribers(self, topic: str, *, include_prefix: bool = False) -> list[Subscription]:
        """Subscriptions matching a published topic: exact ones, and prefix ones if asked."""
        ...

    def add_registration(self, registration: Registration) -> bool:
        """False when the procedure is already registered."""
        ...

    def remove_registration(self, connection_id: str, registration_id: int) -> bool: ...

    def registration(self, procedure: str) -> Registration | None: ...

    def put_call(self, call: PendingCall) -> None: ...

    def get_call(self, key: str) -> PendingCall | None: ...

    def take_call(self, key: str) -> PendingCall | None:
        """Remove a pending call and return it; of concurrent takers only one gets it."""
        ...

    def take_call_by_caller(self, caller_connection: str, request_id: int) -> PendingCall | None: ...

    def drop_connection(self, connection_id: str) -> list[PendingCall]:
        """Delete everything a connection holds (session, subscriptions, registrations, its calls
        as caller); take and return the pending calls it was the callee of."""
        ...

    def mark_command(self, command_id: str, status: str, result: Any = None, error: Any = None) -> bool:
        """Move a command to `invoked` (from queued) or to done/failed/timeout (once)."""
        ...


class RouterRole:
    """What the router's roles (sessions, broker, dealer) share: the store they read and write,
    and the source of the ids they hand out (BP "IDs": random, from the global scope)."""

    def __init__(self, store: RouterStore, new_id: Callable[[], int]) -> None:
        self._store = store
        self._new_id = new_id
