"""Commands to devices: over WAMP when the device is connected, else queued for HTTP long-poll."""

from __future__ import annotations

import time
from typing import Any

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import COMMANDS_QUERY, device_param, query_params, raw_body, read_query
from chalicelib.api.responses import json_body, json_response
from chalicelib.api.routing import Auth, route
from chalicelib.domain import commands
from chalicelib.domain.commands import command_request
from chalicelib.errors import CommandConflictError, CommandNotFoundError, Problem, ValidationError

commands_api = Blueprint(__name__)

POLL_INTERVAL_S = 1.0


@route(commands_api, "/v1/devices/{device_id}/commands", "POST", auth=Auth.ADMIN)
def send_command(device_id: str) -> Response:
    wiring.devices().get(device_param(device_id))
    request = command_request(device_id, json_body(raw_body(commands_api.current_request)))
    command = commands.send_command(
        device_id, request, store=wiring.realtime_store(), router=wiring.router(), deliver=wiring.realtime().deliver
    )
    return json_response(command, 202)


@route(commands_api, "/v1/devices/{device_id}/commands/{command_id}", "GET", auth=Auth.ADMIN)
def get_command(device_id: str, command_id: str) -> Response:
    command = wiring.realtime_store().get_command(command_id)
    if command is None or command["device_id"] != device_id:
        raise CommandNotFoundError(f"no command {command_id!r} for device {device_id!r}")
    return json_response(command)


@route(
    commands_api,
    "/v1/commands",
    "GET",
    auth=Auth.DEVICE,
    wrong_kind="commands are fetched with the device's own token",
    query=COMMANDS_QUERY,
)
def poll_commands(caller: str) -> Response:
    request = commands_api.current_request
    wait = read_query(COMMANDS_QUERY, query_params(request))["wait"]
    store = wiring.realtime_store()
    deadline = time.monotonic() + wait
    while True:
        queued = store.queued_commands(caller, 10)
        # Hand each command out once: only the caller that moves it to "invoked" gets it.
        taken = [c for c in queued if store.mark_command(c["id"], "invoked")]
        if taken or time.monotonic() >= deadline:
            return json_response({"commands": [_for_device(c) for c in taken]})
        time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))


def _for_device(command: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "procedure", "args", "kwargs", "timeout_ms", "created_ms")
    return {k: command[k] for k in keys if k in command}


@route(
    commands_api,
    "/v1/commands/{command_id}/result",
    "POST",
    auth=Auth.DEVICE,
    wrong_kind="a command's result is posted with the device's own token",
)
def post_command_result(caller: str, command_id: str) -> Response:
    request = commands_api.current_request
    store = wiring.realtime_store()
    command = store.get_command(command_id)
    if command is None or command["device_id"] != caller:
        raise CommandNotFoundError(f"no command {command_id!r} for this device")
    body = json_body(raw_body(request))
    if not isinstance(body, dict) or ("result" in body) == ("error" in body):
        raise ValidationError(
            "send {\"result\": ...} or {\"error\": {\"uri\": ..., \"message\": ...}}",
            [Problem("invalid_body", "exactly one of result and error")],
        )
    if "result" in body:
        done = store.mark_command(command_id, "done", result=body["result"])
    else:
        done = store.mark_command(command_id, "failed", error=body["error"])
    if not done:
        raise CommandConflictError(f"command {command_id!r} is already {command['status']}")
    return json_response(store.get_command(command_id) or command)
