"""The JSON the pages' script fetches under /dashboard/data (session cookie, same origin)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.api.dashboard_ops import STATES_QUERY
from chalicelib.api.params import query_params, read_query
from chalicelib.api.telemetry import telemetry_page
from chalicelib.clock import now_ms
from chalicelib.config import settings
from chalicelib.errors import RealtimeNotConfiguredError
from chalicelib.web import session as sessions
from chalicelib.web.forms import require_csrf
from chalicelib.web.status import device_states, state_json

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.web.visit import Visit


def telemetry_json(request: Request, device_id: str) -> dict[str, Any]:
    """The readings of a window, exactly as GET /v1/devices/{id}/telemetry answers for an admin."""
    return telemetry_page(device_id, dict(request.query_params or {}), check_device=True)


def states_json(request: Request) -> dict[str, Any]:
    """The live states of the devices a page shows (`ids`, comma-separated)."""
    ids = read_query(STATES_QUERY, query_params(request))["ids"]
    states = device_states(ids)
    return {"states": [state_json(states[i]) for i in ids if i in states], "now": now_ms()}


def ticket_json(v: Visit) -> dict[str, Any]:
    """A WAMP ticket for the page's live updates, with the WebSocket URL and realm."""
    require_csrf(v, v.request.headers.get("x-csrf-token"))
    url = settings().public_ws_url
    if not url:
        raise RealtimeNotConfiguredError("this stage has no public WebSocket URL (PUBLIC_WS_URL): pages poll")
    assert v.session is not None
    ticket, expires = sessions.new_ticket(sessions.secret(), v.session, v.now)
    return {"ticket": ticket, "expires_at": expires, "url": url, "realm": "iotcloud"}
