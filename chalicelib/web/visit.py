"""Who is asking the dashboard: the request's visit (its mount point, its session if signed in)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from chalice.app import Request

from chalicelib.clock import now_ms
from chalicelib.errors import SignInRequiredError
from chalicelib.web import session as sessions


@dataclass(frozen=True)
class Visit:
    """One request to the dashboard: where it is mounted, and the session if signed in."""

    request: Request
    base: str  # the URL prefix before /dashboard: "" locally, "/<stage>" on API Gateway's own domain
    session: sessions.Session | None
    now: int
    secure: bool
    csrf: str = ""

    def url(self, path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return self.base + path + (("?" + urllib.parse.urlencode(query)) if query else "")

    @property
    def here(self) -> str:
        """This page's own URL (what sign-in returns to)."""
        query = urllib.parse.urlencode(dict(self.request.query_params or {}))
        return self.base + _rendered_path(self.request) + (f"?{query}" if query else "")


def _rendered_path(request: Request) -> str:
    path = request.path
    for name, value in (request.uri_params or {}).items():
        path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
    return path


def base_path(request: Request) -> str:
    """The prefix API Gateway puts before the app's routes (its stage), from the request context."""
    full = str(request.context.get("path") or "")
    own = _rendered_path(request)
    if own and full.endswith(own):
        return full[: len(full) - len(own)].rstrip("/")
    return ""


def cookies_of(request: Request) -> dict[str, str]:
    """The request's cookies (the first of each name)."""
    out: dict[str, str] = {}
    for part in (request.headers.get("cookie") or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value.strip().strip('"')
    return out


def is_https(request: Request) -> bool:
    """Whether the browser connected over TLS."""
    # API Gateway (and any TLS-terminating proxy) says how the browser connected.
    return (request.headers.get("x-forwarded-proto") or "").lower() == "https"


def anonymous(request: Request) -> Visit:
    """The request's visit without a session (what a page answers with when it cannot read one)."""
    return Visit(request, base_path(request), None, now_ms(), is_https(request))


def visit(request: Request, *, signed_in: bool = True) -> Visit:
    """The request's visit; with `signed_in`, SignInRequiredError unless its session is valid."""
    now = now_ms()
    secret = sessions.secret()
    found = sessions.read_session(secret, cookies_of(request).get(sessions.SESSION_COOKIE))
    valid = found is not None and not found.expired(now)
    if signed_in and not valid:
        raise SignInRequiredError(expired=found is not None)
    secure = is_https(request)
    if not valid or found is None:
        return Visit(request, base_path(request), None, now, secure)
    return Visit(request, base_path(request), found, now, secure, sessions.csrf_token(secret, found))
