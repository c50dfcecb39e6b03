"""A page's answer to a domain error: no session -> sign-in; else a readable page with the error's status."""

from __future__ import annotations

import html
import logging

from chalice.app import Request, Response

from chalicelib.clock import now_ms
from chalicelib.errors import IotCloudError, SignInRequiredError
from chalicelib.web import session as sessions
from chalicelib.web.render import cookie, html_headers, redirect, render
from chalicelib.web.visit import Visit, anonymous, base_path, visit

logger = logging.getLogger("iotcloud.dashboard")


def error_page(request: Request, error: IotCloudError) -> Response:
    """A page's answer to a domain error: no session -> sign-in; else a readable page with the error's status."""
    if isinstance(error, SignInRequiredError):
        return _to_sign_in(request, error.expired)
    try:
        v = visit(request, signed_in=False)
    except Exception:  # an error page must render whatever broke
        v = Visit(request, base_path(request), None, now_ms(), False)
    try:
        answer = render(v, "error.html", error.status, error=error, details=[d.as_dict() for d in error.details])
    except Exception:  # the templates themselves failed: still say what went wrong, readably
        logger.exception("dashboard: the error page failed")
        text = html.escape(f"{error.message} ({error.code}, HTTP {error.status})")
        answer = Response(body=f"<!doctype html><title>Error</title><p>{text}</p>", status_code=error.status,
                          headers=dict(html_headers()))  # fmt: skip
    if error.status == 503:  # every unavailable answer of a page says when to come back
        answer.headers["Retry-After"] = str(error.retry_after_seconds or 1)
    return answer


def _to_sign_in(request: Request, expired: bool) -> Response:
    v = anonymous(request)
    back = v.here if request.method == "GET" else None
    target = v.url("/dashboard/sign-in", next=back, expired=1 if expired else None)
    return redirect(target, [cookie(sessions.SESSION_COOKIE, "", v, 0)] if expired else None)
