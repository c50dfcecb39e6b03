"""One device's page: its state, latest readings, alerts, the chart window and its last command."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.adapters.alerts import AlertFilter
from chalicelib.api.dashboard_ops import CHART_POINTS, DEVICE_QUERY, WINDOWS
from chalicelib.api.params import query_params, read_query
from chalicelib.config import settings
from chalicelib.domain.aggregation import choose_interval
from chalicelib.domain.aggregation_rules import DAY_MS
from chalicelib.domain.rollups import HOUR_MS
from chalicelib.web.render import render
from chalicelib.web.status import live_state, state_json, status_of

if TYPE_CHECKING:
    from chalice.app import Response

    from chalicelib.web.visit import Visit

DEFAULT_WINDOW = "6h"
DEVICE_ALERTS = 20  # the most recent alerts the page lists


def chart_interval(window_ms: int) -> int:
    """The bucket interval of a window's charts: at most CHART_POINTS buckets, whole hours past a day.

    The page first asks /dashboard/data/devices/{id}/aggregates at this interval (one request,
    every series); where every series holds at most CHART_POINTS readings (the 1 h window at a
    reading a minute: 60) the script then draws the raw readings instead. Windows longer than a
    day use whole hours, which the rollup store serves (a 30-day chart: one rollup Query and the
    raw chunks of the hours not rolled up yet), rather than sub-hour buckets that read every chunk.
    """
    interval = choose_interval(window_ms, CHART_POINTS)
    if window_ms > DAY_MS:
        interval = -(-interval // HOUR_MS) * HOUR_MS
    return interval


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
        chart_interval=chart_interval(WINDOWS[window]),
        chart_points=CHART_POINTS,
        command=command,
        commands_enabled=bool(settings().public_ws_url),
        live_json=json.dumps({"device": state_json(state)}),
    )
