"""The WAMP dealer: REGISTER, UNREGISTER, CALL, CANCEL, YIELD and a callee's ERROR, the calls
made for HTTP commands, and what becomes of a call nobody answers (BP "Remote Procedure Calls",
incl. "Callee Leaving"; AP "Call Timeouts" (dealer-initiated), "Caller Identification",
"Call Canceling" (mode `skip` only, tolerated but not announced))."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.domain.wamp.codec import (
    Incoming,
    Outgoing,
    ProtocolViolation,
    error_message,
    option,
    payload_tail,
    refusal,
    removal_answer,
    too_large,
)
from chalicelib.domain.wamp.protocol import (
    CANCELED,
    INVALID_URI,
    MAX_ID,
    MAX_MESSAGE_BYTES,
    NO_AVAILABLE_CALLEE,
    NO_SUCH_PROCEDURE,
    NO_SUCH_REGISTRATION,
    NOT_AUTHORIZED,
    OPTION_NOT_ALLOWED,
    PAYLOAD_SIZE_EXCEEDED,
    PROCEDURE_ALREADY_EXISTS,
    TIMEOUT,
    Code,
    valid_uri,
)
from chalicelib.domain.wamp.store import (
    PendingCall,
    Registration,
    RouterRole,
    RouterStore,
    Session,
    call_key,
    identity_of,
)

# The modes of AP "Call Canceling"; every one is treated as `skip` (see `on_cancel`).
_CANCEL_MODES = frozenset({"skip", "kill", "killnowait"})


def command_result(args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A YIELD as a command's result, as autobahn callers see one: a single positional
    result is the value itself; anything else is {"args", "kwargs"}."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args and not kwargs:
        return None
    return {"args": args, "kwargs": kwargs}


class Dealer(RouterRole):
    """Registrations and calls over the store; every method returns the messages to post.

    Each call is stored with its deadline and `schedule_timeout` is asked to wake
    `on_call_timeout` then, because a serverless router must bound the state it keeps.
    """

    def __init__(
        self,
        store: RouterStore,
        new_id: Callable[[], int],
        clock_ms: Callable[[], int],
        *,
        default_call_timeout_ms: int,
        schedule_timeout: Callable[[PendingCall], None],
    ) -> None:
        super().__init__(store, new_id)
        self._clock = clock_ms
        self._default_timeout = default_call_timeout_ms
        self._schedule = schedule_timeout

    @property
    def features(self) -> dict[str, bool]:
        """The dealer's features as WELCOME announces them."""
        return {"call_timeout": True, "caller_identification": True}

    # -- server-side entry points -------------------------------------------------------------

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
        tail = payload_tail(args, kwargs)
        if too_large([Code.INVOCATION, MAX_ID, registration.registration_id, details, *tail]):
            self._store.mark_command(
                command_id, "failed", error=_error_doc(PAYLOAD_SIZE_EXCEEDED, "arguments too large")
            )
            return []
        invocation_id = self._store.next_request_id(registration.connection_id)
        if invocation_id is None:
            return None
        call = self._pending_call(registration, invocation_id, procedure, timeout_ms, command_id=command_id)
        self._store.put_call(call)
        if not self._store.mark_command(command_id, "invoked"):
            self._store.take_call(call.key)
            return []
        self._schedule(call)
        message = [Code.INVOCATION, invocation_id, registration.registration_id, details, *tail]
        return [Outgoing(registration.connection_id, message)]

    def on_call_timeout(self, key: str) -> list[Outgoing]:
        """A call's deadline passed: if still pending, answer the caller with `wamp.error.timeout`
        (AP "Call Timeouts", dealer-initiated; INTERRUPT is not sent: the Basic Profile callee
        has no cancellation, so mode `skip` applies and a late YIELD is ignored)."""
        call = self._store.get_call(key)
        if call is None:
            return []
        if self._clock() < call.deadline_ms:
            self._schedule(call)  # woke early: check again later
            return []
        call = self._store.take_call(key)
        if call is None:
            return []
        return self._fail_call(call, TIMEOUT, f"no answer from the callee within the call's timeout ({call.procedure})")

    def connection_left(self, connection_id: str, dropped: Iterable[PendingCall]) -> list[Outgoing]:
        """The calls a departed session left pending (BP "Callee Leaving"): each caller gets
        `wamp.error.no_available_callee`, unless the session called itself (nobody left to tell)."""
        out: list[Outgoing] = []
        for call in dropped:
            if call.caller_connection == connection_id:
                continue
            out += self._fail_call(call, NO_AVAILABLE_CALLEE, f"the callee of {call.procedure} left")
        return out

    # -- client messages ----------------------------------------------------------------------

    def on_register(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """REGISTER -> REGISTERED or ERROR (BP "Registering and Unregistering"): one callee per
        procedure; `wamp.` URIs are reserved (BP "URIs")."""
        conn = session.connection_id
        if not valid_uri(msg.uri) or msg.uri.startswith("wamp."):
            return refusal(conn, msg, INVALID_URI, "invalid procedure URI")
        if (
            option(msg.options, "match", str, "exact") != "exact"
            or option(msg.options, "invoke", str, "single") != "single"
        ):
            return refusal(conn, msg, OPTION_NOT_ALLOWED, "only exact, single registrations")
        if not identity_of(session).may_use(msg.uri):
            return refusal(conn, msg, NOT_AUTHORIZED, "not your namespace")
        registration_id = self._new_id()
        if not self._store.add_registration(Registration(conn, registration_id, msg.uri)):
            return refusal(conn, msg, PROCEDURE_ALREADY_EXISTS)
        return [Outgoing(conn, [Code.REGISTERED, msg.request, registration_id])]

    def on_unregister(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """UNREGISTER -> UNREGISTERED, or ERROR for a registration this session does not hold."""
        removed = self._store.remove_registration(session.connection_id, msg.ref)
        return removal_answer(session.connection_id, msg, removed, Code.UNREGISTERED, NO_SUCH_REGISTRATION)

    def on_call(self, session: Session, msg: Incoming) -> list[Outgoing]:
        """CALL -> INVOCATION to the callee, or ERROR (BP "Calling and Invocations").

        The INVOCATION's request id is the next in the callee session's router-to-client
        sequence (BP "IDs"). The call is stored with its deadline and a timeout scheduled
        (AP "Call Timeouts"); `disclose_me` adds the caller to INVOCATION.Details (AP
        "Caller Identification").
        """
        conn = session.connection_id
        timeout = option(msg.options, "timeout", int, 0)
        disclose_me = option(msg.options, "disclose_me", bool, False)
        if timeout < 0:
            raise ProtocolViolation("option 'timeout' must not be negative")
        identity = identity_of(session)
        if not valid_uri(msg.uri):
            return refusal(conn, msg, INVALID_URI, "invalid procedure URI")
        if not identity.may_use(msg.uri):
            return refusal(conn, msg, NOT_AUTHORIZED, "not your namespace")
        registration = self._store.registration(msg.uri)
        if registration is None:
            return refusal(conn, msg, NO_SUCH_PROCEDURE, f"no callee for {msg.uri}")
        details: dict[str, Any] = {}
        if disclose_me:
            details = {"caller": session.session_id, "caller_authid": identity.authid, "caller_authrole": identity.role}
        tail = payload_tail(msg.args, msg.kwargs)
        if too_large([Code.INVOCATION, MAX_ID, registration.registration_id, details, *tail]):
            return refusal(conn, msg, PAYLOAD_SIZE_EXCEEDED, f"the INVOCATION would exceed {MAX_MESSAGE_BYTES} bytes")
        invocation_id = self._store.next_request_id(registration.connection_id)
        if invocation_id is None:  # a registration outliving its session
            return refusal(conn, msg, NO_SUCH_PROCEDURE, f"no callee for {msg.uri}")
        call = self._pending_call(
            registration, invocation_id, msg.uri, timeout, caller_connection=conn, caller_request_id=msg.request
        )
        self._store.put_call(call)
        self._schedule(call)
        invocation = [Code.INVOCATION, invocation_id, registration.registration_id, details, *tail]
        return [Outgoing(registration.connection_id, invocation)]

    def on_cancel(self, session: Session, msg: Incoming) -> list[Outgoing]:
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

    def on_yield(self, session: Session, msg: Incoming) -> list[Outgoing]:
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
        if too_large(result_message):
            text = f"the RESULT would exceed {MAX_MESSAGE_BYTES} bytes"
            result_message = error_message(Code.CALL, call.caller_request_id, PAYLOAD_SIZE_EXCEEDED, text)
        return [Outgoing(call.caller_connection, result_message)]

    def on_callee_error(self, session: Session, msg: Incoming) -> list[Outgoing]:
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
        if too_large(forwarded):
            text = f"the callee's error ({msg.uri}) would exceed {MAX_MESSAGE_BYTES} bytes"
            forwarded = error_message(Code.CALL, call.caller_request_id, PAYLOAD_SIZE_EXCEEDED, text)
        return [Outgoing(call.caller_connection, forwarded)]

    # -- helpers ------------------------------------------------------------------------------

    def _pending_call(
        self,
        registration: Registration,
        invocation_id: int,
        procedure: str,
        timeout_ms: int,
        *,
        caller_connection: str | None = None,
        caller_request_id: int | None = None,
        command_id: str | None = None,
    ) -> PendingCall:
        """The record of an INVOCATION about to be sent; a timeout of 0 means the default."""
        return PendingCall(
            key=call_key(registration.connection_id, invocation_id),
            callee_connection=registration.connection_id,
            invocation_id=invocation_id,
            caller_connection=caller_connection,
            caller_request_id=caller_request_id,
            command_id=command_id,
            deadline_ms=self._clock() + (timeout_ms if timeout_ms > 0 else self._default_timeout),
            procedure=procedure,
        )

    def _fail_call(self, call: PendingCall, uri: str, text: str) -> list[Outgoing]:
        """A taken call that will get no answer: ERROR to its caller, or the command record."""
        if call.command_id is not None:
            status = "timeout" if uri == TIMEOUT else "failed"
            self._store.mark_command(call.command_id, status, error=_error_doc(uri, text))
            return []
        if call.caller_connection is None or call.caller_request_id is None:
            return []
        return [Outgoing(call.caller_connection, error_message(Code.CALL, call.caller_request_id, uri, text))]


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
