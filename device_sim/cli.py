"""Command line: ``python -m device_sim [options]`` (see README.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from rich.console import Console

from device_sim import __version__
from device_sim.config import (
    DEFAULT_DEVICES,
    DEFAULT_INTERVAL,
    DEFAULT_PROVISION_TIMEOUT,
    DEFAULT_SKEW_RATE,
    DEFAULT_URL,
    DOORS,
    TRANSPORTS,
    SimConfig,
)
from device_sim.display import summary_table
from device_sim.fakeserver import FakeServer
from device_sim.fleet import ProvisionError, load_tokens_file
from device_sim.model import FORMATS, MAX_METRICS_PER_RECORD
from device_sim.profiles import ProfileError, builtin_profiles, load_profile
from device_sim.runner import run_simulation

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
SERVER_MAX_RECORDS = 1000
DEFAULT_LOCAL_WS_URL = "ws://127.0.0.1:8001"  # `make up`'s WebSocket API beside http://127.0.0.1:8000
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None/False/"" and where the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default == "" or "default" in text:
            return text
        return super()._get_help_string(action)


def _target_options(p: argparse.ArgumentParser) -> None:
    """The target options: where the devices send, as whom, over which transport."""
    g = p.add_argument_group("target")
    g.add_argument(
        "--url",
        default=os.environ.get("IOTCLOUD_URL", DEFAULT_URL),
        help=f"API base URL, e.g. a deployed stage's https URL (default: env IOTCLOUD_URL, else {DEFAULT_URL})",
    )
    g.add_argument(
        "--admin-token",
        default=None,
        help="admin bearer token for provisioning and --verify (default: env IOTCLOUD_ADMIN_TOKEN)",
    )
    g.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="http",
        help="how devices send telemetry: HTTP posts, or WAMP publications on a WebSocket "
        "session that also answers procedure calls (set_interval, reboot, get_status)",
    )
    g.add_argument(
        "--ws-url",
        default=None,
        help="WebSocket (WAMP) API URL for --transport wamp (default: env IOTCLOUD_WS_URL, else "
        "the ws_url of .devstack/connection.json when its api_url is --url, else "
        f"{DEFAULT_LOCAL_WS_URL} for {DEFAULT_URL})",
    )
    g.add_argument(
        "--ingest-url",
        default=None,
        help="where devices post telemetry when it is not --url: a deployed stage's Function URL "
        "(its stack output IngestFunctionUrl); provisioning and --verify still use --url",
    )
    g.add_argument(
        "--door",
        choices=DOORS,
        default="api",
        help="api: post telemetry to --url (the REST API); function-url: to --ingest-url, else "
        "the function_url of .devstack/connection.json when its api_url is --url",
    )
    g.add_argument(
        "--tokens-file",
        metavar="FILE",
        help="reuse device identities from FILE and write newly provisioned ones "
        "to it (contains secrets; written with mode 0600)",
    )


def _profile_decides(
    g: argparse._ArgumentGroup, flag: str, kind: type, what: str, from_profile: str, fallback: float
) -> None:
    """An option left None when not given, so the fleet profile decides it (`fallback` when it doesn't)."""
    g.add_argument(flag, type=kind, default=None, help=f"{what} (default: {from_profile}, else {fallback})")


def _load_options(p: argparse.ArgumentParser) -> None:
    """The fleet and load options: how many devices, what they send, how much of it."""
    g = p.add_argument_group("fleet and load")
    _profile_decides(g, "--devices", int, "number of devices", "sum of the profile's counts", DEFAULT_DEVICES)
    g.add_argument("--duration", type=float, default=30.0, help="seconds to generate records")
    g.add_argument("--count", type=int, default=None, help="records per device (replaces --duration)")
    _profile_decides(
        g, "--interval", float, "seconds between records of a device", "the device type's interval", DEFAULT_INTERVAL
    )
    g.add_argument("--batch", type=int, default=10, help="records per request")
    g.add_argument("--format", dest="fmt", choices=FORMATS, default="json", help="wire format")
    g.add_argument(
        "--profile",
        default=None,
        help=f"fleet profile: a YAML/JSON file or a built-in name "
        f"({', '.join(builtin_profiles())}); default: built-in 'default'",
    )
    g.add_argument("--seed", type=int, default=1, help="seed for values, faults and jitter")
    g.add_argument(
        "--start-ms",
        type=int,
        default=None,
        help="synthetic timestamps starting at this epoch ms (default: real time)",
    )
    g.add_argument("--concurrency", type=int, default=64, help="max requests in flight")


def _network_options(p: argparse.ArgumentParser) -> None:
    """The network behaviour options: timeouts, retries and buffering of a device that cannot deliver."""
    g = p.add_argument_group("network behaviour")
    g.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    g.add_argument(
        "--max-retries",
        type=int,
        default=5,
        help="retries per request on 429/503/5xx/timeouts/connection errors",
    )
    g.add_argument(
        "--buffer-limit",
        type=int,
        default=10_000,
        help="records a device buffers while it cannot deliver; oldest dropped",
    )
    g.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="--transport wamp: seconds devices stay connected, answering calls, after sending",
    )
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds a device keeps trying to deliver buffered data after it stopped producing",
    )
    g.add_argument(
        "--provision-timeout",
        type=float,
        default=DEFAULT_PROVISION_TIMEOUT,
        help="seconds provisioning keeps retrying a device (same backoff as telemetry)",
    )


