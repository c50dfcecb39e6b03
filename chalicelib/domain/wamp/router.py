"""`Router`, the one entry point of the WAMP router: it checks each frame against the session's
state and hands it to the role that answers it (`sessions`, `broker`, `dealer`).

The router does no I/O of its own: each entry point reads and writes state through the store,
draws ids from `new_id` and time from `clock_ms` (both injected, for the tests), and returns the
messages to post (`Outgoing`); the caller posts them and owns the transport."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.clock import now_ms
from chalicelib.domain.wamp.broker import Broker
from chalicelib.domain.wamp.codec import Incoming, Outgoing, ProtocolViolation, decode
from chalicelib.domain.wamp.dealer import Dealer, command_result
from chalicelib.domain.wamp.protocol import (
    GOODBYE_AND_OUT,
    MAX_MESSAGE_BYTES,
    PAYLOAD_SIZE_EXCEEDED,
    PROTOCOL_VIOLATION,
    SUBPROTOCOL,
    Code,
    random_id,
)
from chalicelib.domain.wamp.sessions import Sessions, TicketVerifier
from chalicelib.domain.wamp.store import CHALLENGING, PendingCall, RouterStore, Session

# Importers take these from here (Outgoing, TicketVerifier and command_result live in the roles' modules).
__all__ = ["ConnectAnswer", "Outgoing", "Router", "TicketVerifier", "command_result"]


@dataclass(frozen=True)
class ConnectAnswer:
    accept: bool
    subprotocol: str | None
    status: int  # 200, or 400 when no supported subprotocol is offered


class Router:
    """WAMP broker and dealer for the `iotcloud` realm, with ticket authentication.

    Every entry point loads state from the store, applies the rules, writes back and returns
    the messages to post. Store failures (StorageUnavailableError) propagate to the caller.
    """

    def __init__(
        self,
        store: RouterStore,
        verify_ticket: TicketVerifier,
        *,
        clock_ms: Callable[[], int] = now_ms,
        new_id: Callable[[], int] = random_id,
        default_call_timeout_ms: int = 30_000,
        schedule_timeout: Callable[[PendingCall], None] = lambda call: None,
        prefix_subscriptions: bool = False,
    ) -> None:
        """`prefix_subscriptions` turns on AP prefix matching: each PUBLISH then costs one more
        store Query per dotted level of its topic (at most MAX_PREFIX_COMPONENTS)."""
        self._store = store
        self._broker = Broker(store, new_id, prefix_subscriptions=prefix_subscriptions)
        self._dealer = Dealer(
            store, new_id, clock_ms, default_call_timeout_ms=default_call_timeout_ms, schedule_timeout=schedule_timeout
        )
        roles = {"broker": {"features": self._broker.features}, "dealer": {"features": self._dealer.features}}
        self._sessions = Sessions(store, verify_ticket, new_id, roles=roles, dealer=self._dealer)
        # The messages of an established session, by the role that answers them.
        self._handlers: dict[Code, Callable[[Session, Incoming], list[Outgoing]]] = {
            Code.PUBLISH: self._broker.on_publish,
            Code.SUBSCRIBE: self._broker.on_subscribe,
            Code.UNSUBSCRIBE: self._broker.on_unsubscribe,
            Code.CALL: self._dealer.on_call,
            Code.CANCEL: self._dealer.on_cancel,
            Code.REGISTER: self._dealer.on_register,
            Code.UNREGISTER: self._dealer.on_unregister,
            Code.YIELD: self._dealer.on_yield,
            Code.ERROR: self._dealer.on_callee_error,
        }

    # -- transport events ---------------------------------------------------------------------

    def on_connect(self, connection_id: str, offered: Sequence[str]) -> ConnectAnswer:
        """WebSocket opening handshake: accept only if `wamp.2.json` is offered (BP "WebSocket
        Transport"). `offered` holds Sec-WebSocket-Protocol values, comma-separated or not."""
        protocols = {p.strip() for value in offered for p in value.split(",")}
        if SUBPROTOCOL in protocols:
            return ConnectAnswer(True, SUBPROTOCOL, 200)
        return ConnectAnswer(False, None, 400)

    def on_message(self, connection_id: str, text: str) -> list[Outgoing]:
        """One incoming frame: decode, check the session state, dispatch."""
        sessions = self._sessions
        if len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
            return sessions.abort(connection_id, PAYLOAD_SIZE_EXCEEDED, "message larger than 128 KiB")
        try:
            msg = decode(text)
        except ProtocolViolation as e:
            return sessions.abort(connection_id, PROTOCOL_VIOLATION, str(e))
        session = self._store.get_session(connection_id)
        try:
            if session is None:
                if msg.code is Code.HELLO:
                    return sessions.on_hello(connection_id, msg)
                if msg.code is Code.ABORT:
                    return []
                return sessions.abort(connection_id, PROTOCOL_VIOLATION, f"{msg.code.name} before HELLO", cleanup=False)
            if session.state == CHALLENGING:
                if msg.code is Code.AUTHENTICATE:
                    return sessions.on_authenticate(session, msg)
                if msg.code is Code.ABORT:
                    return sessions.end(connection_id)
                return sessions.abort(connection_id, PROTOCOL_VIOLATION, f"{msg.code.name} while authenticating")
            if msg.code is Code.GOODBYE:
                # BP "Session Closing": answer, and dispose of the session; the client closes.
                return [*sessions.end(connection_id), Outgoing(connection_id, [Code.GOODBYE, {}, GOODBYE_AND_OUT])]
            if msg.code is Code.ABORT:
                return sessions.end(connection_id)
            handler = self._handlers.get(msg.code)
            if handler is None:  # HELLO, AUTHENTICATE within a session
                return sessions.abort(
                    connection_id, PROTOCOL_VIOLATION, f"{msg.code.name} after the session was established"
                )
            return handler(session, msg)
        except ProtocolViolation as e:
            return sessions.abort(connection_id, PROTOCOL_VIOLATION, str(e))

    def on_disconnect(self, connection_id: str) -> list[Outgoing]:
        """The transport is gone: dispose of the session (BP "Callee Leaving" for its calls)."""
        return self._sessions.end(connection_id)

    def on_call_timeout(self, call_key: str) -> list[Outgoing]:
        """A call's deadline passed: if still pending, answer the caller with `wamp.error.timeout`
        (AP "Call Timeouts"; see `Dealer.on_call_timeout`)."""
        return self._dealer.on_call_timeout(call_key)

    # -- server-side entry points -------------------------------------------------------------

    def publish(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], *, exclude: str | None = None
    ) -> list[Outgoing]:
        """Publish from the backend (telemetry, alerts): EVENTs to every subscriber but `exclude`.

        Raises ValueError for an invalid topic and PayloadTooLargeError when the EVENT would
        exceed MAX_MESSAGE_BYTES.
        """
        return self._broker.publish(topic, args, kwargs, exclude=exclude)

    def call_for_command(
        self, command_id: str, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout_ms: int
    ) -> list[Outgoing] | None:
        """Invoke a procedure for an HTTP command: the INVOCATION to its callee, or None when no
        callee is registered (the command stays queued); see `Dealer.call_for_command`."""
        return self._dealer.call_for_command(command_id, procedure, args, kwargs, timeout_ms)
