"""Scaling reports: list, one report's JSON, its chart (admin only)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import REPORTS_QUERY, query_params, read_query, report_param
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route

reports_api = Blueprint(__name__)

@route(reports_api, "/v1/reports", "GET", auth=Auth.ADMIN, query=REPORTS_QUERY)
def list_reports() -> Response:
    values = read_query(REPORTS_QUERY, query_params(reports_api.current_request))
    rows, next_cursor = wiring.reports().page(values["limit"], values["cursor"])
    return json_response({"reports": rows, "next_cursor": next_cursor})


@route(reports_api, "/v1/reports/{report_id}", "GET", auth=Auth.ADMIN)
def get_report(report_id: str) -> Response:
    return json_response(wiring.reports().get(report_param(report_id)))


@route(reports_api, "/v1/reports/{report_id}/chart", "GET", auth=Auth.ADMIN)
def get_report_chart(report_id: str) -> Response:
    svg = wiring.reports().chart(report_param(report_id))
    return Response(body=svg, status_code=200, headers={"Content-Type": "image/svg+xml"})
