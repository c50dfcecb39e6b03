"""Scaling reports: list, one report's JSON, its chart (admin only)."""

from __future__ import annotations

import re

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.common import int_param, query_params
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.errors import InvalidParameterError, ReportNotFoundError

reports_api = Blueprint(__name__)

REPORT_ID = re.compile(r"^\d{13}-[0-9a-f]{8}$")


def _checked(report_id: str) -> str:
    if not REPORT_ID.match(report_id):
        raise ReportNotFoundError(f"no report {report_id!r}")
    return report_id


@route(reports_api, "/v1/reports", "GET", auth=Auth.ADMIN)
def list_reports() -> Response:
    request = reports_api.current_request
    params = query_params(request)
    limit = int_param(params, "limit", 20, 1, 100)
    cursor = params.get("cursor") or None
    if cursor is not None and not REPORT_ID.match(cursor):
        raise InvalidParameterError("cursor is not one this API issued")
    rows, next_cursor = wiring.reports().page(limit, cursor)
    return json_response({"reports": rows, "next_cursor": next_cursor})


@route(reports_api, "/v1/reports/{report_id}", "GET", auth=Auth.ADMIN)
def get_report(report_id: str) -> Response:
    return json_response(wiring.reports().get(_checked(report_id)))


@route(reports_api, "/v1/reports/{report_id}/chart", "GET", auth=Auth.ADMIN)
def get_report_chart(report_id: str) -> Response:
    svg = wiring.reports().chart(_checked(report_id))
    return Response(body=svg, status_code=200, headers={"Content-Type": "image/svg+xml"})
