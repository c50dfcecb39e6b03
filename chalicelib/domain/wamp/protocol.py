"""The WAMP vocabulary this router speaks: message codes, URIs, ids, and its limits."""

from __future__ import annotations

import re
import secrets
from enum import IntEnum

SUBPROTOCOL = "wamp.2.json"
REALM = "iotcloud"
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
MAX_ID = 2**53  # BP "IDs": every id is an integer in [1, 2^53]
MAX_URI_BYTES = 1000  # keeps every URI-derived DynamoDB key under its size limit
MAX_PREFIX_COMPONENTS = 10  # a prefix subscription may have at most this many dotted components
DEVICE_NAMESPACE = "iotcloud.device."
AUTHPROVIDER = "iotcloud"
AGENT = "iotcloud-router"


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

# BP "URIs", relaxed rule without empty components, plus: no control characters (they are not
# legal in RFC 3986 URIs, and excluding them keeps " " below every URI character in key order).
_LOOSE_URI = re.compile(r"^([^\s\.#]+\.)*([^\s\.#]+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
