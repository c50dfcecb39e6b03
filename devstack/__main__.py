"""`devstack` (or `python -m devstack`): the local stack on 127.0.0.1 (moto and the app), its jobs, SQL over
its archive, and the demo."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from chalicelib.config import ROLLUP_ENGINES
from devstack.demo import FREEZER_METRIC, demo_duration, minimum_duration
from devstack.schedule import ScheduleError
from devstack.serving import Limits
from devstack.stack import STATE_DIR, LocalStack


def cmd_up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack(
        api_port=args.api_port,
        moto_port=args.moto_port,
        ws_port=args.ws_port,
        function_url_port=args.function_url_port,
        stage=args.stage,
        state_dir=Path(args.state_dir),
        limits=Limits(max_active=args.max_requests, max_wait_s=args.max_wait),
        rollup_engine=args.rollup_engine,
    ) as stack:
        print(f"iotcloud local stack is up (stage {stack.stage})")
        print(f"  API:          {stack.api_url}")
        print(f"  Function URL: {stack.function_url}  (device telemetry without API Gateway)")
        print(f"  Dashboard:    {stack.api_url}/dashboard  (sign in with the admin token)")
        print(f"  admin token:  {stack.admin_token}")
        print(f"  WebSocket:    {stack.ws_url}  (WAMP, subprotocol wamp.2.json, realm iotcloud)")
        print(f"  moto (AWS):   {stack.moto_url}")
        print(f"  written to    {stack.state_dir / 'connection.json'}")
        jobs = ", ".join(s.name for s in stack.emulator.schedules()) if stack.emulator else ""
        print(f"  jobs:         {jobs or 'none'} (python -m devstack run-job NAME)")
        print("Try:")
        print(
            f"  curl -s -X POST {stack.api_url}/v1/devices -H 'Authorization: Bearer {stack.admin_token}' "
            "-H 'Content-Type: application/json' -d '{\"name\": \"demo\"}'"
        )
        print("Ctrl-C stops everything.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("\nstopping...", flush=True)
    return 0


def _connection(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "connection.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: start the stack first (make up)")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def cmd_run_job(args: argparse.Namespace) -> int:
    """Run a scheduled handler in this process against the running stack's moto."""
    from chalice.cli import factory as chalice_factory

    from devstack.events import EventEmulator
    from devstack.stack import ROOT
    from infra.stages import stage_environment

    conn = _connection(Path(args.state_dir))
    stack = LocalStack(stage=conn["stage"], moto_port=int(conn["aws_endpoint_url"].rsplit(":", 1)[1]))
    engine = {"ROLLUP_ENGINE": conn.get("rollup_engine") or "lambda"}
    os.environ.update({**stage_environment(stack.stage), **stack.aws_environment(), **engine})
    factory = chalice_factory.CLIFactory(str(ROOT), environ=os.environ)
    app = factory.create_config_obj(chalice_stage_name=stack.stage).chalice_app
    os.environ.update({**stack.aws_environment(), **engine})
    if engine["ROLLUP_ENGINE"] == "athena":  # the stack's DuckDB stand-in, over the same folder
        from devstack.athena import use_local_athena

        use_local_athena(stack.client("s3"), conn["archive_bucket"], Path(args.state_dir))
    result = EventEmulator(app, stack.client).run_job(args.name)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run SQL with DuckDB over the archive in the running stack's S3 (a `readings` view)."""
    import boto3
    from rich.console import Console
    from rich.table import Table

    from devstack.reconcile import archive_database, download_archive

    conn = _connection(Path(args.state_dir))
    s3 = boto3.client(
        "s3", region_name="us-east-1", endpoint_url=conn["aws_endpoint_url"],
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    files = download_archive(s3, conn["archive_bucket"], Path(args.state_dir) / "archive-cache")
    db = archive_database(files)
    cursor = db.execute(args.sql)
    columns = [d[0] for d in cursor.description or []]
    rows = cursor.fetchall()
    if args.json:
        print(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=2))
        return 0
    table = Table(title=f"{len(rows)} rows from {len(files)} archive objects")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console().print(table)
    return 0


