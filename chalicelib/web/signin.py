"""Signing in (an admin token -> a session cookie) and out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.config import settings
from chalicelib.errors import CsrfError, ForbiddenError, UnauthorizedError
from chalicelib.web import session as sessions
from chalicelib.web.forms import form_of, require_csrf, safe_next
from chalicelib.web.render import cookie, redirect, render
from chalicelib.web.visit import cookies_of

if TYPE_CHECKING:
    from chalice.app import Response

    from chalicelib.web.visit import Visit


def sign_in_form(v: Visit, message: str = "", status: int = 200) -> Response:
    """The sign-in page (signed in already: on to where it was asked to go)."""
    if v.session is not None and not message:
        return redirect(safe_next(v, dict(v.request.query_params or {}).get("next")))
    params = dict(v.request.query_params or {})
    nonce = sessions.new_signin_nonce()
    expired = params.get("expired") == "1" and not message
    return render(
        v,
        "sign_in.html",
        status,
        cookies=[cookie(sessions.SIGNIN_COOKIE, nonce, v, sessions.SIGNIN_TTL_S, strict=True)],
        message=message or ("Your session has expired. Sign in again." if expired else ""),
        signin_token=sessions.signin_token(sessions.secret(), nonce),
        next=safe_next(v, params.get("next")),
    )


def sign_in(v: Visit) -> Response:
    """The sign-in form posted: an admin token starts a session."""
    form = form_of(v.request)
    nonce = cookies_of(v.request).get(sessions.SIGNIN_COOKIE)
    if not sessions.signin_ok(sessions.secret(), nonce, form.get("signin_token")):
        raise CsrfError("the sign-in form expired or did not come from this dashboard: reload it and try again")
    token = form.get("token", "").strip()
    if not token:
        return sign_in_form(v, "Enter an admin token.", 400)
    try:
        principal = wiring.authenticator().authenticate(token)
    except (UnauthorizedError, ForbiddenError):
        return sign_in_form(v, "That token is not known. Sign in with an admin token.", 401)
    if not principal.is_admin:
        return sign_in_form(v, "That is a device token: the dashboard needs an admin token.", 403)
    ttl = settings().session_ttl_s
    _, value = sessions.new_session(sessions.secret(), v.now, ttl)
    return redirect(
        safe_next(v, form.get("next")),
        [cookie(sessions.SESSION_COOKIE, value, v, ttl), cookie(sessions.SIGNIN_COOKIE, "", v, 0, strict=True)],
    )


def sign_out(v: Visit) -> Response:
    """The sign-out form posted: the session cookie is cleared."""
    require_csrf(v, form_of(v.request).get("csrf"))
    return redirect(v.url("/dashboard/sign-in", signed_out=1), [cookie(sessions.SESSION_COOKIE, "", v, 0)])
