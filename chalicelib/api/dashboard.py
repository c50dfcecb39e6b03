"""/dashboard: the admin dashboard's pages, served by the same app as the API.

Models are the PynamoDB models behind `chalicelib.wiring`, templates are Jinja2
(chalicelib/web/templates), views are these routes: thin, as everywhere (chalicelib/web/views.py
builds each page). Pages need a session (sign in with an admin token); the JSON under
/dashboard/data is for the pages' own script and takes the same session cookie.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.api.responses import handles_errors, json_response

dashboard_api = Blueprint(__name__)
ANY = ["*/*"]

# chalicelib.web.views (and Jinja2 with it) is imported by the first dashboard request, never at
# app import: the ingest path's cold start does not pay for the dashboard.


def page(view: Callable[..., Response]) -> Callable[..., Response]:
    """A page: no session -> sign-in; domain errors -> a readable HTML page with their status."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        from chalicelib.web import views

        return views.answer_page(dashboard_api.current_request, view, *args, **kwargs)

    return wrapper


def _request() -> Any:
    return dashboard_api.current_request


@dashboard_api.route("/dashboard/sign-in", methods=["GET"], content_types=ANY)
@page
def sign_in_page() -> Response:
    from chalicelib.web import views

    return views.sign_in_form(views.visit(_request(), signed_in=False))


@dashboard_api.route("/dashboard/sign-in", methods=["POST"], content_types=ANY)
@page
def sign_in() -> Response:
    from chalicelib.web import views

    return views.sign_in(views.visit(_request(), signed_in=False))


@dashboard_api.route("/dashboard/sign-out", methods=["POST"], content_types=ANY)
@page
def sign_out() -> Response:
    from chalicelib.web import views

    return views.sign_out(views.visit(_request()))


@dashboard_api.route("/dashboard", methods=["GET"], content_types=ANY)
@page
def fleet() -> Response:
    from chalicelib.web import views

    return views.fleet(views.visit(_request()))


@dashboard_api.route("/dashboard/devices/{device_id}", methods=["GET"], content_types=ANY)
@page
def device(device_id: str) -> Response:
    from chalicelib.web import views

    return views.device_page(views.visit(_request()), device_id)


@dashboard_api.route("/dashboard/devices/{device_id}/commands", methods=["POST"], content_types=ANY)
@page
def send_command(device_id: str) -> Response:
    from chalicelib.web import views

    return views.send_command(views.visit(_request()), device_id)


@dashboard_api.route("/dashboard/alerts", methods=["GET"], content_types=ANY)
@page
def alerts() -> Response:
    from chalicelib.web import views

    return views.alerts_page(views.visit(_request()))


@dashboard_api.route("/dashboard/alerts/{alert_id}/ack", methods=["POST"], content_types=ANY)
@page
def acknowledge(alert_id: str) -> Response:
    from chalicelib.web import views

    return views.acknowledge(views.visit(_request()), alert_id)


@dashboard_api.route("/dashboard/reports", methods=["GET"], content_types=ANY)
@page
def reports() -> Response:
    from chalicelib.web import views

    return views.reports_page(views.visit(_request()))


@dashboard_api.route("/dashboard/reports/{report_id}", methods=["GET"], content_types=ANY)
@page
def report(report_id: str) -> Response:
    from chalicelib.web import views

    return views.report_page(views.visit(_request()), report_id)


@dashboard_api.route("/dashboard/reports/{report_id}/chart", methods=["GET"], content_types=ANY)
@page
def report_chart(report_id: str) -> Response:
    from chalicelib.web import views

    views.visit(_request())
    return views.report_chart(report_id)


@dashboard_api.route("/dashboard/js/{name}", methods=["GET"], content_types=ANY)
@page
def script(name: str) -> Response:
    from chalicelib.web import views

    return views.static_file(_request(), name, ".js")


@dashboard_api.route("/dashboard/css/{name}", methods=["GET"], content_types=ANY)
@page
def stylesheet(name: str) -> Response:
    from chalicelib.web import views

    return views.static_file(_request(), name, ".css")


# --- JSON for the pages' script: the session cookie instead of a bearer token -------------------


@dashboard_api.route("/dashboard/data/devices/{device_id}/telemetry", methods=["GET"], content_types=ANY)
@handles_errors
def telemetry_data(device_id: str) -> Response:
    from chalicelib.web import views

    views.visit(_request())
    return json_response(views.telemetry_json(_request(), device_id), headers={"Cache-Control": "no-store"})


@dashboard_api.route("/dashboard/data/states", methods=["GET"], content_types=ANY)
@handles_errors
def states_data() -> Response:
    from chalicelib.web import views

    views.visit(_request())
    return json_response(views.states_json(_request()), headers={"Cache-Control": "no-store"})


@dashboard_api.route("/dashboard/data/ticket", methods=["POST"], content_types=ANY)
@handles_errors
def ticket_data() -> Response:
    from chalicelib.web import views

    return json_response(views.ticket_json(views.visit(_request())), headers={"Cache-Control": "no-store"})
