"""The dashboard's views: what each page shows, built from the same domain code and adapters
as the JSON API (through `chalicelib.wiring`), rendered with Jinja2 templates.

Jinja2 is imported on the first page rendered, never at app import, so the ingest path's
cold start does not pay for it.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from chalicelib import wiring
from chalicelib.adapters.alerts import AlertFilter
from chalicelib.adapters.devices import DeviceState
from chalicelib.api.params import (
    REPORT_ID,
    REPORTS_PAGE,
    alert_filter,
    alert_param,
    cursor_param,
    device_param,
    int_param,
    raw_body,
    report_param,
)
from chalicelib.api.telemetry import reading_json, telemetry_page
from chalicelib.clock import now_ms
from chalicelib.config import settings
from chalicelib.domain import commands
from chalicelib.domain.chunks import HOUR_MS
from chalicelib.domain.devices import ID_PATTERN, Device
from chalicelib.domain.rules import MAX_ID_CHARS
from chalicelib.errors import (
    CsrfError,
    DeviceNotFoundError,
    ForbiddenError,
    InvalidParameterError,
    IotCloudError,
    Problem,
    RealtimeNotConfiguredError,
    SignInRequiredError,
    StaticNotFoundError,
    UnauthorizedError,
    ValidationError,
)
from chalicelib.web import session as sessions
from chalicelib.web import static

if TYPE_CHECKING:
    import jinja2

logger = logging.getLogger("iotcloud.dashboard")

TEMPLATES = Path(__file__).resolve().parent / "templates"
FLEET_PAGE = 25
ONLINE_MS = 5 * 60_000  # a device heard from within 5 minutes is "online"
WINDOWS = {"1h": HOUR_MS, "6h": 6 * HOUR_MS, "24h": 24 * HOUR_MS, "7d": 7 * 24 * HOUR_MS}
DEFAULT_WINDOW = "6h"
SEARCH_SCAN_LIMIT = 1000  # devices looked at per fleet search page (a Query on the list index, never a Scan)
MAX_FORM_BYTES = 16 * 1024
MAX_STATE_IDS = 100
POLL_MS = 3000
MAX_QUERY_CHARS = 100  # a fleet search
# The rules the pages' forms repeat for the browser (maxlength, max): read from the one source.
FORM_RULES = {
    "max_id_chars": MAX_ID_CHARS,
    "max_query_chars": MAX_QUERY_CHARS,
    "command_timeout_default_s": commands.DEFAULT_TIMEOUT_S,
    "command_timeout_max_s": commands.MAX_TIMEOUT_S,
}


# --- who is asking ------------------------------------------------------------------------------


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
    out: dict[str, str] = {}
    for part in (request.headers.get("cookie") or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value.strip().strip('"')
    return out


def visit(request: Request, *, signed_in: bool = True) -> Visit:
    """The request's visit; with `signed_in`, SignInRequiredError unless its session is valid."""
    now = now_ms()
    secret = sessions.secret()
    found = sessions.read_session(secret, cookies_of(request).get(sessions.SESSION_COOKIE))
    valid = found is not None and not found.expired(now)
    if signed_in and not valid:
        raise SignInRequiredError(expired=found is not None)
    secure = _is_https(request)
    if not valid or found is None:
        return Visit(request, base_path(request), None, now, secure)
    return Visit(request, base_path(request), found, now, secure, sessions.csrf_token(secret, found))


