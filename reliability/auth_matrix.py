"""The auth matrix: every route of the app by every kind of caller, over real HTTP against a local stack.

Callers: no token, an unknown token, another device's token, a disabled device's token,
the admin token, and the target device's own token (the positive control). Routes with a
{device_id} target device A (the "victim"); the other device is B. The expected answer of
every (route, caller) is the table MATRIX below, from the README's route table and error
table and the OpenAPI document; a route of `app.routes` missing from the table fails the
part, so the table stays complete as routes are added.

Beyond the statuses: no answer to anyone but the admin or A itself carries A's data (a
secret string value A posted, A's command id, any token), every refused request leaves the
devices and readings tables exactly as they were, and at the end A holds only what A posted
while B's posts landed on B.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import LocalStack
from reliability.common import Client, PartResult, error_code, hot_rule, local_stack, make_resources

CALLERS = ("none", "unknown", "other", "disabled", "admin", "own")
UNKNOWN_TOKEN = "iotd_this-token-belongs-to-nobody-0123456789"

# Expected answer per caller: "status" or "status:error.code". A 401 means `unauthorized`, a 403
# `forbidden` ("403d": `device_disabled`) unless a code is given; 303 is a redirect to sign-in.
# fmt: off
MATRIX: dict[tuple[str, str], tuple[str, str, str, str, str, str]] = {
    #                                                      none   unknown other  disabled admin  own
    ("POST", "/v1/devices"):                              ("401", "401", "403", "403d", "201", "403"),
    ("GET", "/v1/devices"):                               ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/devices/{device_id}"):                   ("401", "401", "403", "403d", "200", "403"),
    ("PATCH", "/v1/devices/{device_id}"):                 ("401", "401", "403", "403d", "200", "403"),
    ("DELETE", "/v1/devices/{device_id}"):                ("401", "401", "403", "403d", "204", "403"),
    ("POST", "/v1/devices/{device_id}/token"):            ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/devices/{device_id}/telemetry"):         ("401", "401", "403", "403d", "200", "200"),
    ("GET", "/v1/devices/{device_id}/state"):             ("401", "401", "403", "403d", "200", "200"),
    ("GET", "/v1/devices/{device_id}/rollups"):           ("401", "401", "403", "403d", "200", "200"),
    ("POST", "/v1/devices/{device_id}/commands"):         ("401", "401", "403", "403d", "202", "403"),
    ("GET", "/v1/devices/{device_id}/commands/{command_id}"): ("401", "401", "403", "403d", "200", "403"),
    # A device posts as itself: "other" is B posting its own telemetry (it must land on B).
    ("POST", "/v1/telemetry"):                            ("401", "401", "200", "403d", "403", "200"),
    ("POST", "/api/v1/{token}/telemetry"):                ("401", "401", "200", "403d", "403", "200"),
    ("GET", "/v1/search"):                                ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/reports"):                               ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/reports/{report_id}"):                   ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/reports/{report_id}/chart"):             ("401", "401", "403", "403d", "200", "403"),
    ("POST", "/v1/rules"):                                ("401", "401", "403", "403d", "201", "403"),
    ("GET", "/v1/rules"):                                 ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/rules/{rule_id}"):                       ("401", "401", "403", "403d", "200", "403"),
    ("PATCH", "/v1/rules/{rule_id}"):                     ("401", "401", "403", "403d", "200", "403"),
    ("DELETE", "/v1/rules/{rule_id}"):                    ("401", "401", "403", "403d", "204", "403"),
    ("GET", "/v1/alerts"):                                ("401", "401", "403", "403d", "200", "403"),
    ("GET", "/v1/alerts/{alert_id}"):                     ("401", "401", "403", "403d", "200", "403"),
    ("POST", "/v1/alerts/{alert_id}/ack"):                ("401", "401", "403", "403d", "200", "403"),
    # The device's long poll (wait=0): B gets B's commands (none), never A's.
    ("GET", "/v1/commands"):                              ("401", "401", "200", "403d", "403", "200"),
    # A command is looked up for the caller's own device: B finds none of A's; the admin is refused (403).
    ("POST", "/v1/commands/{command_id}/result"):
        ("401", "401", "404:command_not_found", "403d", "403", "200"),
    ("GET", "/v1/openapi.json"):                          ("200", "200", "200", "200", "200", "200"),
    # The dashboard takes a session cookie, never a bearer token: pages send everyone to sign-in,
    # its JSON answers 401, forms without a session go to sign-in too, its files are public.
    ("GET", "/dashboard/sign-in"):                        ("200", "200", "200", "200", "200", "200"),
    ("POST", "/dashboard/sign-in"):                       ("403", "403", "403", "403", "403", "403"),
    ("POST", "/dashboard/sign-out"):                      ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard"):                                ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard/devices/{device_id}"):            ("303", "303", "303", "303", "303", "303"),
    ("POST", "/dashboard/devices/{device_id}/commands"):  ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard/alerts"):                         ("303", "303", "303", "303", "303", "303"),
    ("POST", "/dashboard/alerts/{alert_id}/ack"):         ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard/reports"):                        ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard/reports/{report_id}"):            ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard/reports/{report_id}/chart"):      ("303", "303", "303", "303", "303", "303"),
    ("GET", "/dashboard/js/{name}"):                      ("200", "200", "200", "200", "200", "200"),
    ("GET", "/dashboard/css/{name}"):                     ("200", "200", "200", "200", "200", "200"),
    ("GET", "/dashboard/data/devices/{device_id}/telemetry"): ("401", "401", "401", "401", "401", "401"),
    ("GET", "/dashboard/data/states"):                    ("401", "401", "401", "401", "401", "401"),
    ("POST", "/dashboard/data/ticket"):                   ("401", "401", "401", "401", "401", "401"),
}
# fmt: on

# Routes where the admin's call changes or deletes its target: it gets a throwaway target.
DESTRUCTIVE = {
    ("PATCH", "/v1/devices/{device_id}"),
    ("DELETE", "/v1/devices/{device_id}"),
    ("POST", "/v1/devices/{device_id}/token"),
    ("DELETE", "/v1/rules/{rule_id}"),
}

RULE = hot_rule("matrix-victim", "matrix: victim too hot")


def expected(cell: str, caller: str) -> tuple[int, str | None]:
    """(status, error code) of a table cell."""
    if cell == "403d":
        return 403, "device_disabled"
    status_text, _, code = cell.partition(":")
    status = int(status_text)
    if code:
        return status, code
    if status == 401:
        return 401, "unauthorized"
    if status == 403:
        return 403, "forbidden"
    return status, None


@dataclass
class World:
    """What the calls need: devices A (victim), B (other), D (disabled) and resources of A."""

    victim: dict[str, Any]
    other: dict[str, Any]
    disabled: dict[str, Any]
    admin: str
    rule_id: str
    alert_id: str
    report_id: str
    command_id: str
    secret: str  # a string value only A's data holds
    victim_posts: list[tuple[str, int]] = field(default_factory=list)  # (metric, ts) A posted
    other_posts: list[tuple[str, int]] = field(default_factory=list)
    counter: int = 0

    def token(self, caller: str) -> str | None:
        tokens: dict[str, str | None] = {
            "none": None,
            "unknown": UNKNOWN_TOKEN,
            "other": self.other["token"],
            "disabled": self.disabled["token"],
            "admin": self.admin,
            "own": self.victim["token"],
        }
        return tokens[caller]

    def next_ts(self) -> int:
        self.counter += 1
        return int(time.time() * 1000) - 60_000 + self.counter


def _setup(stack: LocalStack, client: Client) -> World:
    victim = client.create_device("matrix-victim")
    other = client.create_device("matrix-other")
    disabled = client.create_device("matrix-disabled")
    answer = client.admin("PATCH", "/v1/devices/matrix-disabled", {"disabled": True})
    if answer.status_code != 200:
        raise RuntimeError(f"could not disable a device: {answer.status_code} {answer.text[:200]}")
    secret = f"victim-secret-{uuid.uuid4().hex[:12]}"
    resources = make_resources(stack, client, victim, secret)
    posted = client.request("POST", "/v1/telemetry", other["token"], {"ts": world_start(), "values": {"temp": 20}})
    if posted.status_code != 200:
        raise RuntimeError(f"the other device could not post: {posted.status_code} {posted.text[:200]}")
    victim_readings = [(r["metric"], r["ts"]) for r in client.readings(victim["id"])]
    return World(
        victim=victim,
        other=other,
        disabled=disabled,
        admin=stack.admin_token,
        rule_id=resources.rule_id,
        alert_id=resources.alert_id,
        report_id=resources.report_id,
        command_id=resources.command_id,
        secret=secret,
        victim_posts=victim_readings,
        other_posts=[(r["metric"], r["ts"]) for r in client.readings(other["id"])],
    )


def world_start() -> int:
    return int(time.time() * 1000) - 120_000


def _items(dynamodb: Any, table: str) -> list[str]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table)
    return sorted(json.dumps(item, sort_keys=True, default=str) for page in pages for item in page["Items"])


def _snapshot(stack: LocalStack) -> tuple[list[str], list[str]]:
    """Every item of the devices and readings tables (refused requests must not change them)."""
    conn = stack.connection()
    dynamodb = stack.client("dynamodb")
    return _items(dynamodb, conn["devices_table"]), _items(dynamodb, conn["readings_table"])


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json_body: Any = None
    form: bytes | None = None
    after: Callable[[httpx.Response], None] | None = None


def _call(world: World, client: Client, method: str, route: str, caller: str) -> Call:
    """The request a caller makes to a route, with throwaway targets for the admin's destructive calls."""
    target = world.victim["id"]
    rule_id = world.rule_id
    command_id = world.command_id
    if caller == "admin" and (method, route) in DESTRUCTIVE:
        if "{rule_id}" in route:
            rule_id = client.admin("POST", "/v1/rules", {**RULE, "name": "matrix: throwaway"}).json()["id"]
        else:
            target = client.create_device(f"matrix-throwaway-{uuid.uuid4().hex[:8]}")["id"]
    if caller == "own" and route == "/v1/commands/{command_id}/result":
        # A answers a fresh command of its own (the shared one stays queued for the other callers).
        fresh = client.admin("POST", f"/v1/devices/{target}/commands", {"procedure": "get_status"})
        command_id = fresh.json()["id"]
    token = world.token(caller) or ""
    path = route.format(
        device_id=target,
        command_id=command_id,
        rule_id=rule_id,
        alert_id=world.alert_id,
        report_id=world.report_id,
        token=token,
        name="dashboard.js" if "/js/" in route else "dashboard.css",
    )
    call = Call(method, path)
    ts = world.next_ts()
    if route in ("/v1/telemetry", "/api/v1/{token}/telemetry"):
        call.json_body = {"ts": ts, "values": {"matrix": world.counter}}
        poster = {"own": world.victim_posts, "other": world.other_posts}.get(caller)

        def record(answer: httpx.Response, poster: list[tuple[str, int]] | None = poster) -> None:
            if answer.status_code == 200 and poster is not None:
                poster.append(("matrix", ts))

        call.after = record
    elif route == "/v1/devices" and method == "POST":
        call.json_body = {"name": "matrix-created", "id": f"matrix-created-{uuid.uuid4().hex[:8]}"}
    elif route == "/v1/devices/{device_id}" and method == "PATCH":
        call.json_body = {"name": "renamed"}
    elif route.endswith("/commands") and method == "POST":
        call.json_body = {"procedure": "reboot"} if route.startswith("/v1") else None
    elif route == "/v1/rules" and method == "POST":
        call.json_body = {**RULE, "name": "matrix: created"}
    elif route == "/v1/rules/{rule_id}" and method == "PATCH":
        call.json_body = {"severity": "minor"}
    elif route.endswith("/result"):
        call.json_body = {"result": {"ok": True}}
    elif route == "/v1/search":
        call.params = {"q": "secret"}
    elif route == "/v1/commands":
        call.params = {"wait": 0}
    elif route == "/dashboard/data/states":
        call.params = {"ids": world.victim["id"]}
    if route.startswith("/dashboard") and method == "POST":
        call.form = b"csrf=forged&token=" + token.encode()
    return call


