"""A WAMP v2 router (Basic Profile, JSON serialization) as pure functions over a state store.

API Gateway WebSocket delivers every frame as a separate Lambda invocation, so the router keeps
no state in memory: each entry point loads what it needs from a `RouterStore`, decides, writes
back, and returns the messages to post to connection ids (`Outgoing`). References are to the
WAMP specification (wamp-proto.org, draft-oberstet-hybi-crossbar-wamp), Basic Profile (BP) and
Advanced Profile (AP) sections:

- BP "Building Blocks": URIs (loose rule), IDs in [1, 2^53], "Protocol errors" (ABORT
  `wamp.error.protocol_violation`, dispose the session's subscriptions and registrations).
- BP "Messages": message codes and shapes; empty Arguments/ArgumentsKw are left out.
- BP "Sessions": HELLO, WELCOME, ABORT, GOODBYE; AP "Ticket-based Authentication".
- BP "Publish and Subscribe"; AP "Publisher Exclusion", "Publisher Identification",
  "Pattern-based Subscription" (prefix only, opt-in).
- BP "Remote Procedure Calls" (incl. "Callee Leaving"); AP "Call Timeouts" (dealer-initiated),
  "Caller Identification", "Call Canceling" (mode `skip` only, tolerated but not announced).
- BP "URI reference": the error and close URIs below.

Deliberate choices, each explained where it is made: request ids from clients are not checked
for sequence (API Gateway may run a connection's frames concurrently, and older clients send
random ids); every call gets a dealer-side timeout (the default when `CALL.Options.timeout` is
absent or 0), because a serverless router must bound the state it keeps.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, Protocol

from chalicelib.errors import (
    ForbiddenError,
    PayloadTooLargeError,
    StorageUnavailableError,
    UnauthorizedError,
)

SUBPROTOCOL = "wamp.2.json"
REALM = "iotcloud"
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
MAX_ID = 2**53  # BP "IDs": every id is an integer in [1, 2^53]
MAX_URI_BYTES = 1000  # keeps every URI-derived DynamoDB key under its size limit
MAX_PREFIX_COMPONENTS = 10  # a prefix subscription may have at most this many dotted components
DEVICE_NAMESPACE = "iotcloud.device."
AUTHPROVIDER = "iotcloud"
AGENT = "iotcloud-router"

CHALLENGING: Literal["challenging"] = "challenging"
ESTABLISHED: Literal["established"] = "established"


class Code(IntEnum):
    """Message type codes (BP "Messages"; CANCEL from AP "Call Canceling")."""

    HELLO = 1
    WELCOME = 2
    ABORT = 3
    CHALLENGE = 4
    AUTHENTICATE = 5
    GOODBYE = 6
    ERROR = 8
    PUBLISH = 16
    PUBLISHED = 17
    SUBSCRIBE = 32
    SUBSCRIBED = 33
    UNSUBSCRIBE = 34
    UNSUBSCRIBED = 35
    EVENT = 36
    CALL = 48
    CANCEL = 49
    RESULT = 50
    REGISTER = 64
    REGISTERED = 65
    UNREGISTER = 66
    UNREGISTERED = 67
    INVOCATION = 68
    YIELD = 70


# BP "URI reference" and AP URIs.
PROTOCOL_VIOLATION = "wamp.error.protocol_violation"
INVALID_URI = "wamp.error.invalid_uri"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
PROCEDURE_ALREADY_EXISTS = "wamp.error.procedure_already_exists"
NO_SUCH_REGISTRATION = "wamp.error.no_such_registration"
NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"
INVALID_ARGUMENT = "wamp.error.invalid_argument"
CANCELED = "wamp.error.canceled"
TIMEOUT = "wamp.error.timeout"  # AP "Call Timeouts": "MUST use wamp.error.timeout as the reason URI"
NO_AVAILABLE_CALLEE = "wamp.error.no_available_callee"  # BP "Callee Leaving"
PAYLOAD_SIZE_EXCEEDED = "wamp.error.payload_size_exceeded"
OPTION_NOT_ALLOWED = "wamp.error.option_not_allowed"
NOT_AUTHORIZED = "wamp.error.not_authorized"
AUTHORIZATION_FAILED = "wamp.error.authorization_failed"
AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
NO_AUTH_METHOD = "wamp.error.no_auth_method"
NO_SUCH_REALM = "wamp.error.no_such_realm"
GOODBYE_AND_OUT = "wamp.close.goodbye_and_out"
CLOSE_NORMAL = "wamp.close.normal"

# BP "URIs", relaxed rule without empty components, plus: no control characters (they are not
# legal in RFC 3986 URIs, and excluding them keeps " " below every URI character in key order).
_LOOSE_URI = re.compile(r"^([^\s\.#]+\.)*([^\s\.#]+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CLIENT_ROLES = frozenset({"publisher", "subscriber", "caller", "callee"})
_CANCEL_MODES = frozenset({"skip", "kill", "killnowait"})


def valid_uri(uri: object) -> bool:
    """A URI under the spec's loose rule (no empty components), not too long for the store."""
    return (
        isinstance(uri, str)
        and len(uri.encode()) <= MAX_URI_BYTES
        and _LOOSE_URI.match(uri) is not None
        and _CONTROL.search(uri) is None
    )


