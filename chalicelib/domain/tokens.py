"""Bearer tokens: generated with 256 random bits, stored only as SHA-256 hashes.

A device token names its device: `iotd_<device id, base64url>.<secret>`, so authenticating it
is one read of the device by key. Both parts are base64url without padding, which holds no
"." and nothing any URL encoder escapes (an id's ":" would become %3A in a client-quoted
ThingsBoard path `/api/v1/{token}/...`, and API Gateway does not decode path parameters), so
the token is the same in a path, a header and a query. Tokens issued before ids were carried
(`iotd_<secret>`, no ".") are still resolved by hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from chalicelib.domain.devices import ID_PATTERN

DEVICE_TOKEN_PREFIX = "iotd_"
ADMIN_TOKEN_PREFIX = "iota_"
SECRET_BYTES = 32
# token_urlsafe(32): 43 base64url characters, no padding.
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{2,86}$")  # a device id of 1-64 characters, base64url
MAX_TOKEN_CHARS = 512  # longer is no token (the Authorization header and the ThingsBoard path)


class MalformedTokenError(ValueError):
    """A device token of the id-carrying shape whose id or secret cannot be one we issued."""


def _name(device_id: str) -> str:
    return base64.urlsafe_b64encode(device_id.encode()).rstrip(b"=").decode()


def new_device_token(device_id: str) -> str:
    """A fresh token of a device (shown to the caller once, never stored)."""
    if not ID_PATTERN.fullmatch(device_id):
        raise ValueError(f"not a device id: {device_id!r}")
    return f"{DEVICE_TOKEN_PREFIX}{_name(device_id)}.{secrets.token_urlsafe(SECRET_BYTES)}"


def token_device_id(token: str) -> str | None:
    """The device an id-carrying device token names; None for any other token (old device
    tokens, admin tokens). MalformedTokenError if it has the shape but not a valid id or secret."""
    if not token.startswith(DEVICE_TOKEN_PREFIX) or "." not in token:
        return None
    name, _, secret = token[len(DEVICE_TOKEN_PREFIX) :].partition(".")
    if len(token) > MAX_TOKEN_CHARS or not NAME_PATTERN.fullmatch(name) or not SECRET_PATTERN.fullmatch(secret):
        raise MalformedTokenError("not a device token")
    try:
        device_id = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedTokenError("not a device token") from None
    # The canonical encoding only: one id, one spelling (the decoder ignores stray low bits).
    if not ID_PATTERN.fullmatch(device_id) or _name(device_id) != name:
        raise MalformedTokenError("not a device token")
    return device_id


def new_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token: lowercase hex SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two token hashes."""
    return hmac.compare_digest(a.encode(), b.encode())