def _send(client: Client, call: Call, token: str | None) -> httpx.Response:
    if call.form is not None:
        return client.request(
            call.method, call.path, token, content=call.form, content_type="application/x-www-form-urlencoded"
        )
    if call.path.startswith("/api/v1/"):
        token = None  # the ThingsBoard path: the token is in the URL only
    return client.request(call.method, call.path, token, call.json_body, params=call.params)


def _leaks(world: World, caller: str, answer: httpx.Response) -> list[str]:
    """What of A's an answer to someone other than the admin or A shows (beyond what the request held)."""
    if caller in ("admin", "own"):
        return []
    sent = str(answer.request.url) + answer.request.content.decode("utf-8", "replace")
    markers = {"A's data": world.secret, "A's command id": world.command_id}
    markers.update({f"a token ({who})": world.token(who) or "-" for who in ("own", "other", "disabled", "admin")})
    return [name for name, marker in markers.items() if marker in answer.text and marker not in sent]


def _problems(route: str, status: int, code: str | None, answer: httpx.Response) -> list[str]:
    """How an answer differs from the expected status and code (and the headers that go with them)."""
    api = route.startswith(("/v1", "/api"))
    if answer.status_code != status:
        return [f"answered {answer.status_code}, expected {status}: {answer.text[:160]!r}"]
    problems: list[str] = []
    if code is not None and api and error_code(answer) != code:
        problems.append(f"error.code {error_code(answer)!r}, expected {code!r}")
    if status == 401 and api and not answer.headers.get("www-authenticate", "").startswith("Bearer"):
        problems.append("a 401 without WWW-Authenticate: Bearer")
    if status == 303 and "/dashboard/sign-in" not in answer.headers.get("location", ""):
        problems.append(f"a redirect to {answer.headers.get('location')!r}, not to sign-in")
    return problems


