"""Who is calling: bearer tokens resolved to principals (with a short-lived cache), and WAMP tickets.

A WAMP ticket is either a bearer token (a device's or an admin's) or a dashboard page's
short-lived ticket `iotw1.<expires ms>.<session id>.<mac>`, signed with the dashboard's
session key; `TicketCheck` turns either into the router's `Identity`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chalicelib import logs
from chalicelib.clock import now_ms
from chalicelib.domain.tokens import (
    DEVICE_TOKEN_PREFIX,
    MAX_TOKEN_CHARS,
    MalformedTokenError,
    hash_token,
    same_hash,
    token_device_id,
)
from chalicelib.errors import DeviceDisabledError, ForbiddenError, UnauthorizedError

if TYPE_CHECKING:
    from chalicelib.domain.wamp.store import Identity

TICKET_PREFIX = "iotw1."
TICKET_TTL_MS = 60_000
# The authid of a session joined with a dashboard ticket (an admin view, not an admin token).
DASHBOARD_AUTHID = "dashboard"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an admin, or one device."""

    is_admin: bool
    device_id: str | None = None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ForbiddenError("this needs an admin token")

    def require_device_or_admin(self, device_id: str) -> None:
        """Admins read everything; a device reads only itself."""
        if not self.is_admin and self.device_id != device_id:
            raise ForbiddenError("a device may only access its own data")


ADMIN = Principal(is_admin=True)


class CredentialLike(Protocol):
    @property
    def device_id(self) -> str: ...
    @property
    def token_hash(self) -> str: ...
    @property
    def disabled(self) -> bool: ...


# token hash -> the device holding it (the hash index: old-format tokens, which name no device)
TokenLookup = Callable[[str], CredentialLike | None]
# (device id, consistent read?) -> the device's credential, None if there is no such device
DeviceLookup = Callable[[str, bool], CredentialLike | None]

DEFAULT_CACHE_TTL_SECONDS = 5.0  # config.Settings.auth_cache_ttl_seconds's default
# How long after a write an eventually consistent DynamoDB read may still return the item as it
# was: "usually within one second" (DynamoDB documents no hard bound).
EVENTUAL_READ_LAG_SECONDS = 1.0
# How long a rotated-out token, or one of a device disabled or deleted, may still be accepted by a
# warm process that is not the one that made the change (that one forgets at once): its cached
# answer, then one stale read. Documented in the README (Authentication).
REVOCATION_BOUND_SECONDS = DEFAULT_CACHE_TTL_SECONDS + EVENTUAL_READ_LAG_SECONDS


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or UnauthorizedError."""
    if not authorization:
        raise UnauthorizedError("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
    return token


class Authenticator:
    """Resolves tokens to principals.

    A device token names its device (domain.tokens): it is resolved with one eventually
    consistent read of that device (`device_lookup`), and accepted only if the stored hash is
    the hash of the whole token. Only a refusal is confirmed with a consistent read, so a device
    created, re-enabled or given a token a moment ago is never refused on a stale read. Old
    tokens, which name no device, go through the hash index (`lookup`).

    Answers are cached for `ttl_seconds` per token hash. Rotating, disabling or deleting a
    device calls `forget`, so this process sees the change at once; another warm process may
    accept the revoked token for at most its TTL plus DynamoDB's eventual-consistency lag:
    `revocation_bound_seconds` (REVOCATION_BOUND_SECONDS with the default TTL: 6 s).
    """

    def __init__(
        self,
        lookup: TokenLookup,
        admin_hashes: frozenset[str],
        ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        device_lookup: DeviceLookup | None = None,
    ) -> None:
        self._lookup = lookup
        self._device_lookup = device_lookup
        self._admin_hashes = admin_hashes
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        # token hash -> (expires at, device id or None for unknown, disabled)
        self._cache: dict[str, tuple[float, str | None, bool]] = {}

    @property
    def revocation_bound_seconds(self) -> float:
        """How long another warm process may still accept a token after it was revoked."""
        return self._ttl + EVENTUAL_READ_LAG_SECONDS

    def authenticate(self, token: str) -> Principal:
        token_hash = hash_token(token)
        if any(same_hash(token_hash, admin) for admin in self._admin_hashes):
            return ADMIN
        try:
            named = token_device_id(token)
        except MalformedTokenError:
            raise UnauthorizedError("unknown token") from None
        if named is None and not token.startswith(DEVICE_TOKEN_PREFIX):
            raise UnauthorizedError("unknown token")  # no device token ever had another shape: no read
        device_id, disabled = self._resolve(token_hash, named)
        if device_id is None:
            raise UnauthorizedError("unknown token")
        logs.bind_device(device_id)  # this invocation's log lines name the device
        if disabled:
            raise DeviceDisabledError(f"device {device_id!r} is disabled")
        return Principal(is_admin=False, device_id=device_id)

    def _resolve(self, token_hash: str, named: str | None) -> tuple[str | None, bool]:
        now = self._clock()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        if named is not None and self._device_lookup is not None:
            found = self._read_device(named, token_hash)
        else:
            found = self._lookup(token_hash)
        if found is not None and same_hash(found.token_hash, token_hash):
            entry: tuple[float, str | None, bool] = (now + self._ttl, found.device_id, found.disabled)
        else:
            # An unknown device and a wrong secret get the same answer: no oracle of which ids exist.
            entry = (now + self._ttl, None, False)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[token_hash] = entry
        return entry[1], entry[2]

    def _read_device(self, device_id: str, token_hash: str) -> CredentialLike | None:
        assert self._device_lookup is not None
        found = self._device_lookup(device_id, False)
        if found is not None and same_hash(found.token_hash, token_hash) and not found.disabled:
            return found
        # A refusal on a stale read would be cached for the TTL: confirm it with the latest write.
        return self._device_lookup(device_id, True)

    def forget(self, device_id: str) -> None:
        """Drop cached lookups of a device (after rotation, disable or delete)."""
        for key in [k for k, v in self._cache.items() if v[1] == device_id]:
            del self._cache[key]


# --- dashboard signatures and WAMP tickets ---------------------------------------------------------


@functools.cache  # one random key per process when none is configured: every reader must share it
def session_key(configured: str) -> bytes:
    """The dashboard's signing key: SHA-256 of SESSION_SECRET, or random bytes for this process only."""
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    return secrets.token_bytes(32)


