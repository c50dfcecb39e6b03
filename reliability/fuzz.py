"""Fuzzing: schemathesis against /v1/openapi.json on a local stack, every operation, with tokens.

Two runs of the schemathesis CLI (pinned in requirements-dev.txt): with the admin token
over every operation of the document, and with a device token over the operations a device
calls (its telemetry, state, rollups, commands; its own id and token in the paths). Checks:
no 5xx, and every answer's status, content type, headers and body as the document says.
Every failure is a finding: the part fails and lists the operation, the check and the
request to reproduce it (schemathesis's own report is kept beside the JSON).

Exclusions (docs/RELIABILITY.md): TRACE and QUERY are left out of the "unexpected method"
probes, because the local server (Python's http.server) answers them 501 before the app; the
device long poll is fuzzed with wait=0 (its waits of up to 20 s would eat the time budget).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from reliability.common import Client, PartResult, local_stack, make_resources

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
DEVICE_OPERATIONS = (
    "postTelemetry",
    "postThingsboardTelemetry",
    "getTelemetry",
    "getState",
    "getRollups",
    "pollCommands",
    "postCommandResult",
)
UNEXPECTED_METHODS = ("get", "put", "post", "delete", "options", "patch")  # not trace, query: see above
RUN_TIMEOUT_S = 420


def _config(path: Path, parameters: dict[str, str]) -> Path:
    lines = ["[parameters]"]
    lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in parameters.items()]
    lines += ["", "[phases.coverage]", f"unexpected-methods = {json.dumps(list(UNEXPECTED_METHODS))}", ""]
    path.write_text("\n".join(lines))
    return path


def _schemathesis(
    work: Path, name: str, url: str, token: str, parameters: dict[str, str], operations: tuple[str, ...],
    max_examples: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """One CLI run; its JSON report, exit code and the text of its failures."""
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _config(run_dir / "schemathesis.toml", parameters)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/v1/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(max_examples),
        "--seed", str(seed),
        "--request-timeout", "30",
        "--generation-database", "none",
        "--no-color",
        "--report", "json,junit",
        "--report-dir", str(run_dir),
    ]  # fmt: skip
    for operation in operations:
        command += ["--include-operation-id", operation]
    log = run_dir / "schemathesis.log"
    with open(log, "wb") as out:
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=run_dir, timeout=RUN_TIMEOUT_S, check=False
        )
    reports = sorted(run_dir.glob("json-*.json"))
    report: dict[str, Any] = json.loads(reports[-1].read_text()) if reports else {}
    text = log.read_text(errors="replace")
    return {"exit_code": done.returncode, "report": report, "log": str(log), "failures_text": _failures_text(text)}


def _failures_text(text: str) -> list[str]:
    """The FAILURES and ERRORS sections of the CLI's output, one block per operation."""
    blocks: list[str] = []
    for section in ("FAILURES", "ERRORS"):
        match = re.search(rf"=+ {section} =+\n(.*?)(?:\n=+ [A-Z]+ =+\n|\Z)", text, re.S)
        if match:
            blocks += [b.strip() for b in re.split(r"\n_{5,} ", "\n" + match.group(1)) if b.strip()]
    return blocks


