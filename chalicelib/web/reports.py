"""The scaling reports: the list, one report, and its chart (SVG)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalice.app import Response

from chalicelib import wiring
from chalicelib.api.dashboard_ops import REPORTS_PAGE_QUERY
from chalicelib.api.params import query_params, read_query
from chalicelib.web.render import render

if TYPE_CHECKING:
    from chalicelib.web.visit import Visit


def reports_page(v: Visit) -> Response:
    """GET /dashboard/reports."""
    values = read_query(REPORTS_PAGE_QUERY, query_params(v.request))
    limit = values["limit"]
    rows, next_cursor = wiring.reports().page(limit, values["cursor"])
    return render(v, "reports.html", reports=rows, next_cursor=next_cursor, limit=limit)


def report_page(v: Visit, report_id: str) -> Response:
    """GET /dashboard/reports/{id} (the route checked the id's shape)."""
    report = wiring.reports().get(report_id)
    return render(v, "report.html", report=report, report_json=json.dumps(report, indent=2))


def report_chart(report_id: str) -> Response:
    """GET /dashboard/reports/{id}/chart: the report's chart as an SVG image."""
    svg = wiring.reports().chart(report_id)
    headers: dict[str, Any] = {
        "Content-Type": "image/svg+xml",
        "Cache-Control": "private, max-age=3600",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body=svg, status_code=200, headers=headers)