def _fault_options(p: argparse.ArgumentParser) -> None:
    """The fault injection options: the misbehaviour injected into the traffic."""
    g = p.add_argument_group("fault injection")
    g.add_argument(
        "--duplicate-rate",
        type=_probability,
        default=0.0,
        help="probability an acked batch is sent again (same Idempotency-Key)",
    )
    g.add_argument(
        "--malformed-rate",
        type=_probability,
        default=0.0,
        help="probability a batch is preceded by a deliberately invalid request",
    )
    g.add_argument(
        "--clock-skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="max absolute clock skew of skewed devices (uniform in +-SECONDS)",
    )
    g.add_argument(
        "--skew-rate",
        type=_probability,
        default=DEFAULT_SKEW_RATE,
        help="fraction of devices with a skewed clock (when --clock-skew > 0)",
    )
    g.add_argument(
        "--burst-rate",
        type=_probability,
        default=0.0,
        help="probability, per batch, that a device holds 2-5 batches and sends them at once",
    )


def _output_options(p: argparse.ArgumentParser) -> None:
    """The output options: the report, the read-back check and the display."""
    g = p.add_argument_group("output")
    g.add_argument("--report", metavar="FILE", help="write the JSON report to FILE ('-': stdout)")
    g.add_argument(
        "--verify",
        action="store_true",
        help="read the telemetry back and check every acked reading is stored",
    )
    g.add_argument("--no-progress", action="store_true", help="no live progress display")
    g.add_argument(
        "--fake-server",
        action="store_true",
        help="talk to an in-process fake of the API instead of --url (no network; for trying options out)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m device_sim",
        description="Simulate a fleet of IoT devices posting telemetry to the iotcloud API.",
        formatter_class=_HelpFormatter,
        epilog="Exit status: 0 clean run, 1 failures (see the report's 'failures'), "
        "2 bad options or provisioning failed, 130 interrupted twice.",
    )
    p.add_argument("--version", action="version", version=f"device_sim {__version__}")
    _target_options(p)
    _load_options(p)
    _network_options(p)
    _fault_options(p)
    _output_options(p)
    return p


def connection_files() -> list[Path]:
    """Where `make up` leaves its connection.json: the working directory's .devstack/, then
    the checkout's (device_sim's parent directory)."""
    here = Path.cwd() / ".devstack" / "connection.json"
    checkout = Path(__file__).resolve().parent.parent / ".devstack" / "connection.json"
    return [here] if here == checkout else [here, checkout]


def resolve_ws_url(
    explicit: str | None,
    url: str,
    environ: Mapping[str, str],
    files: Sequence[Path] = (),
) -> str | None:
    """The WAMP URL: --ws-url; else env IOTCLOUD_WS_URL; else the ``ws_url`` of a local
    stack's connection.json whose ``api_url`` is ``url`` (so a stale file of another stack is
    never used); else ws://<host>:8001 when ``url`` is `make up`'s default
    http://<loopback>:8000. None when none applies (a deployed stage: pass --ws-url)."""
    if explicit:
        return explicit
    if environ.get("IOTCLOUD_WS_URL"):
        return environ["IOTCLOUD_WS_URL"]
    found = from_connection("ws_url", url, files)
    if found:
        return found
    wanted = url.rstrip("/")
    parsed = urlparse(wanted)
    if parsed.scheme == "http" and parsed.hostname in LOOPBACK and parsed.port == 8000 and not parsed.path:
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return f"ws://{host}:8001"
    return None


def from_connection(key: str, url: str, files: Sequence[Path]) -> str | None:
    """`key` of the first local stack's connection.json whose ``api_url`` is ``url`` (a stale
    file of another stack is never used), or None."""
    wanted = url.rstrip("/")
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        api_url, value = data.get("api_url"), data.get(key)
        if isinstance(api_url, str) and api_url.rstrip("/") == wanted and isinstance(value, str) and value:
            return value
    return None


def resolve_ingest_url(explicit: str | None, door: str, url: str, files: Sequence[Path] = ()) -> str | None:
    """Where telemetry goes: --ingest-url; else, for --door function-url, the local stack's
    function_url; None for the REST API (--url) or when the function URL is unknown."""
    if explicit:
        return explicit.rstrip("/")
    if door == "function-url":
        return from_connection("function_url", url, files)
    return None


