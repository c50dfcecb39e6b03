"""`python -m reliability`: run the reliability parts against local stacks, print and save the figures.

Exit status 0 when every part passed, 1 otherwise. Results: bench/results/reliability.json
(figures, failures, findings, notes of each part); logs: bench/results/reliability/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reliability.common import DOORS, RESULTS, PartResult, part_name

PARTS = ("bad_input", "auth", "fuzz", "faults", "load")
# The parts that post device telemetry run once per door (the REST API, the Function URL).
DOOR_PARTS = ("faults", "load")


def _runs(parts: list[str], doors: list[str]) -> list[tuple[str, str]]:
    """(part, door) in order: a telemetry part once per door, the others once."""
    return [(name, door) for name in parts for door in (doors if name in DOOR_PARTS else ["api"])]


def _runner(name: str, args: argparse.Namespace, door: str = "api") -> Callable[[Path], PartResult]:
    if name == "bad_input":
        from reliability import bad_input

        return bad_input.run
    if name == "auth":
        from reliability import auth_matrix

        return auth_matrix.run
    if name == "fuzz":
        from reliability import fuzz

        return lambda work: fuzz.run(work, max_examples=args.fuzz_examples, seed=args.seed)
    if name == "faults":
        from reliability import fault_run

        return lambda work: fault_run.run(
            work, seed=args.seed, devices=args.fault_devices, duration=args.fault_duration, door=door
        )
    if name == "load":
        from reliability import load

        return lambda work: load.run(
            work, devices=args.load_devices, duration=args.load_duration, seed=args.seed, door=door
        )
    raise ValueError(f"unknown part {name!r}")


def _summary(result: PartResult) -> str:
    figures = result.figures
    keys = {
        "bad input": ["distinct_cases", "requests_sent", "passed", "answers_by_status"],
        "auth matrix": ["routes", "callers", "requests", "passed", "cross_device_leaks"],
        "fuzzing": ["operations", "test_cases", "failures", "server_errors", "schema_mismatches"],
        "faults": [
            "door", "acked", "stored", "archived", "lost", "duplicated", "answers_200", "answers_503", "injected",
        ],  # fmt: skip
        "load": ["door", "devices", "readings_per_second", "latency_ms", "answers_503", "server_errors", "lost"],
    }.get(result.name.split(" (")[0], list(figures))
    return "\n".join(f"{k}: {_short(figures[k])}" for k in keys if k in figures)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _print(console: Console, results: list[PartResult], elapsed: float) -> None:
    table = Table(title=f"iotcloud reliability ({elapsed:.0f} s)", show_lines=True)
    table.add_column("part")
    table.add_column("result")
    table.add_column("figures")
    table.add_column("time", justify="right")
    for result in results:
        verdict = "[green]passed[/]" if result.ok else f"[red]FAILED[/] ({len(result.failures)})"
        table.add_row(result.name, verdict, _summary(result), f"{result.elapsed_s:.0f} s")
    console.print(table)
    for result in results:
        for failure in result.failures[:20]:
            console.print(f"[red]FAIL[/] {result.name}: {failure}", markup=True, highlight=False)
        if len(result.failures) > 20:
            console.print(f"[red]FAIL[/] {result.name}: ... {len(result.failures) - 20} more in the JSON")
        for finding in result.findings:
            console.print(f"[yellow]finding[/] {result.name}: {finding}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument(
        "--doors",
        default=",".join(DOORS),
        help=f"where {' and '.join(DOOR_PARTS)} post telemetry, comma-separated, of: {', '.join(DOORS)}",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fuzz-examples", type=int, default=25, help="schemathesis examples per operation")
    parser.add_argument("--fault-devices", type=int, default=20)
    parser.add_argument("--fault-duration", type=float, default=30.0)
    parser.add_argument("--load-devices", type=int, default=500)
    parser.add_argument("--load-duration", type=float, default=60.0)
    parser.add_argument("--out", default=str(RESULTS / "reliability.json"))
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts: {', '.join(unknown)}")
    doors = [d.strip() for d in args.doors.split(",") if d.strip()]
    if not doors or any(d not in DOORS for d in doors):
        parser.error(f"--doors takes {', '.join(DOORS)}")

    work = RESULTS / "reliability"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    # The app logs every 503 and every injected fault: keep stderr for the figures.
    logging.basicConfig(filename=work / "app.log", level=logging.WARNING, force=True)
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.monotonic()
    results: list[PartResult] = []
    for name, door in _runs(parts, doors):
        label = part_name(name, door)
        folder = label.replace(" (", "-").rstrip(")")
        console.print(f"[bold]{label}[/] ...", highlight=False)
        part_started = time.monotonic()
        try:
            # The local server prints a traceback for every client that hung up early: keep them in a file.
            with open(work / f"{folder}.stderr.log", "w") as stderr, contextlib.redirect_stderr(stderr):
                result = _runner(name, args, door)(work / folder)
        except Exception as e:  # a part that cannot run has failed; the others still run
            logging.getLogger("reliability").exception("part %s failed to run", label)
            result = PartResult(label)
            result.fail(f"could not run: {type(e).__name__}: {e}")
        result.elapsed_s = time.monotonic() - part_started
        verdict = "passed" if result.ok else "FAILED"
        console.print(f"  {result.name}: {verdict} in {result.elapsed_s:.0f} s", highlight=False)
        results.append(result)
    elapsed = time.monotonic() - started
    _print(console, results, elapsed)
    doc = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m reliability " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "elapsed_s": round(elapsed, 1),
        "ok": all(r.ok for r in results),
        "parts": {r.name: r.as_dict() for r in results},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    console.print(f"written to {out} (logs in {work})")
    ok = all(r.ok for r in results)
    console.print("reliability " + ("[green]passed[/]" if ok else "[red]FAILED[/]"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