def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each)."""
    body = raw_body(request)
    if len(body) > MAX_FORM_BYTES:
        raise InvalidParameterError("the form is too large")
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidParameterError("the form could not be read") from e
    return {k: v[0] for k, v in fields.items()}


def require_csrf(v: Visit, token: str | None) -> None:
    if v.session is None or not sessions.csrf_ok(sessions.secret(), v.session, token):
        raise CsrfError("the form is out of date or did not come from this dashboard: reload the page and try again")


def safe_next(v: Visit, target: str | None) -> str:
    """Where to go after a form: only back into this dashboard."""
    home = v.base + "/dashboard"
    if target and target.startswith(home) and "//" not in target and "\\" not in target and ".." not in target:
        rest = target[len(home) :]
        if rest == "" or rest[0] in "/?#":
            return target
    return home


# --- answers ------------------------------------------------------------------------------------


def _ws_origin() -> str:
    url = settings().public_ws_url
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("ws", "wss") and parts.netloc else ""


def html_headers() -> dict[str, str]:
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
    headers: dict[str, Any] = {"Location": location, "Cache-Control": "no-store"}
    if cookies:
        headers["Set-Cookie"] = cookies
    return Response(body="", status_code=303, headers=headers)


@functools.cache
def templates() -> jinja2.Environment:
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


def _is_https(request: Request) -> bool:
    # API Gateway (and any TLS-terminating proxy) says how the browser connected.
    return (request.headers.get("x-forwarded-proto") or "").lower() == "https"


def _to_sign_in(request: Request, expired: bool) -> Response:
    v = Visit(request, base_path(request), None, now_ms(), _is_https(request))
    back = v.here if request.method == "GET" else None
    target = v.url("/dashboard/sign-in", next=back, expired=1 if expired else None)
    return redirect(target, [cookie(sessions.SESSION_COOKIE, "", v, 0)] if expired else None)


# --- formatting ---------------------------------------------------------------------------------


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ms: int | None, now: int) -> str:
    if ms is None:
        return "never"
    seconds = (now - ms) / 1000
    if seconds < -5:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{max(0, int(seconds))} s ago"


def show_value(value: Any) -> str:
    """A reading's value as the page's script shows it too (JSON numbers and booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def status_of(device: Device, last_seen: int | None, alerting: int, now: int) -> str:
    if device.disabled:
        return "disabled"
    if alerting:
        return "alerting"
    if last_seen is None:
        return "never seen"
    return "online" if now - last_seen <= ONLINE_MS else "silent"


# --- sign-in and sign-out -----------------------------------------------------------------------


def sign_in_form(v: Visit, message: str = "", status: int = 200) -> Response:
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
    require_csrf(v, form_of(v.request).get("csrf"))
    return redirect(v.url("/dashboard/sign-in", signed_out=1), [cookie(sessions.SESSION_COOKIE, "", v, 0)])


# --- fleet overview -----------------------------------------------------------------------------


def _matches(device: Device, words: list[str]) -> bool:
    text = f"{device.device_id} {device.name} {device.device_type}".lower()
    return all(w in text for w in words)


def fleet_devices(limit: int, cursor: str | None, query: str) -> tuple[list[Device], str | None]:
    """A page of devices in id order; with a query, those whose id, name or type hold every word.

    A search walks the list index (Query, never Scan) at most SEARCH_SCAN_LIMIT devices per page;
    the cursor is the last device looked at, so "next" goes on from there.
    """
    repo = wiring.devices()
    if not query:
        return repo.list_page(limit, cursor)
    words = query.lower().split()
    found: list[Device] = []
    looked = 0
    after = cursor
    while True:
        batch, more = repo.list_page(100, after)
        for device in batch:
            looked += 1
            after = device.device_id
            if _matches(device, words):
                found.append(device)
                if len(found) == limit:
                    return found, after if (more or device is not batch[-1]) else None
            if looked >= SEARCH_SCAN_LIMIT:
                return found, after if (more or device is not batch[-1]) else None
        if more is None:
            return found, None


def _states(ids: list[str]) -> dict[str, DeviceState]:
    # One GetItem per device: a page holds at most 100 (the list index does not project state).
    out: dict[str, DeviceState] = {}
    repo = wiring.devices()
    for device_id in ids:
        try:
            out[device_id] = repo.state(device_id)
        except DeviceNotFoundError:
            continue
    return out


def state_json(state: DeviceState) -> dict[str, Any]:
    return {
        "device_id": state.device_id,
        "last_seen": state.last_seen,
        "latest": [reading_json(r) for r in state.latest],
    }


def _alert_counts() -> tuple[dict[str, int], int, bool]:
    """Active alerts per device (from the first 200), how many, and whether there are more."""
    alerts, more = wiring.alerts().list_alerts(AlertFilter(state="active"), 200, None)
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.device_id] = counts.get(alert.device_id, 0) + 1
    return counts, len(alerts), more is not None


