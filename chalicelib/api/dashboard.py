"""/dashboard: the admin dashboard's pages, served by the same app as the API.

Models are the PynamoDB models behind `chalicelib.wiring`, templates are Jinja2
(chalicelib/web/templates), views are these routes: thin, as everywhere (a module of chalicelib/web
per page builds it). Pages need a session (sign in with an admin token); the JSON under
/dashboard/data is for the pages' own script and takes the same session cookie.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Blueprint, Response

from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route

if TYPE_CHECKING:
    from chalicelib.web.visit import Visit

dashboard_api = Blueprint(__name__)
NO_STORE = {"Cache-Control": "no-store"}

# chalicelib.web's pages (and Jinja2 with them) are imported by the first dashboard request, never at
# app import: the ingest path's cold start does not pay for the dashboard. Pages (page=True)
# answer errors as HTML, a missing session with a redirect to sign-in.


def _request() -> Any:
    return dashboard_api.current_request


@route(dashboard_api, "/dashboard/sign-in", "GET", auth=Auth.NONE, page=True)
def sign_in_page() -> Response:
    from chalicelib.web.signin import sign_in_form
    from chalicelib.web.visit import visit

    return sign_in_form(visit(_request(), signed_in=False))


@route(dashboard_api, "/dashboard/sign-in", "POST", auth=Auth.NONE, page=True)
def sign_in() -> Response:
    from chalicelib.web import signin
    from chalicelib.web.visit import visit

    return signin.sign_in(visit(_request(), signed_in=False))


@route(dashboard_api, "/dashboard/sign-out", "POST", auth=Auth.SESSION, page=True)
def sign_out(v: Visit) -> Response:
    from chalicelib.web import signin

    return signin.sign_out(v)


@route(dashboard_api, "/dashboard", "GET", auth=Auth.SESSION, page=True)
def fleet(v: Visit) -> Response:
    from chalicelib.web.fleet import fleet_page

    return fleet_page(v)


@route(dashboard_api, "/dashboard/devices/{device_id}", "GET", auth=Auth.SESSION, page=True)
def device(v: Visit, device_id: str) -> Response:
    from chalicelib.web.device import device_page

    return device_page(v, device_id)


@route(dashboard_api, "/dashboard/devices/{device_id}/commands", "POST", auth=Auth.SESSION, page=True)
def send_command(v: Visit, device_id: str) -> Response:
    from chalicelib.web import command

    return command.send_command(v, device_id)


@route(dashboard_api, "/dashboard/alerts", "GET", auth=Auth.SESSION, page=True)
def alerts(v: Visit) -> Response:
    from chalicelib.web.alerts import alerts_page

    return alerts_page(v)


@route(dashboard_api, "/dashboard/alerts/{alert_id}/ack", "POST", auth=Auth.SESSION, page=True)
def acknowledge(v: Visit, alert_id: str) -> Response:
    from chalicelib.web import alerts as alert_pages

    return alert_pages.acknowledge(v, alert_id)


@route(dashboard_api, "/dashboard/reports", "GET", auth=Auth.SESSION, page=True)
def reports(v: Visit) -> Response:
    from chalicelib.web.reports import reports_page

    return reports_page(v)


@route(dashboard_api, "/dashboard/reports/{report_id}", "GET", auth=Auth.SESSION, page=True)
def report(v: Visit, report_id: str) -> Response:
    from chalicelib.web.reports import report_page

    return report_page(v, report_id)


@route(dashboard_api, "/dashboard/reports/{report_id}/chart", "GET", auth=Auth.SESSION, page=True)
def report_chart(v: Visit, report_id: str) -> Response:
    from chalicelib.web import reports

    return reports.report_chart(report_id)


@route(dashboard_api, "/dashboard/js/{name}", "GET", auth=Auth.NONE, page=True)
def script(name: str) -> Response:
    from chalicelib.web.static import static_file

    return static_file(_request(), name, ".js")


@route(dashboard_api, "/dashboard/css/{name}", "GET", auth=Auth.NONE, page=True)
def stylesheet(name: str) -> Response:
    from chalicelib.web.static import static_file

    return static_file(_request(), name, ".css")


# --- JSON for the pages' script: the session cookie instead of a bearer token -------------------


@route(dashboard_api, "/dashboard/data/devices/{device_id}/telemetry", "GET", auth=Auth.SESSION)
def telemetry_data(v: Visit, device_id: str) -> Response:
    from chalicelib.web.data import telemetry_json

    return json_response(telemetry_json(v.request, device_id), headers=NO_STORE)


@route(dashboard_api, "/dashboard/data/states", "GET", auth=Auth.SESSION)
def states_data(v: Visit) -> Response:
    from chalicelib.web.data import states_json

    return json_response(states_json(v.request), headers=NO_STORE)


@route(dashboard_api, "/dashboard/data/ticket", "POST", auth=Auth.SESSION)
def ticket_data(v: Visit) -> Response:
    from chalicelib.web.data import ticket_json

    return json_response(ticket_json(v), headers=NO_STORE)
