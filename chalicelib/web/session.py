"""Dashboard sessions: signed, expiring cookies, CSRF tokens and short-lived WAMP tickets.

Everything here is an HMAC-SHA256 over a small text with one secret, each use under its
own purpose label so that no value made for one use verifies for another:

- the session cookie `v1.<expires ms>.<session id>.<mac>`: only admins sign in, so a valid
  cookie means "an admin, until then". It holds no token, and nothing is stored server side;
  signing out drops the cookie (a copied cookie stays valid until it expires: rotate
  SESSION_SECRET to end every session at once).
- the CSRF token of a session: a MAC of its id, sent back in forms and in `X-CSRF-Token`.
- the sign-in form's token: a MAC of a random nonce kept in a short-lived cookie (double
  submit), so another site cannot sign a browser in with its own token.
- the WAMP ticket `iotw1.<expires ms>.<session id>.<mac>`: what the page's JavaScript
  authenticates to the router with instead of the admin token, valid for a minute. Its
  format, the MAC and the key live in domain.auth, which the router's ticket check shares.

The secret is SESSION_SECRET; without it, a random one per process, so sessions (and tickets)
do not survive a restart and are not shared between Lambda containers: set it on AWS.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chalicelib.config import settings
from chalicelib.domain.auth import TICKET_TTL_MS, mac, same_mac, session_key, sign_ticket

SESSION_COOKIE = "iotcloud_session"
SIGNIN_COOKIE = "iotcloud_signin"
SIGNIN_TTL_S = 3600
_VERSION = "v1"


@dataclass(frozen=True)
class Session:
    """A signed-in admin's session, as its cookie says."""

    session_id: str
    expires_at: int  # ms since the epoch

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_at


def new_session(secret: bytes, now_ms: int, ttl_s: int) -> tuple[Session, str]:
    """A new session and its cookie value."""
    session = Session(secrets.token_urlsafe(16), now_ms + ttl_s * 1000)
    body = f"{_VERSION}.{session.expires_at}.{session.session_id}"
    return session, f"{body}.{mac(secret, 'session', body)}"


def read_session(secret: bytes, value: str | None) -> Session | None:
    """The session a cookie value holds if its MAC is right (expired or not), else None."""
    if not value or len(value) > 256:
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
        return None
    body = ".".join(parts[:3])
    if not same_mac(parts[3], mac(secret, "session", body)):
        return None
    return Session(parts[2], int(parts[1]))


def csrf_token(secret: bytes, session: Session) -> str:
    return mac(secret, "csrf", session.session_id)


def csrf_ok(secret: bytes, session: Session, token: str | None) -> bool:
    return bool(token) and same_mac(str(token), csrf_token(secret, session))


def new_signin_nonce() -> str:
    return secrets.token_urlsafe(16)


def signin_token(secret: bytes, nonce: str) -> str:
    return mac(secret, "signin", nonce)


def signin_ok(secret: bytes, nonce: str | None, token: str | None) -> bool:
    return bool(nonce) and bool(token) and same_mac(str(token), signin_token(secret, str(nonce)))


def new_ticket(secret: bytes, session: Session, now_ms: int, ttl_ms: int = TICKET_TTL_MS) -> tuple[str, int]:
    """A WAMP ticket for a session's page, and when it expires (never after the session).

    The router checks it with domain.auth.TicketCheck, which holds the ticket's format.
    """
    expires = min(now_ms + ttl_ms, session.expires_at)
    return sign_ticket(secret, session.session_id, expires), expires


def secret() -> bytes:
    """The signing key of this stage's sessions (domain.auth.session_key of SESSION_SECRET)."""
    return session_key(settings().session_secret)