def fleet(v: Visit) -> Response:
    params = dict(v.request.query_params or {})
    limit = int_param(params, "limit", FLEET_PAGE, 1, 100)
    cursor = cursor_param(params, ID_PATTERN, "this page")
    query = " ".join((params.get("q") or "").split())[:MAX_QUERY_CHARS]
    devices, next_cursor = fleet_devices(limit, cursor, query)
    states = _states([d.device_id for d in devices])
    alerting, active_count, more_alerts = _alert_counts()
    rows = []
    for device in devices:
        state = states.get(device.device_id)
        last_seen = state.last_seen if state else None
        rows.append(
            {
                "device": device,
                "last_seen": last_seen,
                "latest": state.latest if state else [],
                "alerts": alerting.get(device.device_id, 0),
                "status": status_of(device, last_seen, alerting.get(device.device_id, 0), v.now),
            }
        )
    live = {device_id: state_json(state) for device_id, state in states.items()}
    return render(
        v,
        "fleet.html",
        rows=rows,
        query=query,
        limit=limit,
        cursor=cursor,
        next_cursor=next_cursor,
        active_alerts=active_count,
        more_alerts=more_alerts,
        live_json=json.dumps({"devices": live, "alerting": alerting}),
    )


# --- one device ---------------------------------------------------------------------------------


def device_page(v: Visit, device_id: str) -> Response:
    params = dict(v.request.query_params or {})
    window = params.get("window") or DEFAULT_WINDOW
    if window not in WINDOWS:
        raise InvalidParameterError(f"window must be one of {', '.join(WINDOWS)}")
    device = wiring.devices().get(device_param(device_id))
    state = wiring.devices().state(device_id)
    alerts, more_alerts = wiring.alerts().list_alerts(AlertFilter(device_id=device_id), 20, None)
    command = None
    if params.get("command"):
        command = wiring.realtime_store().get_command(params["command"])
        if command is not None and command.get("device_id") != device_id:
            command = None
    active = sum(1 for a in alerts if a.state == "active")
    return render(
        v,
        "device.html",
        device=device,
        state=state,
        device_status=status_of(device, state.last_seen, active, v.now),
        alerts=alerts,
        more_alerts=more_alerts is not None,
        windows=list(WINDOWS),
        window=window,
        window_from=v.now - WINDOWS[window],
        window_to=v.now,
        command=command,
        commands_enabled=bool(settings().public_ws_url),
        live_json=json.dumps({"device": state_json(state)}),
    )


def send_command(v: Visit, device_id: str) -> Response:
    """The device page's command form: the same rule and use case as POST /v1/devices/{id}/commands."""
    form = form_of(v.request)
    require_csrf(v, form.get("csrf"))
    wiring.devices().get(device_param(device_id))
    body: dict[str, Any] = {"procedure": form.get("procedure", "").strip()}
    problems: list[Problem] = []
    for name, default in (("args", "[]"), ("kwargs", "{}")):
        text = form.get(name, "").strip() or default
        try:
            body[name] = json.loads(text)
        except ValueError:
            problems.append(Problem("invalid_field", f"{name}: not valid JSON", field=name))
    timeout = form.get("timeout", "").strip()
    if timeout:
        try:
            body["timeout"] = float(timeout)
        except ValueError:
            problems.append(Problem("invalid_field", "timeout: a number of seconds", field="timeout"))
    if problems:
        raise ValidationError(f"{len(problems)} problems in the command", problems)
    command = commands.send_command(
        device_id,
        commands.command_request(device_id, body),
        store=wiring.realtime_store(),
        router=wiring.router(),
        deliver=wiring.realtime().deliver,
    )
    return redirect(v.url(f"/dashboard/devices/{device_id}", command=command["id"]) + "#command")


# --- alerts -------------------------------------------------------------------------------------


