"""Bearer tokens: generated with 256 random bits, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

DEVICE_TOKEN_PREFIX = "iotd_"
ADMIN_TOKEN_PREFIX = "iota_"


def new_device_token() -> str:
    """A fresh device token (shown to the caller once, never stored)."""
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: lowercase hex SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two token hashes."""
    return hmac.compare_digest(a.encode(), b.encode())
