"""Scaling reports: list, one report's JSON, its chart (admin only)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.operations import Answer, Op, ok
from chalicelib.api.params import REPORT_PATH, REPORTS_QUERY, query_params, read_query
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.domain.schema import Anything, Arr, Int, Named, Obj, Str, nullable, optional, record, required

reports_api = Blueprint(__name__)

SVG = "image/svg+xml"
_STR = Str()
_OBJECT = Obj(values=Anything())  # the report job's own structure (README, "Scaling reports")
# Reports as the job stores them (open shapes: the answer shows what was stored).
REPORT_SUMMARY = Named(
    "ReportSummary",
    Obj(
        members={
            **required(id=_STR, generated_at=_STR, trigger=_OBJECT, summary=_STR, decisions=Obj(values=_STR)),
            **optional(s3=_OBJECT),
        },
        values=Anything(),
    ),
)
REPORT = Named(
    "Report",
    Obj(
        members={
            **required(
                schema_version=Int(),
                id=_STR,
                stage=_STR,
                generated_at=_STR,
                trigger=_OBJECT,
                window=_OBJECT,
                targets=Arr(_OBJECT),
                summary=_STR,
            ),
            **optional(skipped=Arr(_OBJECT)),
        },
        values=Anything(),
    ),
)

LIST_REPORTS = Op(
    "listReports",
    "Scaling reports, newest first, paged with an opaque cursor (admin)",
    answers={
        200: ok(record(reports=Arr(REPORT_SUMMARY), next_cursor=nullable(_STR))),
        400: "bad limit or cursor",
    },
)


@route(reports_api, "/v1/reports", "GET", auth=Auth.ADMIN, query=REPORTS_QUERY, doc=LIST_REPORTS)
def list_reports() -> Response:
    values = read_query(REPORTS_QUERY, query_params(reports_api.current_request))
    rows, next_cursor = wiring.reports().page(values["limit"], values["cursor"])
    return json_response({"reports": rows, "next_cursor": next_cursor})


GET_REPORT = Op(
    "getReport",
    "One scaling report (admin); schema in README, 'Scaling reports'",
    path=(REPORT_PATH,),
    answers={200: ok(REPORT)},
)


@route(reports_api, "/v1/reports/{report_id}", "GET", auth=Auth.ADMIN, doc=GET_REPORT)
def get_report(report_id: str) -> Response:
    return json_response(wiring.reports().get(report_id))


GET_REPORT_CHART = Op(
    "getReportChart",
    "The report's chart: utilization against thresholds and capacity (admin)",
    path=(REPORT_PATH,),
    answers={200: Answer("SVG", {SVG: _STR})},
)


@route(reports_api, "/v1/reports/{report_id}/chart", "GET", auth=Auth.ADMIN, doc=GET_REPORT_CHART)
def get_report_chart(report_id: str) -> Response:
    svg = wiring.reports().chart(report_id)
    return Response(body=svg, status_code=200, headers={"Content-Type": SVG})