def run(work: Path) -> PartResult:
    result = PartResult("auth matrix")
    with local_stack(work / "stack") as stack, Client(stack.api_url, stack.admin_token) as client:
        from app import app  # the stack loaded it: the routes it serves

        routes = sorted((m, path) for path, methods in app.routes.items() for m in methods)
        world = _setup(stack, client)
        unknown_routes = [r for r in routes if r not in MATRIX]
        for method, route in unknown_routes:
            result.fail(f"{method} {route}: not in the auth matrix (add its row to reliability/auth_matrix.py)")
        stale = [r for r in MATRIX if r not in routes]
        result.notes += [f"{m} {p}: in the matrix but not served (removed?)" for m, p in stale]
        requests = passed = leaks = refused_unchanged = 0
        rows: list[dict[str, Any]] = []
        for method, route in routes:
            if (method, route) not in MATRIX:
                continue
            cells = MATRIX[(method, route)]
            for caller, cell in zip(CALLERS, cells, strict=True):
                status, code = expected(cell, caller)
                call = _call(world, client, method, route, caller)
                before = _snapshot(stack) if status >= 400 else None
                answer = _send(client, call, world.token(caller))
                requests += 1
                if call.after is not None:
                    call.after(answer)
                problems = _problems(route, status, code, answer)
                leaked = _leaks(world, caller, answer)
                if leaked:
                    leaks += 1
                    problems.append(f"the answer shows {', '.join(leaked)}")
                if before is not None:
                    if _snapshot(stack) != before:
                        problems.append("a refused request changed the devices or readings table")
                    else:
                        refused_unchanged += 1
                passed += int(not problems)
                row = {"route": f"{method} {route}", "caller": caller, "status": answer.status_code}
                rows.append({**row, "expected": status, "ok": not problems})
                for problem in problems:
                    result.fail(f"{method} {route} as {caller}: {problem}")
        _final_checks(result, client, world)
    result.figures = {
        "routes": len(routes),
        "callers": len(CALLERS),
        "requests": requests,
        "passed": passed,
        "refused_tables_unchanged": refused_unchanged,
        "cross_device_leaks": leaks,
    }
    result.details = {"matrix": rows}
    return result


def _final_checks(result: PartResult, client: Client, world: World) -> None:
    """A holds only what A posted, B's posts are on B, D holds nothing, A's shared command is untouched."""
    victim = sorted((r["metric"], r["ts"]) for r in client.readings(world.victim["id"]))
    result.check(victim == sorted(world.victim_posts), f"A's readings are not exactly A's posts: {victim[:6]}")
    other = sorted((r["metric"], r["ts"]) for r in client.readings(world.other["id"]))
    result.check(other == sorted(world.other_posts), f"B's readings are not exactly B's posts: {other[:6]}")
    result.check(client.readings(world.disabled["id"]) == [], "the disabled device holds readings")
    command = client.admin("GET", f"/v1/devices/{world.victim['id']}/commands/{world.command_id}").json()
    # Only A's own long poll may have taken it ("invoked"); nobody may have completed it.
    result.check(command.get("status") in ("queued", "invoked"), f"A's command was changed: {command}")
    result.check("result" not in command or command["result"] is None, f"A's command got a result: {command}")
