"""Commands to devices: over WAMP when the device is connected, else queued for HTTP long-poll."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.operations import JSON, Body, Op, ok
from chalicelib.api.params import COMMAND_ID, COMMANDS_QUERY, DEVICE_ID, query_params, raw_body, read_query
from chalicelib.api.responses import json_body, json_response
from chalicelib.api.routing import Auth, route
from chalicelib.domain import commands
from chalicelib.domain.commands import COMMAND_REQUEST, COMMAND_RESULT, command_request
from chalicelib.domain.schema import Anything, Arr, Int, Named, Obj, Str, optional, record, required
from chalicelib.errors import CommandConflictError, CommandNotFoundError, Problem, ValidationError

commands_api = Blueprint(__name__)

POLL_INTERVAL_S = 1.0
STATUSES = ("queued", "invoked", "done", "failed", "timeout")  # the realtime store's command statuses

_STR, _INT, _ANY = Str(), Int(), Anything()
COMMAND = Named(
    "Command",
    Obj(
        members={
            **required(id=_STR, device_id=_STR, procedure=_STR, status=Str(enum=STATUSES)),
            **optional(
                args=Arr(),
                kwargs=Obj(values=_ANY),
                timeout_ms=_INT,
                created_ms=_INT,
                updated_ms=_INT,
                result=_ANY,
                error=_ANY,
            ),
        },
        values=_ANY,  # the store's record, as stored
    ),
)

SEND_COMMAND = Op(
    "sendCommand",
    "Call a procedure of a device (admin): over WAMP if it has registered it, else queued "
    "for the device's HTTP long-poll",
    path=(DEVICE_ID,),
    body=Body({JSON: Named("CommandRequest", COMMAND_REQUEST)}, what="the command"),
    answers={202: ok(COMMAND, "invoked or queued"), 400: "malformed JSON", 422: "invalid fields"},
)


@route(commands_api, "/v1/devices/{device_id}/commands", "POST", auth=Auth.ADMIN, doc=SEND_COMMAND)
def send_command(device_id: str, body: dict[str, Any]) -> Response:
    wiring.devices().get(device_id)
    request = command_request(device_id, body)  # the URI's length with the device's prefix (the route checked the rest)
    command = commands.send_command(
        device_id, request, store=wiring.realtime_store(), router=wiring.router(), deliver=wiring.realtime().deliver
    )
    return json_response(command, 202)


# A command's own device id is not looked up: any other answers the command's 404.
_COMMAND_DEVICE = dataclasses.replace(DEVICE_ID, not_found=None)
GET_COMMAND = Op(
    "getCommand",
    "A command's status (queued, invoked, done, failed, timeout) and result (admin)",
    path=(_COMMAND_DEVICE, COMMAND_ID),
    answers={200: ok(COMMAND), 404: "no such command"},
)


@route(commands_api, "/v1/devices/{device_id}/commands/{command_id}", "GET", auth=Auth.ADMIN, doc=GET_COMMAND)
def get_command(device_id: str, command_id: str) -> Response:
    command = wiring.realtime_store().get_command(command_id)
    if command is None or command["device_id"] != device_id:
        raise CommandNotFoundError(f"no command {command_id!r} for device {device_id!r}")
    return json_response(command)


POLL_COMMANDS = Op(
    "pollCommands",
    "The device's queued commands, waiting up to `wait` seconds for one (device token)",
    answers={200: ok(record(commands=Arr(Obj(values=_ANY)))), 400: "bad wait"},
)


@route(
    commands_api,
    "/v1/commands",
    "GET",
    auth=Auth.DEVICE,
    wrong_kind="commands are fetched with the device's own token",
    query=COMMANDS_QUERY,
    doc=POLL_COMMANDS,
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


POST_COMMAND_RESULT = Op(
    "postCommandResult",
    'The device answers a command: {"result": ...} or {"error": {...}}',
    path=(COMMAND_ID,),
    # Checked by the view after the command is found (a missing command is 404 whatever the body).
    body=Body({JSON: Named("CommandResult", COMMAND_RESULT)}, validated=False),
    answers={
        200: ok(COMMAND),
        400: "malformed JSON",
        404: "no such command for this device",
        409: "the command is already completed",
        422: "neither or both of result and error",
    },
)


@route(
    commands_api,
    "/v1/commands/{command_id}/result",
    "POST",
    auth=Auth.DEVICE,
    wrong_kind="a command's result is posted with the device's own token",
    doc=POST_COMMAND_RESULT,
)
def post_command_result(caller: str, command_id: str) -> Response:
    request = commands_api.current_request
    store = wiring.realtime_store()
    command = store.get_command(command_id)
    if command is None or command["device_id"] != caller:
        raise CommandNotFoundError(f"no command {command_id!r} for this device")
    body = json_body(raw_body(request))
    if not COMMAND_RESULT.accepts(body):
        raise ValidationError(
            'send {"result": ...} or {"error": {"uri": ..., "message": ...}}',
            [Problem("invalid_body", "exactly one of result and error")],
        )
    if "result" in body:
        done = store.mark_command(command_id, "done", result=body["result"])
    else:
        done = store.mark_command(command_id, "failed", error=body["error"])
    if not done:
        raise CommandConflictError(f"command {command_id!r} is already {command['status']}")
    return json_response(store.get_command(command_id) or command)