def device_uri_component(device_id: str) -> str:
    """A device id as one URI component.

    Device ids may hold "." (domain.devices.ID_PATTERN), which separates URI components: without
    this, device "a" would own device "a.b"'s namespace. "%" never occurs in device ids, so the
    encoding is unambiguous.
    """
    return device_id.replace("%", "%25").replace(".", "%2E")


def device_prefix(device_id: str) -> str:
    """The namespace a device owns: `iotcloud.device.<id>.` (topics and procedures under it)."""
    return f"{DEVICE_NAMESPACE}{device_uri_component(device_id)}."


def random_id() -> int:
    """A global-scope id: uniform over [1, 2^53] (BP "IDs")."""
    return secrets.randbelow(MAX_ID) + 1


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def encode(message: Sequence[Any]) -> str:
    """A message as the text frame to send (compact JSON, UTF-8 as is)."""
    return json.dumps(list(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encoded_size(message: Sequence[Any]) -> int:
    """Bytes a message takes on the wire."""
    return len(encode(message).encode())


def command_result(args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A YIELD as a command's result, as autobahn callers see one: a single positional
    result is the value itself; anything else is {"args", "kwargs"}."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args and not kwargs:
        return None
    return {"args": args, "kwargs": kwargs}


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


TicketVerifier = Callable[[str], Identity]  # raises UnauthorizedError / DeviceDisabledError


@dataclass(frozen=True)
class Outgoing:
    """One message to post to a connection; `close` means: then close that connection."""

    connection_id: str
    message: list[Any]
    close: bool = False

    @property
    def text(self) -> str:
        return encode(self.message)


@dataclass(frozen=True)
class ConnectAnswer:
    accept: bool
    subprotocol: str | None
    status: int  # 200, or 400 when no supported subprotocol is offered


@dataclass(frozen=True)
class Session:
    """A connection's WAMP session: `challenging` between HELLO and AUTHENTICATE, then `established`."""

    connection_id: str
    state: Literal["challenging", "established"]
    session_id: int = 0
    requested_authid: str | None = None
    identity: Identity | None = None


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


class ProtocolViolation(Exception):
    """An incoming message breaks the protocol (BP "Protocol errors")."""


@dataclass(frozen=True)
class Incoming:
    """A decoded client-to-router message, its elements by role rather than by position."""

    code: Code
    request: int = 0  # Request|id; INVOCATION.Request for YIELD and ERROR; CALL.Request for CANCEL
    options: dict[str, Any] = field(default_factory=dict)  # Options, Details or Extra
    uri: str = ""  # Realm, Topic, Procedure, Error or Reason
    ref: int = 0  # SUBSCRIBED.Subscription, REGISTERED.Registration, or ERROR's REQUEST.Type
    signature: str = ""  # AUTHENTICATE
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


def _reject_constant(name: str) -> Any:
    raise ProtocolViolation(f"{name} is not JSON")


def _id(value: Any, what: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise ProtocolViolation(f"{what} must be an integer in [1, 2^53]")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolViolation(f"{what} must be a dict")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProtocolViolation(f"{what} must be a string")
    return value


def _payload(msg: list[Any], start: int, name: str) -> tuple[list[Any] | None, dict[str, Any] | None]:
    args = msg[start] if len(msg) > start else None
    kwargs = msg[start + 1] if len(msg) > start + 1 else None
    if args is not None and not isinstance(args, list):
        raise ProtocolViolation(f"{name}.Arguments must be a list")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ProtocolViolation(f"{name}.ArgumentsKw must be a dict")
    return args, kwargs


# code -> (min length, max length) of the messages a router accepts from a client
_SHAPES: dict[Code, tuple[int, int]] = {
    Code.HELLO: (3, 3),
    Code.ABORT: (3, 3),
    Code.AUTHENTICATE: (3, 3),
    Code.GOODBYE: (3, 3),
    Code.ERROR: (5, 7),
    Code.PUBLISH: (4, 6),
    Code.SUBSCRIBE: (4, 4),
    Code.UNSUBSCRIBE: (3, 3),
    Code.CALL: (4, 6),
    Code.CANCEL: (3, 3),
    Code.REGISTER: (4, 4),
    Code.UNREGISTER: (3, 3),
    Code.YIELD: (3, 5),
}


def decode(text: str) -> Incoming:
    """Parse and shape-check one client-to-router message (BP "Messages").

    URIs are only type-checked here: a malformed URI is answered with ERROR `invalid_uri`
    (BP "URI reference"), not with ABORT.
    """
    try:
        msg = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolViolation(f"not a JSON message: {e}") from e
    if not isinstance(msg, list) or not msg:
        raise ProtocolViolation("a message is a non-empty JSON array")
    if type(msg[0]) is not int:
        raise ProtocolViolation("the message type must be an integer")
    try:
        code = Code(msg[0])
    except ValueError as e:
        raise ProtocolViolation(f"unknown message type {msg[0]}") from e
    shape = _SHAPES.get(code)
    if shape is None:
        raise ProtocolViolation(f"{code.name} is not sent by clients")
    if not shape[0] <= len(msg) <= shape[1]:
        raise ProtocolViolation(f"{code.name} must have {shape[0]} to {shape[1]} elements")
    name = code.name
    if code is Code.HELLO:
        return Incoming(code, uri=_str(msg[1], "HELLO.Realm"), options=_dict(msg[2], "HELLO.Details"))
    if code is Code.AUTHENTICATE:
        return Incoming(code, signature=_str(msg[1], "Signature"), options=_dict(msg[2], "Extra"))
    if code in (Code.ABORT, Code.GOODBYE):
        return Incoming(code, options=_dict(msg[1], f"{name}.Details"), uri=_str(msg[2], f"{name}.Reason"))
    if code is Code.ERROR:
        if type(msg[1]) is not int:
            raise ProtocolViolation("ERROR.REQUEST.Type must be an integer")
        args, kwargs = _payload(msg, 5, name)
        return Incoming(
            code,
            ref=msg[1],
            request=_id(msg[2], "ERROR.Request"),
            options=_dict(msg[3], "ERROR.Details"),
            uri=_str(msg[4], "ERROR.Error"),
            args=args,
            kwargs=kwargs,
        )
    request = _id(msg[1], f"{name}.Request")
    if code in (Code.UNSUBSCRIBE, Code.UNREGISTER):
        return Incoming(code, request=request, ref=_id(msg[2], f"{name} id"))
    options = _dict(msg[2], f"{name}.Options")
    if code in (Code.CANCEL, Code.YIELD):
        args, kwargs = _payload(msg, 3, name)
        return Incoming(code, request=request, options=options, args=args, kwargs=kwargs)
    args, kwargs = _payload(msg, 4, name)
    return Incoming(code, request=request, options=options, uri=_str(msg[3], f"{name} URI"), args=args, kwargs=kwargs)


def _option(options: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """A known option, type-checked (bool is not an int here: BP "Messages" `bool`)."""
    if key not in options:
        return default
    value = options[key]
    if type(value) is not kind:
        raise ProtocolViolation(f"option {key!r} must be {kind.__name__}")
    return value


def payload_tail(args: list[Any] | None, kwargs: dict[str, Any] | None) -> list[Any]:
    """Arguments and ArgumentsKw to append, leaving out empty ones (BP "Empty Arguments")."""
    if kwargs:
        return [list(args or []), kwargs]
    if args:
        return [args]
    return []


def error_message(request_type: Code, request: int, uri: str, text: str | None = None) -> list[Any]:
    """ERROR for a request; router-made errors carry a human-readable reason as Arguments[0]."""
    return [Code.ERROR, request_type, request, {}, uri, *([[text]] if text else [])]


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
        clock_ms: Callable[[], int] = wall_clock_ms,
        new_id: Callable[[], int] = random_id,
        default_call_timeout_ms: int = 30_000,
        schedule_timeout: Callable[[PendingCall], None] = lambda call: None,
        prefix_subscriptions: bool = False,
    ) -> None:
        """`prefix_subscriptions` turns on AP prefix matching: each PUBLISH then costs one more
        store Query per dotted level of its topic (at most MAX_PREFIX_COMPONENTS)."""
        self._store = store
        self._verify = verify_ticket
        self._clock = clock_ms
        self._new_id = new_id
        self._default_timeout = default_call_timeout_ms
        self._schedule = schedule_timeout
        self._prefix = prefix_subscriptions
        self._handlers: dict[Code, Callable[[Session, Incoming], list[Outgoing]]] = {
            Code.PUBLISH: self._publish,
            Code.SUBSCRIBE: self._subscribe,
            Code.UNSUBSCRIBE: self._unsubscribe,
            Code.CALL: self._call,
            Code.CANCEL: self._cancel,
            Code.REGISTER: self._register,
            Code.UNREGISTER: self._unregister,
            Code.YIELD: self._yield,
            Code.ERROR: self._callee_error,
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
        if len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
            return self._abort(connection_id, PAYLOAD_SIZE_EXCEEDED, "message larger than 128 KiB")
        try:
            msg = decode(text)
        except ProtocolViolation as e:
            return self._abort(connection_id, PROTOCOL_VIOLATION, str(e))
        session = self._store.get_session(connection_id)
        try:
            if session is None:
                if msg.code is Code.HELLO:
                    return self._hello(connection_id, msg)
                if msg.code is Code.ABORT:
                    return []
                return self._abort(connection_id, PROTOCOL_VIOLATION, f"{msg.code.name} before HELLO", cleanup=False)
            if session.state == CHALLENGING:
                if msg.code is Code.AUTHENTICATE:
                    return self._authenticate(session, msg)
                if msg.code is Code.ABORT:
                    return self._end_session(connection_id)
                return self._abort(connection_id, PROTOCOL_VIOLATION, f"{msg.code.name} while authenticating")
            if msg.code is Code.GOODBYE:
                # BP "Session Closing": answer, and dispose of the session; the client closes.
                return [*self._end_session(connection_id), Outgoing(connection_id, [Code.GOODBYE, {}, GOODBYE_AND_OUT])]
            if msg.code is Code.ABORT:
                return self._end_session(connection_id)
            handler = self._handlers.get(msg.code)
            if handler is None:  # HELLO, AUTHENTICATE within a session
                return self._abort(
                    connection_id, PROTOCOL_VIOLATION, f"{msg.code.name} after the session was established"
                )
            return handler(session, msg)
        except ProtocolViolation as e:
            return self._abort(connection_id, PROTOCOL_VIOLATION, str(e))

    def on_disconnect(self, connection_id: str) -> list[Outgoing]:
        """The transport is gone: dispose of the session (BP "Callee Leaving" for its calls)."""
        return self._end_session(connection_id)

    def on_call_timeout(self, call_key: str) -> list[Outgoing]:
        """A call's deadline passed: if still pending, answer the caller with `wamp.error.timeout`
        (AP "Call Timeouts", dealer-initiated; INTERRUPT is not sent: the Basic Profile callee
        has no cancellation, so mode `skip` applies and a late YIELD is ignored)."""
        call = self._store.get_call(call_key)
        if call is None:
            return []
        if self._clock() < call.deadline_ms:
            self._schedule(call)  # woke early: check again later
            return []
        call = self._store.take_call(call_key)
        if call is None:
            return []
        return self._fail_call(call, TIMEOUT, f"no answer from the callee within the call's timeout ({call.procedure})")

    # -- server-side entry points -------------------------------------------------------------

    def publish(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], *, exclude: str | None = None
    ) -> list[Outgoing]:
        """Publish from the backend (telemetry, alerts): EVENTs to every subscriber but `exclude`.

        Raises ValueError for an invalid topic and PayloadTooLargeError when the EVENT would
        exceed MAX_MESSAGE_BYTES.
        """
        if not valid_uri(topic):
            raise ValueError(f"invalid topic URI {topic!r}")
        events = self._events(self._new_id(), topic, args, kwargs, {}, exclude)
        if events is None:
            raise PayloadTooLargeError(f"an EVENT on {topic} would exceed {MAX_MESSAGE_BYTES} bytes")
        return events

    def call_for_command(
        self, command_id: str, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout_ms: int
    ) -> list[Outgoing] | None:
        """Invoke a procedure for an HTTP command: the INVOCATION to its callee, or None when no
        callee is registered (the command stays queued). The outcome goes to the command record
        (invoked, then done / failed / timeout). [] when the command is no longer queued or the
        INVOCATION would be too large (the command is then failed)."""
        if not valid_uri(procedure):
            raise ValueError(f"invalid procedure URI {procedure!r}")
        registration = self._store.registration(procedure)
        if registration is None:
            return None
        details: dict[str, Any] = {}
        if self._too_large(
            [Code.INVOCATION, MAX_ID, registration.registration_id, details, *payload_tail(args, kwargs)]
        ):
            self._store.mark_command(
                command_id, "failed", error=_error_doc(PAYLOAD_SIZE_EXCEEDED, "arguments too large")
            )
            return []
        invocation_id = self._store.next_request_id(registration.connection_id)
        if invocation_id is None:
            return None
        call = PendingCall(
            key=call_key(registration.connection_id, invocation_id),
            callee_connection=registration.connection_id,
            invocation_id=invocation_id,
            caller_connection=None,
            caller_request_id=None,
            command_id=command_id,
            deadline_ms=self._clock() + (timeout_ms if timeout_ms > 0 else self._default_timeout),
            procedure=procedure,
        )
        self._store.put_call(call)
        if not self._store.mark_command(command_id, "invoked"):
            self._store.take_call(call.key)
            return []
        self._schedule(call)
        message = [Code.INVOCATION, invocation_id, registration.registration_id, details, *payload_tail(args, kwargs)]
        return [Outgoing(registration.connection_id, message)]

    # -- session establishment ----------------------------------------------------------------

    def _hello(self, connection_id: str, msg: Incoming) -> list[Outgoing]:
        """HELLO -> CHALLENGE("ticket") (BP "HELLO", AP "Ticket-based Authentication")."""
        if msg.uri != REALM:
            return self._abort(connection_id, NO_SUCH_REALM, f"no realm {msg.uri!r}; use {REALM!r}", cleanup=False)
        roles = msg.options.get("roles")
        if not isinstance(roles, dict) or not _CLIENT_ROLES & roles.keys():
            raise ProtocolViolation("HELLO.Details.roles must announce at least one client role")
        methods = msg.options.get("authmethods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ProtocolViolation("HELLO.Details.authmethods must be a list of strings")
        if "ticket" not in methods:
            return self._abort(
                connection_id, NO_AUTH_METHOD, "this router authenticates with 'ticket' only", cleanup=False
            )
        authid = msg.options.get("authid")
        if authid is not None and not isinstance(authid, str):
            raise ProtocolViolation("HELLO.Details.authid must be a string")
        self._store.put_session(Session(connection_id, CHALLENGING, requested_authid=authid))
        return [Outgoing(connection_id, [Code.CHALLENGE, "ticket", {}])]

    def _authenticate(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """AUTHENTICATE(ticket) -> WELCOME or ABORT (AP "Ticket-based Authentication").

        The ticket is a device or admin bearer token. An authid given in HELLO must be the one
        the ticket belongs to (the device id, or the admin's authid).
        """
        conn = session.connection_id
        try:
            identity = self._verify(msg.signature)
        except UnauthorizedError:
            return self._abort(conn, AUTHENTICATION_FAILED, "invalid ticket")
        except ForbiddenError as e:  # a disabled device
            return self._abort(conn, NOT_AUTHORIZED, e.message)
        except StorageUnavailableError:
            return [Outgoing(conn, _abort_message(AUTHORIZATION_FAILED, "try again later"), close=True)]
        if session.requested_authid is not None and session.requested_authid != identity.authid:
            return self._abort(conn, AUTHENTICATION_FAILED, "the ticket does not belong to the authid given")
        session_id = self._new_id()
        self._store.put_session(Session(conn, ESTABLISHED, session_id, session.requested_authid, identity))
        details = {
            "authid": identity.authid,
            "authrole": identity.role,
            "authmethod": "ticket",
            "authprovider": AUTHPROVIDER,
            "realm": REALM,
            "agent": AGENT,
            "roles": {
                "broker": {
                    "features": {
                        "publisher_exclusion": True,
                        "publisher_identification": True,
                        "pattern_based_subscription": self._prefix,
                    }
                },
                "dealer": {"features": {"call_timeout": True, "caller_identification": True}},
            },
        }
        return [Outgoing(conn, [Code.WELCOME, session_id, details])]

    def _abort(self, connection_id: str, reason: str, text: str, *, cleanup: bool = True) -> list[Outgoing]:
        """ABORT and close; a session's resources are disposed of first (BP "Protocol errors")."""
        out = self._end_session(connection_id) if cleanup else []
        return [*out, Outgoing(connection_id, _abort_message(reason, text), close=True)]

    def _end_session(self, connection_id: str) -> list[Outgoing]:
        out: list[Outgoing] = []
        for call in self._store.drop_connection(connection_id):
            if call.caller_connection == connection_id:  # it called itself: nobody left to tell
                continue
            out += self._fail_call(call, NO_AVAILABLE_CALLEE, f"the callee of {call.procedure} left")
        return out

    # -- broker -------------------------------------------------------------------------------

    def _subscribe(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """SUBSCRIBE -> SUBSCRIBED or ERROR (BP "Subscribing and Unsubscribing")."""
        conn, req = session.connection_id, msg.request
        match = _option(msg.options, "match", str, "exact")
        if not valid_uri(msg.uri):
            return [Outgoing(conn, error_message(Code.SUBSCRIBE, req, INVALID_URI, "invalid topic URI"))]
        if match not in ("exact", "prefix") or (match == "prefix" and not self._prefix):
            return [
                Outgoing(
                    conn, error_message(Code.SUBSCRIBE, req, OPTION_NOT_ALLOWED, f"match {match!r} is not supported")
                )
            ]
        if match == "prefix" and msg.uri.count(".") >= MAX_PREFIX_COMPONENTS:
            text = f"prefix subscriptions may have at most {MAX_PREFIX_COMPONENTS} components"
            return [Outgoing(conn, error_message(Code.SUBSCRIBE, req, OPTION_NOT_ALLOWED, text))]
        if not _identity(session).may_use(msg.uri):
            return [Outgoing(conn, error_message(Code.SUBSCRIBE, req, NOT_AUTHORIZED, "not your namespace"))]
        subscription_id = self._store.add_subscription(Subscription(conn, self._new_id(), msg.uri, match))
        return [Outgoing(conn, [Code.SUBSCRIBED, req, subscription_id])]

    def _unsubscribe(self, session: Session, msg: Incoming) -> list[Outgoing]:
        conn, req = session.connection_id, msg.request
        if not self._store.remove_subscription(conn, msg.ref):
            return [Outgoing(conn, error_message(Code.UNSUBSCRIBE, req, NO_SUCH_SUBSCRIPTION))]
        return [Outgoing(conn, [Code.UNSUBSCRIBED, req])]

    def _publish(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """PUBLISH -> EVENTs, and PUBLISHED or ERROR only when `acknowledge` is set (BP
        "Publishing and Events": "By default, publications are unacknowledged, and the Broker
        will not respond"). `exclude_me` defaults to true (AP "Publisher Exclusion");
        `disclose_me` adds the publisher to EVENT.Details (AP "Publisher Identification")."""
        conn, req = session.connection_id, msg.request
        acknowledge = _option(msg.options, "acknowledge", bool, False)
        exclude_me = _option(msg.options, "exclude_me", bool, True)
        disclose_me = _option(msg.options, "disclose_me", bool, False)
        identity = _identity(session)

        def refuse(uri: str, text: str) -> list[Outgoing]:
            return [Outgoing(conn, error_message(Code.PUBLISH, req, uri, text))] if acknowledge else []

        if not valid_uri(msg.uri) or msg.uri.startswith("wamp."):
            return refuse(INVALID_URI, "invalid topic URI")
        if not identity.may_use(msg.uri):
            return refuse(NOT_AUTHORIZED, "not your namespace")
        details: dict[str, Any] = {}
        if disclose_me:
            details = {
                "publisher": session.session_id,
                "publisher_authid": identity.authid,
                "publisher_authrole": identity.role,
            }
        publication = self._new_id()
        events = self._events(publication, msg.uri, msg.args, msg.kwargs, details, conn if exclude_me else None)
        if events is None:
            return refuse(PAYLOAD_SIZE_EXCEEDED, f"the EVENT would exceed {MAX_MESSAGE_BYTES} bytes")
        if acknowledge:
            events.append(Outgoing(conn, [Code.PUBLISHED, req, publication]))
        return events

    def _events(
        self,
        publication: int,
        topic: str,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        details: dict[str, Any],
        exclude: str | None,
    ) -> list[Outgoing] | None:
        """EVENTs for every matching subscription but those of `exclude`; None if too large."""
        tail = payload_tail(args, kwargs)
        widest = {**details, "topic": topic} if self._prefix else details
        if self._too_large([Code.EVENT, MAX_ID, MAX_ID, widest, *tail]):
            return None
        out = []
        for sub in self._store.subscribers(topic, include_prefix=self._prefix):
            if sub.connection_id == exclude or not sub.matches(topic):
                continue
            # AP "Pattern-based Subscription": the concrete topic for pattern subscriptions.
            event_details = {**details, "topic": topic} if sub.match != "exact" else details
            out.append(
                Outgoing(sub.connection_id, [Code.EVENT, sub.subscription_id, publication, event_details, *tail])
            )
        return out

    # -- dealer -------------------------------------------------------------------------------

    def _register(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """REGISTER -> REGISTERED or ERROR (BP "Registering and Unregistering"): one callee per
        procedure; `wamp.` URIs are reserved (BP "URIs")."""
        conn, req = session.connection_id, msg.request
        if not valid_uri(msg.uri) or msg.uri.startswith("wamp."):
            return [Outgoing(conn, error_message(Code.REGISTER, req, INVALID_URI, "invalid procedure URI"))]
        if (
            _option(msg.options, "match", str, "exact") != "exact"
            or _option(msg.options, "invoke", str, "single") != "single"
        ):
            return [
                Outgoing(
                    conn, error_message(Code.REGISTER, req, OPTION_NOT_ALLOWED, "only exact, single registrations")
                )
            ]
        if not _identity(session).may_use(msg.uri):
            return [Outgoing(conn, error_message(Code.REGISTER, req, NOT_AUTHORIZED, "not your namespace"))]
        registration_id = self._new_id()
        if not self._store.add_registration(Registration(conn, registration_id, msg.uri)):
            return [Outgoing(conn, error_message(Code.REGISTER, req, PROCEDURE_ALREADY_EXISTS))]
        return [Outgoing(conn, [Code.REGISTERED, req, registration_id])]

    def _unregister(self, session: Session, msg: Incoming) -> list[Outgoing]:
        conn, req = session.connection_id, msg.request
        if not self._store.remove_registration(conn, msg.ref):
            return [Outgoing(conn, error_message(Code.UNREGISTER, req, NO_SUCH_REGISTRATION))]
        return [Outgoing(conn, [Code.UNREGISTERED, req])]

    def _call(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """CALL -> INVOCATION to the callee, or ERROR (BP "Calling and Invocations").

        The INVOCATION's request id is the next in the callee session's router-to-client
        sequence (BP "IDs"). The call is stored with its deadline and a timeout scheduled
        (AP "Call Timeouts"); `disclose_me` adds the caller to INVOCATION.Details (AP
        "Caller Identification").
        """
        conn, req = session.connection_id, msg.request
        timeout = _option(msg.options, "timeout", int, 0)
        disclose_me = _option(msg.options, "disclose_me", bool, False)
        if timeout < 0:
            raise ProtocolViolation("option 'timeout' must not be negative")
        identity = _identity(session)
        if not valid_uri(msg.uri):
            return [Outgoing(conn, error_message(Code.CALL, req, INVALID_URI, "invalid procedure URI"))]
        if not identity.may_use(msg.uri):
            return [Outgoing(conn, error_message(Code.CALL, req, NOT_AUTHORIZED, "not your namespace"))]
        registration = self._store.registration(msg.uri)
        if registration is None:
            return [Outgoing(conn, error_message(Code.CALL, req, NO_SUCH_PROCEDURE, f"no callee for {msg.uri}"))]
        details: dict[str, Any] = {}
        if disclose_me:
            details = {"caller": session.session_id, "caller_authid": identity.authid, "caller_authrole": identity.role}
        tail = payload_tail(msg.args, msg.kwargs)
        if self._too_large([Code.INVOCATION, MAX_ID, registration.registration_id, details, *tail]):
            text = f"the INVOCATION would exceed {MAX_MESSAGE_BYTES} bytes"
            return [Outgoing(conn, error_message(Code.CALL, req, PAYLOAD_SIZE_EXCEEDED, text))]
        invocation_id = self._store.next_request_id(registration.connection_id)
        if invocation_id is None:  # a registration outliving its session
            return [Outgoing(conn, error_message(Code.CALL, req, NO_SUCH_PROCEDURE, f"no callee for {msg.uri}"))]
        call = PendingCall(
            key=call_key(registration.connection_id, invocation_id),
            callee_connection=registration.connection_id,
            invocation_id=invocation_id,
            caller_connection=conn,
            caller_request_id=req,
            command_id=None,
            deadline_ms=self._clock() + (timeout or self._default_timeout),
            procedure=msg.uri,
        )
        self._store.put_call(call)
        self._schedule(call)
        invocation = [Code.INVOCATION, invocation_id, registration.registration_id, details, *tail]
        return [Outgoing(registration.connection_id, invocation)]

    def _cancel(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """CANCEL (AP "Call Canceling"), honoured as mode `skip`: the caller gets ERROR
        `wamp.error.canceled` at once and the callee's eventual answer is dropped. Not announced,
        but clients cancel calls (e.g. on a local timeout) without asking, so it is not a violation."""
        mode = _option(msg.options, "mode", str, "skip")
        if mode not in _CANCEL_MODES:
            raise ProtocolViolation(f"unknown cancel mode {mode!r}")
        call = self._store.take_call_by_caller(session.connection_id, msg.request)
        if call is None:
            return []
        return [
            Outgoing(session.connection_id, error_message(Code.CALL, msg.request, CANCELED, "canceled by the caller"))
        ]

    def _yield(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """YIELD -> RESULT to the caller, or the command record (BP "YIELD", "RESULT"). A YIELD
        for a call no longer pending (timed out, canceled, caller gone) is ignored."""
        call = self._store.take_call(call_key(session.connection_id, msg.request))
        if call is None:
            return []
        if call.command_id is not None:
            result = command_result(msg.args or [], msg.kwargs or {})
            self._store.mark_command(call.command_id, "done", result=result)
            return []
        if call.caller_connection is None or call.caller_request_id is None:
            return []
        result_message = [Code.RESULT, call.caller_request_id, {}, *payload_tail(msg.args, msg.kwargs)]
        if self._too_large(result_message):
            text = f"the RESULT would exceed {MAX_MESSAGE_BYTES} bytes"
            result_message = error_message(Code.CALL, call.caller_request_id, PAYLOAD_SIZE_EXCEEDED, text)
        return [Outgoing(call.caller_connection, result_message)]

    def _callee_error(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """ERROR(INVOCATION) from a callee -> ERROR(CALL) to the caller with the same error URI
        and payload (BP "Invocation ERROR", "Call ERROR"). Clients may send ERROR only for
        INVOCATION (BP "Protocol errors": "ERROR message with invalid REQUEST.Type")."""
        if msg.ref != Code.INVOCATION:
            raise ProtocolViolation("clients send ERROR only for INVOCATION")
        if not valid_uri(msg.uri):
            raise ProtocolViolation("ERROR.Error must be a URI")
        call = self._store.take_call(call_key(session.connection_id, msg.request))
        if call is None:
            return []
        if call.command_id is not None:
            self._store.mark_command(call.command_id, "failed", error=_error_doc(msg.uri, None, msg.args, msg.kwargs))
            return []
        if call.caller_connection is None or call.caller_request_id is None:
            return []
        forwarded = [Code.ERROR, Code.CALL, call.caller_request_id, {}, msg.uri, *payload_tail(msg.args, msg.kwargs)]
        if self._too_large(forwarded):
            text = f"the callee's error ({msg.uri}) would exceed {MAX_MESSAGE_BYTES} bytes"
            forwarded = error_message(Code.CALL, call.caller_request_id, PAYLOAD_SIZE_EXCEEDED, text)
        return [Outgoing(call.caller_connection, forwarded)]

    def _fail_call(self, call: PendingCall, uri: str, text: str) -> list[Outgoing]:
        """A taken call that will get no answer: ERROR to its caller, or the command record."""
        if call.command_id is not None:
            status = "timeout" if uri == TIMEOUT else "failed"
            self._store.mark_command(call.command_id, status, error=_error_doc(uri, text))
            return []
        if call.caller_connection is None or call.caller_request_id is None:
            return []
        return [Outgoing(call.caller_connection, error_message(Code.CALL, call.caller_request_id, uri, text))]

    @staticmethod
    def _too_large(message: list[Any]) -> bool:
        return encoded_size(message) > MAX_MESSAGE_BYTES


def _identity(session: Session) -> Identity:
    if session.identity is None:  # an established session always has one
        raise ProtocolViolation("session without identity")
    return session.identity


def _abort_message(reason: str, text: str) -> list[Any]:
    return [Code.ABORT, {"message": text}, reason]


def _error_doc(
    uri: str, text: str | None, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A command's error as stored: the WAMP error URI, a message, and the callee's payload."""
    doc: dict[str, Any] = {"error": uri}
    if text:
        doc["message"] = text
    if args:
        doc["args"] = args
    if kwargs:
        doc["kwargs"] = kwargs
    return doc