def config_from_args(args: argparse.Namespace, stdout_is_tty: bool) -> SimConfig:
    """Build and validate a SimConfig; raises ValueError/ProfileError with a message."""
    profile = load_profile(args.profile)
    cfg = SimConfig(
        profile=profile,
        url=args.url.rstrip("/"),
        ingest_url=args.ingest_url,
        admin_token=args.admin_token,
        devices=args.devices,
        duration=args.duration,
        count=args.count,
        interval=args.interval,
        batch=args.batch,
        fmt=args.fmt,
        seed=args.seed,
        start_ms=args.start_ms,
        report_path=args.report,
        verify=args.verify,
        concurrency=args.concurrency,
        tokens_file=args.tokens_file,
        progress=not args.no_progress and stdout_is_tty,
        duplicate_rate=args.duplicate_rate,
        malformed_rate=args.malformed_rate,
        clock_skew=args.clock_skew,
        skew_rate=args.skew_rate,
        burst_rate=args.burst_rate,
        buffer_limit=args.buffer_limit,
        timeout=args.timeout,
        max_retries=args.max_retries,
        drain_timeout=args.drain_timeout,
        provision_timeout=args.provision_timeout,
        transport=args.transport,
        ws_url=args.ws_url,
        linger=args.linger,
    )
    problems = cfg.validate()
    if args.fake_server and cfg.transport != "http":
        problems.append("--fake-server fakes the HTTP API only: it cannot be used with --transport wamp")
    if not cfg.admin_token:
        if cfg.verify:
            problems.append("--verify needs an admin token (--admin-token or IOTCLOUD_ADMIN_TOKEN)")
        known = len(load_tokens_file(cfg.tokens_file)) if cfg.tokens_file else 0
        if known < cfg.fleet_size():
            problems.append("an admin token is needed to provision devices (--admin-token or IOTCLOUD_ADMIN_TOKEN)")
    if problems:
        raise ValueError("; ".join(problems))
    return cfg


def warnings_for(cfg: SimConfig) -> list[str]:
    out: list[str] = []
    widest = max(len(t.outputs()) for t in cfg.profile.device_types)
    records_per_request = cfg.batch * widest if cfg.fmt.startswith("senml") else cfg.batch
    if records_per_request > SERVER_MAX_RECORDS:
        out.append(
            f"a full batch holds up to {records_per_request} {cfg.fmt} records; the server's "
            f"default limit is {SERVER_MAX_RECORDS} per request (expect 413/422)"
        )
    if widest > MAX_METRICS_PER_RECORD:  # pragma: no cover - profiles are validated
        out.append("a device type has more metrics than the server allows per record")
    return out


def write_report(report: dict[str, Any], path: str) -> None:
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    err = Console(stderr=True)
    out = Console()
    if args.admin_token is None:
        args.admin_token = os.environ.get("IOTCLOUD_ADMIN_TOKEN", "")
    if args.transport == "wamp":
        args.ws_url = resolve_ws_url(args.ws_url, args.url, os.environ, connection_files())
        if args.ws_url is None:
            err.print(
                "[red]error:[/red] --transport wamp needs the WebSocket URL: --ws-url "
                "(or IOTCLOUD_WS_URL), e.g. the stage's wss://...execute-api...amazonaws.com/<stage>",
                highlight=False,
            )
            return EXIT_USAGE
    args.ingest_url = resolve_ingest_url(args.ingest_url, args.door, args.url, connection_files())
    if args.door == "function-url" and args.ingest_url is None:
        err.print(
            "[red]error:[/red] --door function-url needs the function URL: --ingest-url, or a local "
            "stack (`make up`) whose api_url is --url",
            highlight=False,
        )
        return EXIT_USAGE
    transport: httpx.AsyncBaseTransport | None = None
    if args.fake_server:
        if not args.admin_token:
            args.admin_token = "admin-secret"
        transport = httpx.MockTransport(FakeServer(admin_token=args.admin_token).handle)
    try:
        cfg = config_from_args(args, stdout_is_tty=sys.stdout.isatty())
    except (ProfileError, ProvisionError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_USAGE
    for warning in warnings_for(cfg):
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    try:
        report = asyncio.run(run_simulation(cfg, transport=transport, console=out, install_signal_handlers=True))
    except ProvisionError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return EXIT_INTERRUPTED
    if cfg.report_path:
        write_report(report, cfg.report_path)
    table_console = err if cfg.report_path == "-" else out
    table_console.print(summary_table(report))
    for reason in report["failures"]:
        err.print(f"[red]failure:[/red] {reason}", highlight=False)
    return EXIT_OK if report["ok"] else EXIT_FAILED
