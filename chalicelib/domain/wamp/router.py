"""The WAMP broker and dealer: sessions, publish/subscribe and calls, over a `RouterStore`.

The router does no I/O of its own: each entry point reads and writes state through the store,
draws ids from `new_id` and time from `clock_ms` (both injected, for the tests), and returns the
messages to post (`Outgoing`); the caller posts them and owns the transport."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.clock import now_ms
from chalicelib.domain.wamp.codec import (
    Incoming,
    ProtocolViolation,
    decode,
    encode,
    encoded_size,
    error_message,
    option,
    payload_tail,
)
from chalicelib.domain.wamp.protocol import (
    AGENT,
    AUTHENTICATION_FAILED,
    AUTHORIZATION_FAILED,
    AUTHPROVIDER,
    CANCELED,
    GOODBYE_AND_OUT,
    INVALID_URI,
    MAX_ID,
    MAX_MESSAGE_BYTES,
    MAX_PREFIX_COMPONENTS,
    NO_AUTH_METHOD,
    NO_AVAILABLE_CALLEE,
    NO_SUCH_PROCEDURE,
    NO_SUCH_REALM,
    NO_SUCH_REGISTRATION,
    NO_SUCH_SUBSCRIPTION,
    NOT_AUTHORIZED,
    OPTION_NOT_ALLOWED,
    PAYLOAD_SIZE_EXCEEDED,
    PROCEDURE_ALREADY_EXISTS,
    PROTOCOL_VIOLATION,
    REALM,
    SUBPROTOCOL,
    TIMEOUT,
    Code,
    random_id,
    valid_uri,
)
from chalicelib.domain.wamp.store import (
    CHALLENGING,
    ESTABLISHED,
    Identity,
    PendingCall,
    Registration,
    RouterStore,
    Session,
    Subscription,
    call_key,
)
from chalicelib.errors import (
    ForbiddenError,
    PayloadTooLargeError,
    StorageUnavailableError,
    UnauthorizedError,
)

TicketVerifier = Callable[[str], Identity]  # raises UnauthorizedError / DeviceDisabledError

# HELLO must announce one of these (BP "Client: Role and Feature Announcement").
_CLIENT_ROLES = frozenset({"publisher", "subscriber", "caller", "callee"})
# The modes of AP "Call Canceling"; every one is treated as `skip` (see `_cancel`).
_CANCEL_MODES = frozenset({"skip", "kill", "killnowait"})


def command_result(args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A YIELD as a command's result, as autobahn callers see one: a single positional
    result is the value itself; anything else is {"args", "kwargs"}."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args and not kwargs:
        return None
    return {"args": args, "kwargs": kwargs}


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
        match = option(msg.options, "match", str, "exact")
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
        acknowledge = option(msg.options, "acknowledge", bool, False)
        exclude_me = option(msg.options, "exclude_me", bool, True)
        disclose_me = option(msg.options, "disclose_me", bool, False)
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
            option(msg.options, "match", str, "exact") != "exact"
            or option(msg.options, "invoke", str, "single") != "single"
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
        timeout = option(msg.options, "timeout", int, 0)
        disclose_me = option(msg.options, "disclose_me", bool, False)
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
        mode = option(msg.options, "mode", str, "skip")
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
