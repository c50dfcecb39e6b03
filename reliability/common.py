"""What the parts share: their result, an HTTP client with tokens, devices, raw HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import LocalStack, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class PartResult:
    """One part's verdict, its figures (what the docs quote) and what went wrong."""

    name: str
    ok: bool = True
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # each one fails the part
    findings: list[str] = field(default_factory=list)  # worth a look; do not fail the part
    notes: list[str] = field(default_factory=list)  # exclusions and limits of the method
    details: dict[str, Any] = field(default_factory=dict)  # the long form, for the JSON only
    elapsed_s: float = 0.0

    def fail(self, message: str) -> None:
        self.ok = False
        self.failures.append(message)

    def check(self, condition: bool, message: str) -> bool:
        if not condition:
            self.fail(message)
        return condition

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 1),
            "figures": self.figures,
            "failures": self.failures,
            "findings": self.findings,
            "notes": self.notes,
            "details": self.details,
        }


@contextmanager
def local_stack(state_dir: Path, **options: Any) -> Iterator[LocalStack]:
    """A fresh local stack on free ports (its state under state_dir)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=state_dir, **options) as stack:
        yield stack


class Client:
    """JSON over HTTP to the stack, with bearer tokens; never raises on a status."""

    def __init__(self, base_url: str, admin_token: str, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self.admin_token = admin_token
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        sent: dict[str, str] = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            content = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            sent["Content-Type"] = content_type
        return self.http.request(method, path, content=content, headers=sent, params=params)

    def admin(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request(method, path, self.admin_token, json_body, **kwargs)

    def create_device(self, device_id: str, device_type: str = "reliability") -> dict[str, Any]:
        answer = self.admin("POST", "/v1/devices", {"id": device_id, "name": device_id, "type": device_type})
        if answer.status_code != 201:
            raise RuntimeError(f"could not create device {device_id}: {answer.status_code} {answer.text[:300]}")
        device: dict[str, Any] = answer.json()
        return device

    def readings(self, device_id: str) -> list[dict[str, Any]]:
        """Every reading of a device (admin read, following cursors)."""
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 10000}
        while True:
            answer = self.admin("GET", f"/v1/devices/{device_id}/telemetry", params=params)
            if answer.status_code != 200:
                raise RuntimeError(f"could not read {device_id}: {answer.status_code} {answer.text[:300]}")
            doc = answer.json()
            rows.extend(doc["readings"])
            if not doc.get("next_cursor"):
                return rows
            params = {"limit": 10000, "cursor": doc["next_cursor"]}

    def state(self, device_id: str) -> dict[str, Any]:
        answer = self.admin("GET", f"/v1/devices/{device_id}/state")
        if answer.status_code != 200:
            raise RuntimeError(f"could not read the state of {device_id}: {answer.status_code} {answer.text[:300]}")
        doc: dict[str, Any] = answer.json()
        return doc

    def nothing_stored(self, device_id: str) -> bool:
        state = self.state(device_id)
        return not self.readings(device_id) and state["latest"] == [] and state["last_seen"] is None


def hot_rule(device_id: str, name: str) -> dict[str, Any]:
    """An alert rule that a reading of temp > 100 from the device raises at once."""
    return {
        "name": name,
        "scope": {"device": device_id},
        "metric": "temp",
        "condition": {"op": ">", "value": 100},
        "severity": "major",
    }


@dataclass(frozen=True)
class Resources:
    """Ids of what the admin routes act on: a rule, the alert it raised, a scaling report, a command."""

    rule_id: str
    alert_id: str
    report_id: str
    command_id: str


def make_resources(stack: LocalStack, client: Client, device: dict[str, Any], secret: str = "") -> Resources:
    """A rule on the device, a hot reading that raises its alert, a queued command and a report."""
    rule = client.admin("POST", "/v1/rules", hot_rule(device["id"], f"{device['id']} too hot"))
    if rule.status_code != 201:
        raise RuntimeError(f"could not create a rule: {rule.status_code} {rule.text[:300]}")
    values: dict[str, Any] = {"temp": 150, **({"note": secret} if secret else {})}
    ts = int(time.time() * 1000) - 120_000
    posted = client.request("POST", "/v1/telemetry", device["token"], {"ts": ts, "values": values})
    if posted.status_code != 200:
        raise RuntimeError(f"the device could not post: {posted.status_code} {posted.text[:200]}")
    assert stack.emulator is not None
    stack.emulator.drain(timeout=60)  # the live handler raises the rule's alert
    alerts = client.admin("GET", "/v1/alerts", params={"device": device["id"]}).json().get("alerts", [])
    if not alerts:
        raise RuntimeError("the alert rule raised no alert")
    command = client.admin("POST", f"/v1/devices/{device['id']}/commands", {"procedure": "reboot"})
    if command.status_code != 202:
        raise RuntimeError(f"could not queue a command: {command.status_code} {command.text[:200]}")
    report = stack.emulator.run_job("scaling_report")
    return Resources(rule.json()["id"], alerts[0]["id"], str(report["report"]), command.json()["id"])


def error_code(answer: httpx.Response) -> str | None:
    """The `error.code` of a JSON error answer, or None when the body is not that shape."""
    return _error_code(answer.content)


def _error_code(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        code = doc["error"].get("code")
        return str(code) if isinstance(code, str) else None
    return None


@dataclass(frozen=True)
class RawAnswer:
    """What came back on a raw socket: a status (None: no HTTP answer at all) and the bytes."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    note: str = ""

    def json_code(self) -> str | None:
        return _error_code(self.body)


def raw_http(host: str, port: int, request: bytes, timeout: float = 10.0, shutdown_write: bool = False) -> RawAnswer:
    """Send exact bytes and read one answer: for requests no HTTP client would send."""
    data = b""
    note = ""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    length = _content_length(head)
                    if length is not None and len(body) >= length:
                        break
        except TimeoutError:
            note = "timed out"
        except (ConnectionResetError, BrokenPipeError) as e:
            note = f"connection closed: {type(e).__name__}"
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status: int | None = None
    if sep and lines and lines[0].startswith(b"HTTP/"):
        parts = lines[0].split(b" ", 2)
        if len(parts) >= 2 and parts[1].isdigit():
            status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:] if status is not None else []:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if status is None and not note:
        note = "no HTTP answer" if not data else "not an HTTP answer"
    return RawAnswer(status, headers, body if status is not None else data, note)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolation percentile (q in [0, 100])."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Where devices post telemetry: the REST API, or the ingest function's Function URL.
DOORS = ("api", "function-url")


def ingest_url(stack: LocalStack, door: str) -> str:
    """The base URL of a door of the stack."""
    if door not in DOORS:
        raise ValueError(f"unknown door {door!r}")
    return stack.function_url if door == "function-url" else stack.api_url


def part_name(name: str, door: str) -> str:
    """A part's name in the results: the API door's plain, the other door's with its name."""
    return name if door == "api" else f"{name} ({door})"


def run_simulator(
    stack: LocalStack, report: Path, args: list[str], timeout: float, log: Path | None = None, door: str = "api"
) -> tuple[int, dict[str, Any]]:
    """Run `python -m device_sim` against the stack, posting telemetry through `door`; its exit code and report."""
    command = [
        sys.executable, "-m", "device_sim", "--url", stack.api_url, "--admin-token", stack.admin_token,
        "--ingest-url", ingest_url(stack, door), "--report", str(report), "--no-progress", *args,
    ]  # fmt: skip
    with open(log or report.with_suffix(".log"), "wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False, cwd=ROOT)
    doc: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, doc
