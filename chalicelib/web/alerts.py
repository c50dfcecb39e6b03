"""The alerts page (filtered like GET /v1/alerts) and acknowledging an alert from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.api.params import alert_filter
from chalicelib.clock import now_ms
from chalicelib.web.forms import form_of, require_csrf, safe_next
from chalicelib.web.render import redirect, render

if TYPE_CHECKING:
    from chalice.app import Response

    from chalicelib.web.visit import Visit


def alerts_page(v: Visit) -> Response:
    """GET /dashboard/alerts."""
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
    """POST /dashboard/alerts/{id}/ack: acknowledge, then back to where the form was."""
    form = form_of(v.request)
    require_csrf(v, form.get("csrf"))
    wiring.alerts().acknowledge(alert_id, now_ms())  # the route checked the id's shape
    return redirect(safe_next(v, form.get("next") or v.url("/dashboard/alerts")))
