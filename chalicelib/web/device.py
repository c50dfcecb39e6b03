"""One device's page: its state, latest readings, alerts, the chart window and its last command."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.adapters.alerts import AlertFilter
from chalicelib.api.dashboard_ops import DEVICE_QUERY, WINDOWS
from chalicelib.api.params import query_params, read_query
from chalicelib.config import settings
from chalicelib.web.render import render
from chalicelib.web.status import live_state, state_json, status_of

if TYPE_CHECKING:
    from chalice.app import Response

    from chalicelib.web.visit import Visit

DEFAULT_WINDOW = "6h"
DEVICE_ALERTS = 20  # the most recent alerts the page lists


def device_page(v: Visit, device_id: str) -> Response:
    """GET /dashboard/devices/{id}: the device page (the route checked the id's shape)."""
    params = read_query(DEVICE_QUERY, query_params(v.request))
    window = params["window"] or DEFAULT_WINDOW
    device = wiring.devices().get(device_id)
    state = live_state(device_id)
    alerts, more_alerts = wiring.alerts().list_alerts(AlertFilter(device_id=device_id), DEVICE_ALERTS, None)
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
