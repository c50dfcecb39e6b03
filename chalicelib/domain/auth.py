"""Who is calling: bearer tokens resolved to principals, with a short-lived cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chalicelib import logs
from chalicelib.domain.tokens import hash_token, same_hash
from chalicelib.errors import DeviceDisabledError, ForbiddenError, UnauthorizedError


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


TokenLookup = Callable[[str], CredentialLike | None]


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or UnauthorizedError."""
    if not authorization:
        raise UnauthorizedError("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
    return token


class Authenticator:
    """Resolves tokens to principals.

    Device lookups are cached for `ttl_seconds` so a busy device costs no DynamoDB
    read per request. Rotating, disabling or deleting a device calls `forget` so the
    change is immediate in this process; other warm Lambda containers see it within
    the TTL.
    """

    def __init__(
        self,
        lookup: TokenLookup,
        admin_hashes: frozenset[str],
        ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._lookup = lookup
        self._admin_hashes = admin_hashes
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        # token hash -> (expires at, device id or None for unknown, disabled)
        self._cache: dict[str, tuple[float, str | None, bool]] = {}

    def authenticate(self, token: str) -> Principal:
        token_hash = hash_token(token)
        if any(same_hash(token_hash, admin) for admin in self._admin_hashes):
            return ADMIN
        device_id, disabled = self._resolve(token_hash)
        if device_id is None:
            raise UnauthorizedError("unknown token")
        logs.bind_device(device_id)  # this invocation's log lines name the device
        if disabled:
            raise DeviceDisabledError(f"device {device_id!r} is disabled")
        return Principal(is_admin=False, device_id=device_id)

    def _resolve(self, token_hash: str) -> tuple[str | None, bool]:
        now = self._clock()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        found = self._lookup(token_hash)
        if found is not None and same_hash(found.token_hash, token_hash):
            entry: tuple[float, str | None, bool] = (now + self._ttl, found.device_id, found.disabled)
        else:
            entry = (now + self._ttl, None, False)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[token_hash] = entry
        return entry[1], entry[2]

    def forget(self, device_id: str) -> None:
        """Drop cached lookups of a device (after rotation, disable or delete)."""
        for key in [k for k, v in self._cache.items() if v[1] == device_id]:
            del self._cache[key]
