"""Bearer tokens: generated with 256 random bits, stored only as SHA-256 hashes.

A device token names its device: `iotd_<device id>.<secret>`, so authenticating it is one
read of the device by key. The secret is base64url, which holds no ".", while an id may: the
id is everything between the prefix and the last ".". The id alphabet (domain.devices) and
base64url need no escaping in a URL path (ThingsBoard's `/api/v1/{token}/...`) or a header.
Tokens issued before ids were carried (`iotd_<secret>`, no ".") are still resolved by hash.
"""

from __future__ import annotations

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
MAX_TOKEN_CHARS = 512  # longer is no token (the Authorization header and the ThingsBoard path)


class MalformedTokenError(ValueError):
    """A device token of the id-carrying shape whose id or secret cannot be one we issued."""


def new_device_token(device_id: str) -> str:
    """A fresh token of a device (shown to the caller once, never stored)."""
    if not ID_PATTERN.fullmatch(device_id):
        raise ValueError(f"not a device id: {device_id!r}")
    return f"{DEVICE_TOKEN_PREFIX}{device_id}.{secrets.token_urlsafe(SECRET_BYTES)}"


def token_device_id(token: str) -> str | None:
    """The device an id-carrying device token names; None for any other token (old device
    tokens, admin tokens). MalformedTokenError if it has the shape but not a valid id or secret."""
    if not token.startswith(DEVICE_TOKEN_PREFIX) or "." not in token:
        return None
    device_id, _, secret = token[len(DEVICE_TOKEN_PREFIX) :].rpartition(".")
    if len(token) > MAX_TOKEN_CHARS or not ID_PATTERN.fullmatch(device_id) or not SECRET_PATTERN.fullmatch(secret):
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
