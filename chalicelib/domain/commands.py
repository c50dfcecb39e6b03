"""Commands to devices: the request's rule and the send use case, one for the JSON API and the dashboard.

A command goes over WAMP when the device has registered the procedure (the router marks it
invoked), else it stays queued for the device's HTTP long poll.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain.rules import json_object, unknown_fields
from chalicelib.errors import Problem, ValidationError

if TYPE_CHECKING:
    from chalicelib.domain.wamp.router import Outgoing

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 900
FIELDS = ("procedure", "args", "kwargs", "timeout")


@dataclass(frozen=True)
class CommandRequest:
    """A valid command: the full procedure URI, its arguments and its timeout."""

    procedure: str
    args: list[Any]
    kwargs: dict[str, Any]
    timeout_ms: int


class CommandStore(Protocol):
    def create_command(
        self, device_id: str, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout_ms: int
    ) -> dict[str, Any]: ...

    def get_command(self, command_id: str) -> dict[str, Any] | None: ...


class CommandRouter(Protocol):
    def call_for_command(
        self, command_id: str, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout_ms: int
    ) -> list[Outgoing] | None: ...


def command_request(device_id: str, body: Any) -> CommandRequest:
    """The command a JSON body asks for, or ValidationError listing every problem."""
    from chalicelib.domain.wamp.protocol import device_prefix, valid_uri  # not on the ingest path's import

    body = json_object(body)
    problems = unknown_fields(body, FIELDS)
    procedure = body.get("procedure")
    if isinstance(procedure, str) and not procedure.startswith(device_prefix(device_id)):
        procedure = device_prefix(device_id) + procedure
    if not (isinstance(procedure, str) and valid_uri(procedure)):
        problems.append(Problem("invalid_field", "procedure: a WAMP URI component like 'reboot'", field="procedure"))
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if not isinstance(args, list):
        problems.append(Problem("invalid_field", "args: a list", field="args"))
    if not isinstance(kwargs, dict):
        problems.append(Problem("invalid_field", "kwargs: an object", field="kwargs"))
    timeout = body.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
        problems.append(Problem("invalid_field", f"timeout: seconds, 0 < timeout <= {MAX_TIMEOUT_S}", field="timeout"))
    if problems:
        raise ValidationError(f"{len(problems)} problems in the command", problems)
    return CommandRequest(str(procedure), list(args), dict(kwargs), int(float(timeout) * 1000))


def send_command(
    device_id: str,
    request: CommandRequest,
    *,
    store: CommandStore,
    router: CommandRouter,
    deliver: Callable[[list[Outgoing]], None],
) -> dict[str, Any]:
    """Queue the command, invoke it now if its callee is connected, and return its record.

    The router marks an invoked command itself (a conditional write); marking it again here
    would be a write that always fails.
    """
    r = request
    command = store.create_command(device_id, r.procedure, r.args, r.kwargs, r.timeout_ms)
    invocation = router.call_for_command(command["id"], r.procedure, r.args, r.kwargs, r.timeout_ms)
    if invocation is not None:
        deliver(invocation)
    return store.get_command(command["id"]) or command