def alerts_page(v: Visit) -> Response:
    from chalicelib.domain.alerts import ALERT_STATES, SEVERITIES

    params = dict(v.request.query_params or {})
    filters, limit = alert_filter(params)
    alerts, next_cursor = wiring.alerts().list_alerts(filters, limit, params.get("cursor") or None)
    return render(
        v,
        "alerts.html",
        alerts=alerts,
        next_cursor=next_cursor,
        filters={
            "state": filters.state or "",
            "severity": filters.severity or "",
            "device": filters.device_id or "",
            "acknowledged": "" if filters.acknowledged is None else str(filters.acknowledged).lower(),
        },
        states=ALERT_STATES,
        severities=SEVERITIES,
        limit=limit,
    )


def acknowledge(v: Visit, alert_id: str) -> Response:
    form = form_of(v.request)
    require_csrf(v, form.get("csrf"))
    wiring.alerts().acknowledge(alert_param(alert_id), now_ms())
    return redirect(safe_next(v, form.get("next") or v.url("/dashboard/alerts")))


# --- scaling reports ----------------------------------------------------------------------------


def reports_page(v: Visit) -> Response:
    params = dict(v.request.query_params or {})
    limit = int_param(params, "limit", REPORTS_PAGE[0], 1, REPORTS_PAGE[1])
    rows, next_cursor = wiring.reports().page(limit, cursor_param(params, REPORT_ID, "this page"))
    return render(v, "reports.html", reports=rows, next_cursor=next_cursor, limit=limit)


def report_page(v: Visit, report_id: str) -> Response:
    report = wiring.reports().get(report_param(report_id))
    return render(v, "report.html", report=report, report_json=json.dumps(report, indent=2))


def report_chart(report_id: str) -> Response:
    svg = wiring.reports().chart(report_param(report_id))
    headers: dict[str, Any] = {
        "Content-Type": "image/svg+xml",
        "Cache-Control": "private, max-age=3600",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body=svg, status_code=200, headers=headers)


# --- static files -------------------------------------------------------------------------------


def static_file(request: Request, name: str, suffix: str) -> Response:
    found = static.find(name, suffix)
    if found is None:
        hint = " (the front-end libraries are built by `make assets`)" if suffix == ".js" else ""
        raise StaticNotFoundError(f"no file {name!r}{hint}")
    version = dict(request.query_params or {}).get("v")
    headers: dict[str, Any] = {
        "Content-Type": found.content_type,
        "Cache-Control": static.cache_control(found, version),
        "ETag": f'"{found.digest}"',
        "X-Content-Type-Options": "nosniff",
    }
    if (request.headers.get("if-none-match") or "").strip() == f'"{found.digest}"':
        return Response(body="", status_code=304, headers=headers)
    return Response(body=found.text, status_code=200, headers=headers)


# --- JSON for the pages' script (session cookie, same origin) ----------------------------------


def telemetry_json(request: Request, device_id: str) -> dict[str, Any]:
    """The readings of a window, exactly as GET /v1/devices/{id}/telemetry answers for an admin."""
    return telemetry_page(device_id, dict(request.query_params or {}), check_device=True)


def states_json(request: Request) -> dict[str, Any]:
    raw = dict(request.query_params or {}).get("ids") or ""
    ids = list(dict.fromkeys(i for i in raw.split(",") if i))
    if not ids or len(ids) > MAX_STATE_IDS or not all(ID_PATTERN.match(i) for i in ids):
        raise InvalidParameterError(f"ids: 1 to {MAX_STATE_IDS} device ids, comma-separated")
    states = _states(ids)
    return {"states": [state_json(states[i]) for i in ids if i in states], "now": now_ms()}


def ticket_json(v: Visit) -> dict[str, Any]:
    require_csrf(v, v.request.headers.get("x-csrf-token"))
    url = settings().public_ws_url
    if not url:
        raise RealtimeNotConfiguredError("this stage has no public WebSocket URL (PUBLIC_WS_URL): pages poll")
    assert v.session is not None
    ticket, expires = sessions.new_ticket(sessions.secret(), v.session, v.now)
    return {"ticket": ticket, "expires_at": expires, "url": url, "realm": "iotcloud"}
