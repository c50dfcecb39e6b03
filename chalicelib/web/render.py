"""The dashboard's answers: Jinja2 templates rendered with the page headers, cookies, redirects.

Jinja2 is imported on the first page rendered, never at app import, so the ingest path's
cold start does not pay for it.
"""

from __future__ import annotations

import functools
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalice.app import Response

from chalicelib.config import settings
from chalicelib.web import static
from chalicelib.web.formatting import ago, iso, short, show_value, when
from chalicelib.web.forms import FORM_RULES
from chalicelib.web.status import ONLINE_MS

if TYPE_CHECKING:
    import jinja2

    from chalicelib.web.visit import Visit

TEMPLATES = Path(__file__).resolve().parent / "templates"
POLL_MS = 3000


def _ws_origin() -> str:
    url = settings().public_ws_url
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("ws", "wss") and parts.netloc else ""


def html_headers() -> dict[str, str]:
    """The headers of every page (its content security policy allows the WebSocket URL)."""
    connect = " ".join(x for x in ("'self'", _ws_origin()) if x)
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


def cookie(name: str, value: str, v: Visit, max_age: int, *, strict: bool = False) -> str:
    """A Set-Cookie value scoped to this dashboard's path."""
    parts = [
        f"{name}={value}",
        f"Path={v.base}/dashboard",
        f"Max-Age={max_age}",
        "HttpOnly",
        "SameSite=Strict" if strict else "SameSite=Lax",
    ]
    if v.secure:
        parts.append("Secure")
    return "; ".join(parts)


def redirect(location: str, cookies: list[str] | None = None) -> Response:
    """A 303 to `location`, setting `cookies`."""
    headers: dict[str, Any] = {"Location": location, "Cache-Control": "no-store"}
    if cookies:
        headers["Set-Cookie"] = cookies
    return Response(body="", status_code=303, headers=headers)


@functools.cache
def templates() -> jinja2.Environment:
    """The Jinja2 environment (built once), with the pages' filters and globals."""
    import jinja2  # the dashboard alone needs it: imported on the first page, not at app import

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, short=short, iso=iso, value=show_value)
    env.globals.update(ago=ago, asset=static.url_of, vendored=static.vendored, rules=FORM_RULES)
    return env


def render(v: Visit, template: str, status: int = 200, cookies: list[str] | None = None, **context: Any) -> Response:
    """A page: `template` rendered for the visit with `context`."""
    page = templates().get_template(template)
    body = page.render(
        v=v,
        ws_url=settings().public_ws_url,
        poll_ms=POLL_MS,
        online_ms=ONLINE_MS,
        **context,
    )
    headers: dict[str, Any] = html_headers()
    if cookies:
        headers["Set-Cookie"] = cookies
    return Response(body=body, status_code=status, headers=headers)
