"""The fleet overview: a page of devices (or a search), each with its status, latest readings, alerts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.adapters.alerts import AlertFilter
from chalicelib.api.dashboard_ops import FLEET_QUERY
from chalicelib.api.params import query_params, read_query
from chalicelib.domain.devices import Device
from chalicelib.web.forms import MAX_QUERY_CHARS
from chalicelib.web.render import render
from chalicelib.web.status import device_states, state_json, status_of

if TYPE_CHECKING:
    from chalice.app import Response

    from chalicelib.web.visit import Visit

SEARCH_SCAN_LIMIT = 1000  # devices looked at per fleet search page (a Query on the list index, never a Scan)
ACTIVE_ALERTS_LOOKED_AT = 200


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


def _alert_counts() -> tuple[dict[str, int], int, bool]:
    """Active alerts per device (from the first 200), how many, and whether there are more."""
    alerts, more = wiring.alerts().list_alerts(AlertFilter(state="active"), ACTIVE_ALERTS_LOOKED_AT, None)
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.device_id] = counts.get(alert.device_id, 0) + 1
    return counts, len(alerts), more is not None


def fleet_page(v: Visit) -> Response:
    """GET /dashboard: the fleet page; each row's state is exact (web.status.device_states)."""
    values = read_query(FLEET_QUERY, query_params(v.request))
    limit, cursor = values["limit"], values["cursor"]
    query = " ".join((values["q"] or "").split())[:MAX_QUERY_CHARS]
    devices, next_cursor = fleet_devices(limit, cursor, query)
    states = device_states([d.device_id for d in devices])
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
