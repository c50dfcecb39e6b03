"""The device page's command form: the same rule and use case as POST /v1/devices/{id}/commands."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib import wiring
from chalicelib.domain import commands
from chalicelib.errors import Problem, ValidationError
from chalicelib.web.forms import form_of, require_csrf
from chalicelib.web.render import redirect

if TYPE_CHECKING:
    from chalice.app import Response

    from chalicelib.web.visit import Visit


def command_body(form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as the JSON API's request body (args and kwargs are JSON, timeout seconds)."""
    body: dict[str, Any] = {"procedure": form.get("procedure", "").strip()}
    problems: list[Problem] = []
    for name, default in (("args", "[]"), ("kwargs", "{}")):
        text = form.get(name, "").strip() or default
        try:
            body[name] = json.loads(text)
        except ValueError:
            problems.append(Problem("invalid_field", f"{name}: not valid JSON", field=name))
    timeout = form.get("timeout", "").strip()
    if timeout:
        try:
            body["timeout"] = float(timeout)
        except ValueError:
            problems.append(Problem("invalid_field", "timeout: a number of seconds", field="timeout"))
    if problems:
        raise ValidationError(f"{len(problems)} problems in the command", problems)
    return body


def send_command(v: Visit, device_id: str) -> Response:
    """POST /dashboard/devices/{id}/commands: send it, then back to the device page showing it."""
    form = form_of(v.request)
    require_csrf(v, form.get("csrf"))
    wiring.devices().get(device_id)  # the route checked the id's shape; this, that the device exists
    command = commands.send_command(
        device_id,
        commands.command_request(device_id, command_body(form)),
        store=wiring.realtime_store(),
        router=wiring.router(),
        deliver=wiring.realtime().deliver,
    )
    return redirect(v.url(f"/dashboard/devices/{device_id}", command=command["id"]) + "#command")