def mac(key: bytes, purpose: str, text: str) -> str:
    """The MAC of `text` for one purpose (a purpose label keeps uses apart: no cookie passes for a ticket)."""
    digest = hmac.new(key, f"iotcloud-dashboard/{purpose}\n{text}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def same_mac(a: str, b: str) -> bool:
    """Constant-time comparison of two MACs."""
    return hmac.compare_digest(a.encode(), b.encode())


def sign_ticket(key: bytes, session_id: str, expires_ms: int) -> str:
    """A dashboard WAMP ticket for a session, valid until `expires_ms`."""
    body = f"{expires_ms}.{session_id}"
    return f"{TICKET_PREFIX}{body}.{mac(key, 'ticket', body)}"


def is_dashboard_ticket(token: str) -> bool:
    return token.startswith(TICKET_PREFIX)


def ticket_ok(key: bytes, ticket: str, now: int) -> bool:
    """Whether a dashboard ticket is well formed, signed with `key` and unexpired at `now` (ms)."""
    if not is_dashboard_ticket(ticket) or len(ticket) > 256:
        return False
    parts = ticket[len(TICKET_PREFIX) :].split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return False
    body = ".".join(parts[:2])
    return same_mac(parts[2], mac(key, "ticket", body)) and now < int(parts[0])


class TicketCheck:
    """The WAMP router's ticket check: a dashboard ticket is an admin view, a bearer token its principal."""

    def __init__(self, authenticator: Authenticator, key: bytes, clock: Callable[[], int] = now_ms) -> None:
        self._authenticator = authenticator
        self._key = key
        self._clock = clock

    def __call__(self, token: str) -> Identity:
        # Imported here: the API function's cold start (which builds an Authenticator) loads no WAMP code.
        from chalicelib.domain.wamp.store import Identity

        if is_dashboard_ticket(token):
            if not ticket_ok(self._key, token, self._clock()):
                raise UnauthorizedError("expired or invalid dashboard ticket")
            return Identity(role="admin", device_id=None, authid=DASHBOARD_AUTHID)
        principal = self._authenticator.authenticate(token)
        if principal.is_admin:
            return Identity(role="admin", device_id=None, authid="admin")
        assert principal.device_id is not None  # a principal is an admin or one device
        return Identity(role="device", device_id=principal.device_id, authid=principal.device_id)