def _simulate(stack: LocalStack, args: argparse.Namespace, report: Path) -> int:
    command = [
        sys.executable, "-m", "device_sim",
        "--url", stack.api_url,
        "--admin-token", stack.admin_token,
        "--devices", str(args.devices),
        "--duration", str(args.duration),
        "--interval", str(args.interval),
        "--batch", str(args.batch),
        "--format", args.format,
        "--duplicate-rate", "0.02",
        "--malformed-rate", "0.01",
        "--seed", str(args.seed),
        "--report", str(report),
        "--verify",
    ]  # fmt: skip
    if not sys.stdout.isatty():
        command.append("--no-progress")
    return subprocess.run(command, check=False).returncode


def cmd_demo(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    report_path = state_dir / "demo-report.json"
    started = time.monotonic()
    started_ms = int(time.time() * 1000)
    with LocalStack(api_port=args.api_port, moto_port=args.moto_port, stage=args.stage, state_dir=state_dir) as stack:
        print(f"local stack up at {stack.api_url} (moto at {stack.moto_url})", flush=True)
        print(f"simulating {args.devices} devices for {args.duration:g} s ...", flush=True)
        rule = _alert_rule(stack)
        freezers = _freezers(stack, args, state_dir / "freezers-report.json")
        sim_exit = _simulate(stack, args, report_path)
        freezers_exit = freezers.wait(timeout=args.duration + 180)
        assert stack.emulator is not None
        delivered = stack.emulator.drain(timeout=120)
        jobs = {}
        for schedule in stack.emulator.schedules():
            jobs[schedule.name] = stack.emulator.run_job(schedule.name)
        report = _keep_report(stack, jobs.get("scaling_report"))
        alerts = _alerts(stack, rule)
        stored, archive = _stored_and_archived(stack, state_dir / "archive-cache")
        sim = json.loads(report_path.read_text()) if report_path.exists() else {}
        aggregated = _aggregated_query(stack, started_ms)
        summary = {
            "devices": sim.get("devices"),
            "readings_sent": sim.get("readings_sent"),
            "readings_acked": sim.get("readings_acked"),
            "rejected_by_code": sim.get("rejected_by_code"),
            "rejected_unexpected": sim.get("rejected_unexpected"),
            "server_errors": sim.get("server_errors"),
            "latency_ms": sim.get("latency_ms"),
            "readings_per_second": sim.get("readings_per_second"),
            "verify": sim.get("verify"),
            "readings_stored": stored,
            "archive": archive,
            "stream_records_delivered": delivered,
            "jobs_run": sorted(jobs),
            "scaling_report": report,
            "alerts": alerts,
            "aggregated_query": aggregated,
            "freezers_exit_code": freezers_exit,
            "simulator_exit_code": sim_exit,
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        (state_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _print_summary(stack, summary)
    ok = _demo_passed(summary)
    passed = "passed: nothing acknowledged was lost; the scripted alert was raised and cleared"
    print("demo " + (passed if ok else "FAILED"), flush=True)
    return 0 if ok else 1


def _stored_and_archived(stack: LocalStack, cache: Path) -> tuple[int, dict[str, Any]]:
    """The readings DynamoDB holds, and the archive's counts (downloaded to `cache`): objects, lines, missing."""
    import shutil

    from devstack.reconcile import archive_counts, archived_identities, download_archive, stored_identities

    conn = stack.connection()
    stored_ids = stored_identities(stack.client("dynamodb"), conn["readings_table"])
    shutil.rmtree(cache, ignore_errors=True)
    files = download_archive(stack.client("s3"), conn["archive_bucket"], cache)
    archive = {**archive_counts(files), "objects": len(files)}
    archive["missing"] = len(stored_ids - archived_identities(files))
    return len(stored_ids), archive


def _demo_passed(summary: dict[str, Any]) -> bool:
    """Both simulators succeeded, nothing acked is missing or archived twice, the scripted alert came and went."""
    archive, alerts = summary["archive"], summary["alerts"]
    return bool(
        summary["simulator_exit_code"] == 0
        and summary["freezers_exit_code"] == 0
        and ((summary["verify"] or {}).get("missing", 1)) == 0
        and summary["readings_stored"] >= int(summary["readings_acked"] or 0)
        and archive["missing"] == 0
        and archive["duplicated"] == 0
        and alerts["raised"] == alerts["cleared"] == 1  # the scripted warm-up, raised and cleared
        and summary["aggregated_query"].get("status") == 200
        and bool(summary["aggregated_query"]["answer"]["buckets"])
    )


def _aggregated_query(stack: LocalStack, since_ms: int) -> dict[str, Any]:
    """One aggregated query's answer: the first freezer's temperature, averaged over 10-second buckets."""
    import httpx

    with httpx.Client(base_url=stack.api_url, headers=_admin(stack), timeout=10) as http:
        listed = http.get("/v1/devices", params={"limit": 100})
        listed.raise_for_status()
        freezers = sorted(d["id"] for d in listed.json()["devices"] if d["type"] == "freezer")
        if not freezers:
            return {"error": "no freezer registered"}
        path = f"/v1/devices/{freezers[0]}/telemetry?metric={FREEZER_METRIC}&agg=avg&interval=10s&from={since_ms}"
        answer = http.get(path)
        return {"request": "GET " + path, "status": answer.status_code, "answer": answer.json()}


def _admin(stack: LocalStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin_token}", "Content-Type": "application/json"}


def _alert_rule(stack: LocalStack) -> str:
    """The demo's alert rule: a freezer above -15 C for 2 readings (cleared below -18 C)."""
    import httpx

    from devstack.demo import FREEZER_RULE

    answer = httpx.post(f"{stack.api_url}/v1/rules", json=FREEZER_RULE, headers=_admin(stack), timeout=10)
    answer.raise_for_status()
    return str(answer.json()["id"])


def _freezers(stack: LocalStack, args: argparse.Namespace, report: Path) -> subprocess.Popen[bytes]:
    """Three freezers beside the fleet; the first warms to -5 C (a scripted anomaly fitted to the
    duration, devstack/demo.py), long enough to raise the alert and early enough to clear it."""
    from devstack.demo import FREEZER_DEVICES, FREEZER_INTERVAL_S, freezer_profile, warm_up

    script = warm_up(args.duration)
    print(f"freezer 1 warms up from {script.at:g} s to {script.ends:g} s of {args.duration:g} s", flush=True)
    profile = freezer_profile(script, stack.state_dir / "freezers-profile.yaml")
    command = [
        sys.executable, "-m", "device_sim", "--url", stack.api_url, "--admin-token", stack.admin_token,
        "--profile", str(profile), "--devices", str(FREEZER_DEVICES), "--duration", str(args.duration),
        "--interval", f"{FREEZER_INTERVAL_S:g}",
        "--batch", "2", "--seed", str(args.seed), "--report", str(report), "--verify", "--no-progress",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _alerts(stack: LocalStack, rule_id: str) -> dict[str, Any]:
    """What the scripted anomaly raised and cleared, and the mails it sent."""
    import httpx

    answer = httpx.get(f"{stack.api_url}/v1/alerts", headers=_admin(stack), timeout=10)
    answer.raise_for_status()
    alerts = [a for a in answer.json()["alerts"] if a.get("rule_id") == rule_id]
    # This run's alert mails only: the mail directory keeps those of earlier runs.
    ids = [str(a["id"]) for a in alerts]
    mails = sorted(
        str(p) for p in (stack.state_dir / "mail").glob("*.eml") if any(i in p.read_text(errors="replace") for i in ids)
    )
    return {
        "raised": len(alerts),
        "cleared": sum(1 for a in alerts if a.get("state") == "cleared"),
        "alerts": [{k: a.get(k) for k in ("id", "device_id", "state", "severity")} for a in alerts],
        "mails": mails,
    }


def _keep_report(stack: LocalStack, run: dict[str, Any] | None) -> dict[str, Any] | None:
    """Copy the demo's scaling report, chart and mail out of moto before the stack stops."""
    if not run:
        return None
    bucket = stack.connection()["archive_bucket"]
    s3 = stack.client("s3")
    target = stack.state_dir / "reports"
    target.mkdir(parents=True, exist_ok=True)
    kept = {}
    for kind, key in run["s3"].items():
        path = target / Path(key).name
        path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        kept[kind] = str(path)
    mails = sorted((stack.state_dir / "mail").glob("*.eml"))
    return {
        "id": run["report"],
        "api": f"{stack.api_url}/v1/reports/{run['report']}",
        "s3": [f"s3://{bucket}/{key}" for key in run["s3"].values()],
        "saved": kept,
        "email": str(mails[-1]) if mails else None,
        "mailed_to": run.get("mailed_to", []),
    }


def _print_summary(stack: LocalStack, summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="iotcloud demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "aggregated_query":  # printed whole below
            value = f"{len((value.get('answer') or {}).get('buckets') or [])} buckets (status {value.get('status')})"
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    console = Console()
    console.print(table)
    aggregated = summary.get("aggregated_query") or {}
    if aggregated.get("answer"):
        console.print(f"one aggregated query: {aggregated['request']}")
        console.print_json(json.dumps(aggregated["answer"]))
    console.print(f"summary written to {stack.state_dir / 'demo-summary.json'}")
    report = summary.get("scaling_report")
    if report:
        console.print(f"scaling report {report['id']}: {report['saved'].get('json')}")
        console.print(f"  its chart: {report['saved'].get('chart')}   its email: {report['email']}")
    console.print(
        f"To explore, start the stack with [bold]make up[/] and open the dashboard at {stack.api_url}/dashboard "
        "(sign in with the printed admin token), or try:"
    )
    console.print(f"  curl -s {stack.api_url}/v1/devices -H 'Authorization: Bearer $TOKEN'")
    console.print(
        f"  curl -s '{stack.api_url}/v1/devices/DEVICE_ID/telemetry?limit=10' -H 'Authorization: Bearer $TOKEN'"
    )
    day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    console.print(
        f"  curl -s '{stack.api_url}/v1/devices/DEVICE_ID/telemetry?metric=temp&agg=avg&points=100&from={day_ago}' "
        "-H 'Authorization: Bearer $TOKEN'"
    )
    console.print(f"  curl -s {stack.api_url}/v1/openapi.json")


def project_version() -> str:
    """The project's version: pyproject.toml's in a checkout, else that of the distribution holding devstack.

    The checkout comes first: an editable install's metadata keeps the version it was installed with.
    """
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    return metadata.version(metadata.packages_distributions()[__package__ or "devstack"][0])


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    # The `devstack` console script shows its own name; `python -m` would show "__main__.py".
    prog = "python -m devstack" if Path(sys.argv[0]).name == "__main__.py" else "devstack"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"devstack {project_version()}")
    parser.add_argument("--state-dir", default=str(STATE_DIR), help="where connection.json and reports go")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start moto + the app on 127.0.0.1 until Ctrl-C")
    up.add_argument("--api-port", type=int, default=8000)
    up.add_argument("--moto-port", type=int, default=5000)
    up.add_argument("--ws-port", type=int, default=8001, help="the WebSocket (WAMP) API")
    up.add_argument(
        "--function-url-port", type=int, default=8002, help="the ingest function's Function URL (telemetry)"
    )
    up.add_argument("--stage", default="dev")
    up.add_argument(
        "--max-requests", type=int, default=Limits.max_active, help="requests the API runs at once (%(default)s)"
    )
    up.add_argument(
        "--max-wait", type=float, default=Limits.max_wait_s,
        help="seconds a request may wait for a slot before it is answered 503 (%(default)s)",
    )  # fmt: skip
    up.add_argument(
        "--rollup-engine", choices=ROLLUP_ENGINES, default="",
        help="the hourly rollup's engine (ROLLUP_ENGINE; athena runs its SQL in DuckDB here); default: the stage's",
    )  # fmt: skip
    up.set_defaults(func=cmd_up)

    job = sub.add_parser("run-job", help="run a scheduled handler now against the running stack")
    job.add_argument("name")
    job.set_defaults(func=cmd_run_job)

    query = sub.add_parser("query", help="SQL (DuckDB) over the archive: a `readings` view")
    query.add_argument("sql", help='e.g. "SELECT metric, count(*) FROM readings GROUP BY 1"')
    query.add_argument("--json", action="store_true", help="print rows as JSON")
    query.set_defaults(func=cmd_query)

    demo = sub.add_parser("demo", help="stack + simulator + jobs + verify, then stop")
    demo.add_argument("--api-port", type=int, default=8000)
    demo.add_argument("--moto-port", type=int, default=5000)
    demo.add_argument("--stage", default="dev")
    demo.add_argument("--devices", type=int, default=50)
    demo.add_argument(
        "--duration", type=demo_duration, default=60.0,
        help=f"seconds (default 60, at least {minimum_duration():g}: the scripted alert must raise and clear)",
    )  # fmt: skip
    demo.add_argument("--interval", type=float, default=1.0)
    demo.add_argument("--batch", type=int, default=10)
    demo.add_argument("--format", default="json", choices=["json", "senml-json", "senml-xml", "thingsboard"])
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ScheduleError as error:  # the app declares a schedule the local stack cannot run
        raise SystemExit(f"{prog}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