def run(work: Path, max_examples: int = 25, seed: int = 1) -> PartResult:
    result = PartResult("fuzzing")
    with local_stack(work / "stack") as stack, Client(stack.api_url, stack.admin_token) as client:
        device = client.create_device("fuzz-device")
        target = client.create_device("fuzz-target")
        resources = make_resources(stack, client, target)
        # The device run first: the admin run's stateful phase deletes devices and rotates tokens it finds.
        device_run = _schemathesis(
            work, "device", stack.api_url, device["token"],
            {"path.device_id": device["id"], "path.token": device["token"], "query.wait": "0"},
            DEVICE_OPERATIONS, max_examples, seed,
        )  # fmt: skip
        # Real ids, so the admin's reads reach the stores (and a DELETE deletes once, then 404s).
        known = {
            "path.rule_id": resources.rule_id,
            "path.alert_id": resources.alert_id,
            "path.report_id": resources.report_id,
            "path.name": "dashboard.js",
            # The ThingsBoard path's token is the device's credential: a real one, or every request is a 401.
            "path.token": device["token"],
            "query.wait": "0",
        }
        admin_run = _schemathesis(work, "admin", stack.api_url, stack.admin_token, known, (), max_examples, seed)
        runs = {"device": device_run, "admin": admin_run}
    totals = {"operations": 0, "test_cases": 0, "failures": 0, "errors": 0, "server_errors": 0, "schema_mismatches": 0}
    per_run: dict[str, Any] = {}
    for name, outcome in runs.items():
        summary = _read_run(result, name, outcome, totals)
        if summary is not None:
            per_run[name] = summary
    result.figures = {**totals, "max_examples": max_examples, "checks": list(CHECKS)}
    result.details = per_run
    result.notes = [
        "TRACE and QUERY are not probed as unexpected methods: the local server answers them 501 itself",
        "the long poll GET /v1/commands is fuzzed with wait=0 (its real waits would take the time budget)",
        "SenML XML bodies are generated as plain strings: schemathesis cannot build XML from the document",
    ]
    return result


def _read_run(result: PartResult, name: str, outcome: dict[str, Any], totals: dict[str, int]) -> dict[str, Any] | None:
    """One schemathesis run's report: added to `totals`, its failures to `result`; its details (None: no report)."""
    report = outcome["report"]
    if not report:
        result.fail(f"{name} run: no report (exit {outcome['exit_code']}); see {outcome['log']}")
        return None
    cases = report.get("test_cases", {})
    failures = report.get("failures", [])
    errors = report.get("errors", [])
    operations = report.get("operations", {})
    totals["operations"] += int(operations.get("tested", 0))
    totals["test_cases"] += int(cases.get("generated", 0))
    totals["failures"] += sum(int(f.get("count", 1)) for f in failures)
    totals["errors"] += len(errors)
    for failure in failures:
        count = int(failure.get("count", 1))
        if failure.get("code") == "ST101":  # Server error
            totals["server_errors"] += count
        if "schema" in str(failure.get("title", "")).lower():
            totals["schema_mismatches"] += count
        ops = ", ".join(failure.get("operations", [])[:8])
        result.fail(f"{name} run: {failure.get('code')} {failure.get('title')} x{count}: {ops}")
    for error in errors:
        result.fail(f"{name} run: error: {json.dumps(error)[:300]}")
    unauthenticated = report.get("warnings", {}).get("missing_auth", [])
    if name == "device":
        # The device's own reads must have got through: otherwise the run fuzzed only the 401 path.
        for operation in ("GET /v1/devices/{device_id}/state", "GET /v1/devices/{device_id}/telemetry"):
            result.check(operation not in unauthenticated, f"device run: {operation} was only ever refused")
    looser = report.get("warnings", {}).get("validation_mismatch", [])
    if looser:
        result.findings.append(
            f"{name} run: the API refused most of what the document allows for {', '.join(looser)}: "
            "their request schemas are looser than the validation (the document could say more)"
        )
    if outcome["exit_code"] != 0 and not failures and not errors:
        result.fail(f"{name} run: schemathesis exited {outcome['exit_code']}; see {outcome['log']}")
    return {
        "exit_code": outcome["exit_code"],
        "operations_tested": operations.get("tested"),
        "test_cases": cases,
        "phases": {k: v.get("status") for k, v in report.get("phases", {}).items()},
        "warnings": report.get("warnings", {}),
        "running_time_s": report.get("running_time"),
        "failures": failures,
        "errors": errors,
        "failures_text": outcome["failures_text"],
        "log": outcome["log"],
    }

