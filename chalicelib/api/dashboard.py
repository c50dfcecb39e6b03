"""/dashboard: the admin dashboard's pages, served by the same app as the API.

Models are the PynamoDB models behind `chalicelib.wiring`, templates are Jinja2
(chalicelib/web/templates), views are these routes: thin, as everywhere (a module of chalicelib/web
per page builds it). Pages need a session (sign in with an admin token); the JSON under
/dashboard/data is for the pages' own script and takes the same session cookie. Each route
declares its operation (built from api/dashboard_ops's page, form and data answer sets), which
the OpenAPI document is generated from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Blueprint, Response

from chalicelib.api.alerts import ALERT_ID
from chalicelib.api.dashboard_ops import (
    ACK_FORM,
    AGGREGATES,
    AGGREGATES_QUERY,
    CHART_POINTS,
    COMMAND_FORM,
    CSRF_FORM,
    CSRF_HEADER,
    DEVICE_QUERY,
    FLEET_QUERY,
    MAX_STATE_IDS,
    REDIRECT,
    REPORTS_PAGE_QUERY,
    SIGN_IN_FORM,
    SIGN_IN_QUERY,
    SPARKLINE_HOURS,
    SPARKLINES,
    SPARKLINES_QUERY,
    STATES,
    STATES_QUERY,
    STATIC_QUERY,
    TELEMETRY_PAGE,
    TICKET,
    TO_SIGN_IN,
    UNAVAILABLE,
    dashboard_op,
    data_op,
    file_op,
    form_op,
    html,
    page_op,
)
from chalicelib.api.operations import Answer
from chalicelib.api.params import DEVICE_ID, REPORT_PATH, TELEMETRY_QUERY, alerts_query
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.domain.schema import Str

if TYPE_CHECKING:
    from chalicelib.web.visit import Visit

dashboard_api = Blueprint(__name__)
NO_STORE = {"Cache-Control": "no-store"}

# chalicelib.web's pages (and Jinja2 with them) are imported by the first dashboard request, never at
# app import: the ingest path's cold start does not pay for the dashboard. Pages (page=True)
# answer errors as HTML, a missing session with a redirect to sign-in.


def _request() -> Any:
    return dashboard_api.current_request


SIGN_IN_PAGE = dashboard_op(
    "dashboardSignInPage",
    "the sign-in form (already signed in: on to `next`)",
    {200: html("the sign-in form"), 303: REDIRECT},
)


@route(dashboard_api, "/dashboard/sign-in", "GET", auth=Auth.NONE, page=True, query=SIGN_IN_QUERY, doc=SIGN_IN_PAGE)
def sign_in_page() -> Response:
    from chalicelib.web.signin import sign_in_form
    from chalicelib.web.visit import visit

    return sign_in_form(visit(_request(), signed_in=False))


SIGN_IN = dashboard_op(
    "dashboardSignIn",
    "sign in with an admin token (form: token, signin_token, next); sets the session cookie",
    {
        303: Answer("signed in: on to `next`, with the session cookie", headers=("Location", "Set-Cookie")),
        400: html("no token, or an unreadable form: the form again, saying so"),
        401: html("an unknown token: the form again, saying so"),
        403: html("a device token, or a sign-in form that did not come from this dashboard"),
        503: UNAVAILABLE,
    },
    body=SIGN_IN_FORM,
)


@route(dashboard_api, "/dashboard/sign-in", "POST", auth=Auth.NONE, page=True, doc=SIGN_IN)
def sign_in() -> Response:
    from chalicelib.web import signin
    from chalicelib.web.visit import visit

    return signin.sign_in(visit(_request(), signed_in=False))


SIGN_OUT = form_op("dashboardSignOut", "sign out (drops the session cookie)", CSRF_FORM, {})


@route(dashboard_api, "/dashboard/sign-out", "POST", auth=Auth.SESSION, page=True, doc=SIGN_OUT)
def sign_out(v: Visit) -> Response:
    from chalicelib.web import signin

    return signin.sign_out(v)


FLEET = page_op(
    "dashboardFleet",
    "the fleet: status, last seen and latest values of each device; search (q) and paging",
    {400: "a bad parameter: a page saying which"},
)


@route(dashboard_api, "/dashboard", "GET", auth=Auth.SESSION, page=True, query=FLEET_QUERY, doc=FLEET)
def fleet(v: Visit) -> Response:
    from chalicelib.web.fleet import fleet_page

    return fleet_page(v)


DEVICE = page_op(
    "dashboardDevice",
    "one device: latest state, a chart of each metric over a window, its alerts, commands",
    {400: "a bad window", 404: "no such device"},
    path=(DEVICE_ID,),
)


@route(
    dashboard_api, "/dashboard/devices/{device_id}", "GET", auth=Auth.SESSION, page=True, query=DEVICE_QUERY, doc=DEVICE
)
def device(v: Visit, device_id: str) -> Response:
    from chalicelib.web.device import device_page

    return device_page(v, device_id)


SEND_COMMAND = form_op(
    "dashboardSendCommand",
    "send a command (form: procedure, args and kwargs as JSON, timeout, csrf); on to the device page",
    COMMAND_FORM,
    {404: "no such device", 422: "an invalid command: a page listing every problem"},
    path=(DEVICE_ID,),
)


@route(dashboard_api, "/dashboard/devices/{device_id}/commands", "POST", auth=Auth.SESSION, page=True, doc=SEND_COMMAND)
def send_command(v: Visit, device_id: str) -> Response:
    from chalicelib.web import command

    return command.send_command(v, device_id)


ALERTS = page_op(
    "dashboardAlerts",
    "alerts, filtered by state, severity, device and acknowledgement, paged",
    {400: "a bad filter: a page saying which"},
)


@route(dashboard_api, "/dashboard/alerts", "GET", auth=Auth.SESSION, page=True, query=alerts_query, doc=ALERTS)
def alerts(v: Visit) -> Response:
    from chalicelib.web.alerts import alerts_page

    return alerts_page(v)


ACKNOWLEDGE = form_op(
    "dashboardAcknowledgeAlert",
    "acknowledge an alert (form: csrf, next); on to `next`",
    ACK_FORM,
    {404: "no such alert"},
    path=(ALERT_ID,),
)


@route(dashboard_api, "/dashboard/alerts/{alert_id}/ack", "POST", auth=Auth.SESSION, page=True, doc=ACKNOWLEDGE)
def acknowledge(v: Visit, alert_id: str) -> Response:
    from chalicelib.web import alerts as alert_pages

    return alert_pages.acknowledge(v, alert_id)


REPORTS = page_op("dashboardReports", "scaling reports, newest first, paged", {400: "a bad parameter"})


@route(dashboard_api, "/dashboard/reports", "GET", auth=Auth.SESSION, page=True, query=REPORTS_PAGE_QUERY, doc=REPORTS)
def reports(v: Visit) -> Response:
    from chalicelib.web.reports import reports_page

    return reports_page(v)


REPORT = page_op(
    "dashboardReport",
    "one scaling report (decisions, alarms, capacity, projection) with its chart",
    {404: "no such report"},
    path=(REPORT_PATH,),
)


@route(dashboard_api, "/dashboard/reports/{report_id}", "GET", auth=Auth.SESSION, page=True, doc=REPORT)
def report(v: Visit, report_id: str) -> Response:
    from chalicelib.web.reports import report_page

    return report_page(v, report_id)


REPORT_CHART = dashboard_op(
    "dashboardReportChart",
    "a report's chart",
    {
        200: Answer("the chart", {"image/svg+xml": Str()}),
        303: TO_SIGN_IN,
        404: html("no such report"),
        503: UNAVAILABLE,
    },
    path=(REPORT_PATH,),
)


@route(dashboard_api, "/dashboard/reports/{report_id}/chart", "GET", auth=Auth.SESSION, page=True, doc=REPORT_CHART)
def report_chart(v: Visit, report_id: str) -> Response:
    from chalicelib.web import reports

    return reports.report_chart(report_id)


SCRIPT = file_op("dashboardScript", "a script, its own or a library built by `make assets`", "text/javascript")
STYLESHEET = file_op("dashboardStylesheet", "a stylesheet", "text/css")


@route(dashboard_api, "/dashboard/js/{name}", "GET", auth=Auth.NONE, page=True, query=STATIC_QUERY, doc=SCRIPT)
def script(name: str) -> Response:
    from chalicelib.web.static import static_file

    return static_file(_request(), name, ".js")


@route(dashboard_api, "/dashboard/css/{name}", "GET", auth=Auth.NONE, page=True, query=STATIC_QUERY, doc=STYLESHEET)
def stylesheet(name: str) -> Response:
    from chalicelib.web.static import static_file

    return static_file(_request(), name, ".css")


# --- JSON for the pages' script: the session cookie instead of a bearer token -------------------

TELEMETRY_DATA = data_op(
    "dashboardTelemetry",
    "for the page's script: what GET /v1/devices/{device_id}/telemetry answers an admin",
    TELEMETRY_PAGE,
    {
        400: "a bad parameter or cursor",
        404: "no such device",
        503: "storage unavailable: retry after Retry-After seconds",
    },
    path=(DEVICE_ID,),
)


@route(
    dashboard_api,
    "/dashboard/data/devices/{device_id}/telemetry",
    "GET",
    auth=Auth.SESSION,
    query=TELEMETRY_QUERY,
    doc=TELEMETRY_DATA,
)
def telemetry_data(v: Visit, device_id: str) -> Response:
    from chalicelib.web.data import telemetry_json

    return json_response(telemetry_json(v.request, device_id), headers=NO_STORE)


AGGREGATES_DATA = data_op(
    "dashboardAggregates",
    "for the device page's charts: every numeric and boolean series of a window in buckets "
    f"(count, avg, min, max, last), from hourly rollups where whole hours are rolled up; at most "
    f"{CHART_POINTS} buckets by default",
    AGGREGATES,
    {
        400: "a bad parameter, from after to, or too many buckets",
        404: "no such device",
        503: "storage unavailable: retry after Retry-After seconds",
    },
    path=(DEVICE_ID,),
)


@route(
    dashboard_api,
    "/dashboard/data/devices/{device_id}/aggregates",
    "GET",
    auth=Auth.SESSION,
    query=AGGREGATES_QUERY,
    doc=AGGREGATES_DATA,
)
def aggregates_data(v: Visit, device_id: str) -> Response:
    from chalicelib.web.data import aggregates_json

    return json_response(aggregates_json(v.request, device_id), headers=NO_STORE)


SPARKLINES_DATA = data_op(
    "dashboardSparklines",
    f"for the fleet page's script: hourly averages of each device's first numeric metric over the last "
    f"{SPARKLINE_HOURS} hours, from the hourly rollups (and the raw chunks of the hours not rolled up yet)",
    SPARKLINES,
    {400: "no ids, too many, or not device ids", 503: "storage unavailable: retry after Retry-After seconds"},
)


@route(
    dashboard_api, "/dashboard/data/sparklines", "GET", auth=Auth.SESSION, query=SPARKLINES_QUERY, doc=SPARKLINES_DATA
)
def sparklines_data(v: Visit) -> Response:
    from chalicelib.web.data import sparklines_json

    return json_response(sparklines_json(v.request), headers=NO_STORE)


STATES_DATA = data_op(
    "dashboardStates",
    f"for the pages' script: last seen and latest values of up to {MAX_STATE_IDS} devices",
    STATES,
    {400: "no ids, too many, or not device ids", 503: "storage unavailable: retry after Retry-After seconds"},
)


@route(dashboard_api, "/dashboard/data/states", "GET", auth=Auth.SESSION, query=STATES_QUERY, doc=STATES_DATA)
def states_data(v: Visit) -> Response:
    from chalicelib.web.data import states_json

    return json_response(states_json(v.request), headers=NO_STORE)


TICKET_DATA = data_op(
    "dashboardTicket",
    "for the pages' script: a one-minute WAMP ticket (header X-CSRF-Token)",
    TICKET,
    {403: "a missing or wrong X-CSRF-Token", 404: "this stage has no public WebSocket URL: pages poll instead"},
    headers=(CSRF_HEADER,),
)


@route(dashboard_api, "/dashboard/data/ticket", "POST", auth=Auth.SESSION, doc=TICKET_DATA)
def ticket_data(v: Visit) -> Response:
    from chalicelib.web.data import ticket_json

    return json_response(ticket_json(v), headers=NO_STORE)
