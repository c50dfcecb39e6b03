"""Scaling reports: list, one report's JSON, its chart (admin only)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import REPORT_ID, REPORTS_PAGE, cursor_param, int_param, query_params, report_param
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route

reports_api = Blueprint(__name__)

@route(reports_api, "/v1/reports", "GET", auth=Auth.ADMIN)
def list_reports() -> Response:
    params = query_params(reports_api.current_request)
    limit = int_param(params, "limit", REPORTS_PAGE[0], 1, REPORTS_PAGE[1])
    rows, next_cursor = wiring.reports().page(limit, cursor_param(params, REPORT_ID))
    return json_response({"reports": rows, "next_cursor": next_cursor})


@route(reports_api, "/v1/reports/{report_id}", "GET", auth=Auth.ADMIN)
def get_report(report_id: str) -> Response:
    return json_response(wiring.reports().get(report_param(report_id)))


@route(reports_api, "/v1/reports/{report_id}/chart", "GET", auth=Auth.ADMIN)
def get_report_chart(report_id: str) -> Response:
    svg = wiring.reports().chart(report_param(report_id))
    return Response(body=svg, status_code=200, headers={"Content-Type": "image/svg+xml"})
