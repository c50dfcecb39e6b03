"""Commands to devices: the request's rule and the send use case, one for the JSON API and the dashboard.

A command goes over WAMP when the device has registered the procedure (the router marks it
invoked), else it stays queued for the device's HTTP long poll.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain.devices import ID_PATTERN
from chalicelib.domain.schema import Anything, Arr, Member, Num, Obj, OneOf, Str
from chalicelib.errors import Problem, ValidationError

if TYPE_CHECKING:
    from chalicelib.domain.wamp.router import Outgoing

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 900
# wamp.protocol's URI rule (components of no whitespace, "." or "#", no control characters), for one
# procedure as given: the device's prefix is added unless it is there, so the given part is itself a
# URI. Written here because the protocol keeps its pattern private; its byte limit (MAX_URI_BYTES)
# bounds the whole URI, prefix included, which command_request checks after the schema (valid_uri).
_URI_COMPONENT = r"[^\s.#\x00-\x1f\x7f]+"
PROCEDURE_PATTERN = re.compile(rf"^(?:{_URI_COMPONENT}\.)*{_URI_COMPONENT}$")
# A command's id as the realtime store makes it: device id, created ms (13 digits), 12 hex digits.
COMMAND_ID_PATTERN = re.compile(rf"^{ID_PATTERN.pattern[1:-1]}~\d{{13}}~[0-9a-f]{{12}}$")
_PROCEDURE_PROBLEM = "procedure: a WAMP URI component like 'reboot'"


COMMAND_REQUEST = Obj(
    members={
        "procedure": Member(
            Str(pattern=PROCEDURE_PATTERN, description="e.g. reboot: iotcloud.device.<id>.reboot"),
            _PROCEDURE_PROBLEM,
            required=True,
        ),
        "args": Member(Arr(), "args: a list"),
        "kwargs": Member(Obj(values=Anything()), "kwargs: an object"),
        "timeout": Member(
            Num(above=0, maximum=MAX_TIMEOUT_S, default=DEFAULT_TIMEOUT_S, description="seconds"),
            f"timeout: seconds, 0 < timeout <= {MAX_TIMEOUT_S}",
        ),
    }
)
FIELDS = tuple(COMMAND_REQUEST.members)
# A device's answer to a command: exactly one of result and error (other members are ignored).
COMMAND_RESULT = OneOf(
    options=(
        Obj(members={"result": Member(Anything(), required=True)}, values=Anything()),
        Obj(
            members={"error": Member(Anything(description='{"uri": ..., "message": ...}'), required=True)},
            values=Anything(),
        ),
    )
)


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
    """The command a JSON body asks for, or ValidationError listing every problem.

    The body is checked against COMMAND_REQUEST (what the document shows); then the procedure's
    full URI, the device's prefix included, against the protocol's rule (its byte limit depends
    on the prefix), its problem in the procedure's place.
    """
    from chalicelib.domain.wamp.protocol import device_prefix, valid_uri  # not on the ingest path's import

    if not isinstance(body, dict):
        COMMAND_REQUEST.validate(body, "the command")  # raises: not an object
    problems = COMMAND_REQUEST.problems(body)
    procedure = body.get("procedure")
    given = procedure if isinstance(procedure, str) else ""
    full = given if given.startswith(device_prefix(device_id)) else device_prefix(device_id) + given
    if not any(p.field == "procedure" for p in problems) and not valid_uri(full):
        after_unknown = sum(p.code == "unknown_field" for p in problems)
        problems.insert(after_unknown, Problem("invalid_field", _PROCEDURE_PROBLEM, field="procedure"))
    if problems:
        raise ValidationError(f"{len(problems)} problems in the command", problems)
    timeout = body.get("timeout", DEFAULT_TIMEOUT_S)
    return CommandRequest(full, list(body.get("args", [])), dict(body.get("kwargs", {})), int(float(timeout) * 1000))


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
