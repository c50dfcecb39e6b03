"""WAMP's JSON serialization: a client's text frame to a shape-checked `Incoming`, and the router's
answers (`Outgoing`) to text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalicelib.domain.wamp.protocol import MAX_ID, MAX_MESSAGE_BYTES, Code


def encode(message: Sequence[Any]) -> str:
    """A message as the text frame to send (compact JSON, UTF-8 as is)."""
    return json.dumps(list(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encoded_size(message: Sequence[Any]) -> int:
    """Bytes a message takes on the wire."""
    return len(encode(message).encode())


def too_large(message: Sequence[Any]) -> bool:
    """Whether a message would exceed the transport's limit (MAX_MESSAGE_BYTES)."""
    return encoded_size(message) > MAX_MESSAGE_BYTES


T = TypeVar("T")


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


_KIND_NAMES: dict[type, str] = {dict: "a dict", str: "a string"}


def _expect(kind: type[T], value: Any, what: str) -> T:
    """`value`, checked to be of `kind` (dict or str); else the message's `what` breaks the protocol."""
    if not isinstance(value, kind):
        raise ProtocolViolation(f"{what} must be {_KIND_NAMES[kind]}")
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
        return Incoming(code, uri=_expect(str, msg[1], "HELLO.Realm"), options=_expect(dict, msg[2], "HELLO.Details"))
    if code is Code.AUTHENTICATE:
        return Incoming(code, signature=_expect(str, msg[1], "Signature"), options=_expect(dict, msg[2], "Extra"))
    if code in (Code.ABORT, Code.GOODBYE):
        return Incoming(
            code, options=_expect(dict, msg[1], f"{name}.Details"), uri=_expect(str, msg[2], f"{name}.Reason")
        )
    if code is Code.ERROR:
        if type(msg[1]) is not int:
            raise ProtocolViolation("ERROR.REQUEST.Type must be an integer")
        args, kwargs = _payload(msg, 5, name)
        return Incoming(
            code,
            ref=msg[1],
            request=_id(msg[2], "ERROR.Request"),
            options=_expect(dict, msg[3], "ERROR.Details"),
            uri=_expect(str, msg[4], "ERROR.Error"),
            args=args,
            kwargs=kwargs,
        )
    request = _id(msg[1], f"{name}.Request")
    if code in (Code.UNSUBSCRIBE, Code.UNREGISTER):
        return Incoming(code, request=request, ref=_id(msg[2], f"{name} id"))
    options = _expect(dict, msg[2], f"{name}.Options")
    if code in (Code.CANCEL, Code.YIELD):
        args, kwargs = _payload(msg, 3, name)
        return Incoming(code, request=request, options=options, args=args, kwargs=kwargs)
    args, kwargs = _payload(msg, 4, name)
    return Incoming(
        code, request=request, options=options, uri=_expect(str, msg[3], f"{name} URI"), args=args, kwargs=kwargs
    )


def option(options: dict[str, Any], key: str, kind: type, default: Any) -> Any:
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


@dataclass(frozen=True)
class Outgoing:
    """One message to post to a connection; `close` means: then close that connection."""

    connection_id: str
    message: list[Any]
    close: bool = False

    @property
    def text(self) -> str:
        return encode(self.message)


def refusal(connection_id: str, request: Incoming, uri: str, text: str | None = None) -> list[Outgoing]:
    """The ERROR answering a client's request (same type and request id), as the one message to post."""
    return [Outgoing(connection_id, error_message(request.code, request.request, uri, text))]


def removal_answer(connection_id: str, request: Incoming, removed: bool, done: Code, missing: str) -> list[Outgoing]:
    """UNSUBSCRIBE's or UNREGISTER's answer: `done` (UNSUBSCRIBED, UNREGISTERED) when the session
    held what it names and it is gone, else ERROR `missing`."""
    if not removed:
        return refusal(connection_id, request, missing)
    return [Outgoing(connection_id, [done, request.request])]
