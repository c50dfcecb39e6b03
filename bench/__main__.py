"""`python -m bench` (`make bench`): every figure, one table per section, one JSON.

Sections: ingest and archive (chunked vs naive storage, in process), measure (what one
request costs at batch 1, 10 and 100), cost / naive / iot_core (USD per million
readings from those measurements and chalicelib/pricing.json), cold_start (import time
and the Lambda zip), e2e (the simulator through the local stack), local_stack (100 devices
against `devstack up`, as a user tries it) and capacity (1 M devices). All of them go to
bench/results/figures.json; `--only a,b` runs some of them and writes
bench/results/figures-partial.json instead.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("ingest", "archive", "cost", "read_side", "cold_start", "e2e", "local_stack")
BATCHES = ("1", "10", "100")

ROWS = [
    ("DynamoDB requests / ingest request", "dynamodb_requests_per_ingest_request", "{:.2f}"),
    ("write units / reading (readings)", "write_units_per_reading", "{:.4f}"),
    ("write units / reading (+ device state)", "write_units_per_reading_with_state", "{:.4f}"),
    ("stored bytes / reading", "stored_bytes_per_reading", "{:.1f}"),
    ("hot-path CPU µs / reading", "hot_path_cpu_us_per_reading", "{:.2f}"),
    ("items stored", "items", "{:,}"),
    ("wall time in process (s, moto)", "wall_s_in_process", "{:.2f}"),
]

COST_ROWS = [
    ("API Gateway (REST) requests", "api_gateway_requests"),
    ("Lambda api_handler (requests + GB-s)", "lambda_api"),
    ("DynamoDB writes: readings, device state, index", "dynamodb_writes"),
    ("DynamoDB writes: hourly rollup + index items", "dynamodb_writes_rollup_items"),
    ("DynamoDB reads (on demand)", "dynamodb_reads"),
    ("DynamoDB stream reads (Lambda triggers: free)", "dynamodb_stream_reads"),
    ("Lambda archive_readings + live", "lambda_stream_consumers"),
    ("S3 PUTs (archive)", "s3_puts"),
    ("S3 storage, 30 days", "s3_storage_30_days"),
    ("DynamoDB storage, 30 days", "dynamodb_storage_30_days"),
    ("CloudWatch Logs (EMF + platform lines)", "cloudwatch_logs"),
    ("hourly rollup job (Lambda + S3 GETs)", "rollup_job_lambda_and_s3_gets"),
]


def usd(value: float) -> str:
    if value == 0:
        return "0"
    if value < 0.0001:
        return f"{value:.6f}"
    return f"{value:.4f}"


def table(title: str, *columns: str) -> Table:
    t = Table(title=title, title_justify="left")
    for n, column in enumerate(columns):
        t.add_column(column, justify="left" if n == 0 else "right")
    return t


def versus_table(title: str, ours: str, baseline: str) -> Table:
    """A table comparing iotcloud's figure with a baseline's and the target, one figure a row."""
    return table(title, "figure", ours, baseline, "target")


def print_ingest(console: Console, result: dict[str, Any]) -> None:
    t = versus_table(
        "ingest: chunked vs naive (same run; 10,000 records x 5 metrics, 100 a request)",
        "chunked (iotcloud)",
        "naive baseline",
    )
    for label, key, fmt in ROWS:
        target = result["targets"].get(key)
        t.add_row(
            label,
            fmt.format(result["chunked"][key]),
            fmt.format(result["naive"][key]),
            "" if target is None else f"<= {target}",
        )
    console.print(t)


def print_archive(console: Console, archived: dict[str, Any]) -> None:
    t = versus_table(
        "archive: archiver vs one object per reading (same run; 100,000 readings)",
        "archiver (iotcloud)",
        "one object per reading",
    )
    ours, naive = archived["chunked"], archived["baseline_one_object_per_reading"]
    t.add_row("S3 PUT requests", f"{ours['s3_put_requests']:,}", f"{naive['s3_put_requests']:,}", "<= 10")
    t.add_row(
        "archived bytes / reading",
        f"{ours['archived_bytes_per_reading']:.2f}",
        f"{naive['archived_bytes_per_reading']:.1f}",
        "<= 12",
    )
    t.add_row("archiver CPU µs / reading", f"{ours['archiver_cpu_us_per_reading']:.2f}", "", "")
    t.add_row(
        "rollup + index job CPU s / million readings",
        f"{ours['rollup_and_index_job_cpu_s_per_million_readings']:.1f}",
        "",
        "",
    )
    t.add_row(
        "wall time with moto (s)",
        f"{ours['wall_s_with_moto']:.2f}",
        f"{naive['wall_s_with_moto_scaled']:.0f} (scaled)",
        "",
    )
    console.print(t)


def live_read_units(chunked: dict[str, Any]) -> float:
    live = chunked["stream"]["live"]
    return float(live["read_units"] / live["records"])


def write_units_line(designs: dict[str, Any]) -> str:
    """Write units per request where they happen: the chunk items, the request's state update, the folds."""
    d = designs["chunked"]
    request_path = d["dynamodb_calls_per_request"].get("UpdateItem", 0) * d["device_update_write_units"]
    folds = d["stream"]["live"]["fold_write_units_per_request"]
    return f"{d['item_write_units_per_request']:.2f} + {request_path:.2f} + {folds:.2f}"


def print_measure(console: Console, measured: dict[str, Any]) -> None:
    t = table(
        "measured per request, in process (moto), token cache off",
        "figure",
        *(f"batch {b} ({5 * int(b)} readings)" for b in BATCHES),
    )
    by = measured["by_batch"]

    def row(label: str, get: Any) -> None:
        t.add_row(label, *(get(by[b]) for b in BATCHES))

    row(
        "handler ms mean / p95 (chunked)",
        lambda d: f"{d['chunked']['handler_ms']['mean']:.1f} / {d['chunked']['handler_ms']['p95']:.1f}",
    )
    row("  of which in AWS calls (moto) ms", lambda d: f"{d['chunked']['in_aws_calls_ms_mean']:.1f}")
    row("handler ms mean (naive)", lambda d: f"{d['naive']['handler_ms']['mean']:.1f}")
    row(
        "DynamoDB calls / request (chunked)",
        lambda d: " ".join(f"{k}:{v:g}" for k, v in d["chunked"]["dynamodb_calls_per_request"].items()),
    )
    row("read units / request (token lookup)", lambda d: f"{d['chunked']['read_units_per_request']:.2f}")
    row(
        "chunk items / request (max)",
        lambda d: f"{d['chunked']['items_per_request']:.2f} ({d['chunked']['max_chunks_per_request']})",
    )
    row("write units / request: items + state (request path) + state (live folds)", write_units_line)
    row("write units / request (naive items)", lambda d: f"{d['naive']['item_write_units_per_request']:.0f}")
    row("live handler ms / stream record", lambda d: f"{d['chunked']['stream']['live']['ms_per_record']:.2f}")
    row("live read units / stream record", lambda d: f"{live_read_units(d['chunked']):.2f}")
    row("archiver ms / stream record", lambda d: f"{d['chunked']['stream']['archive']['ms_per_record']:.2f}")
    row("EMF log bytes / request", lambda d: f"{d['chunked']['emf_log_bytes_per_request']:.0f}")
    console.print(t)


def print_state_reads(console: Console, reads: dict[str, Any]) -> None:
    """The read side of the folded state (model.state_read_costs): one line."""
    fold = reads["fold"]
    console.print(
        f"state reads: exact GET state {reads['rru_per_state_read']:.2f} RRU (max {reads['rru_per_state_read_max']:g}),"
        f" a {reads['dashboard_page_devices']}-device fleet page {reads['rru_per_dashboard_page']:g} RRU;"
        f" DynamoDB USD per million: state reads {usd(reads['dynamodb_usd_per_million_state_reads'])},"
        f" fleet pages {usd(reads['dynamodb_usd_per_million_dashboard_pages'])}"
        f" (folded every {fold['fold_interval_ms'] // 60_000} min, late bound {fold['late_fold_ms'] // 60_000} min)"
    )


def print_charts(console: Console, charts: dict[str, Any]) -> None:
    """A device chart's requests, before (raw pages) and after (aggregates): bench.charts."""
    t = table(
        f"charts: {charts['workload']}", "window", "requests", "read units", "wall ms (moto)", "points", "answer KB"
    )
    for window, ways in charts["windows"].items():
        for way, f in ways.items():
            points: Any = f.get("points", f.get("points_per_series"))
            points = f"{points:g}" if isinstance(points, float) else points
            if "series" in f:
                points = f"{points} x {f['series']} series"
            scaled = f" (scaled from {f['scaled_from_days']}d)" if "scaled_from_days" in f else ""
            t.add_row(
                f"{window} {way}{scaled}",
                f"{f['requests']:g}",
                f"{f['read_units']:g}",
                f"{f['wall_ms']:.0f}",
                str(points),
                f"{f['answer_bytes'] / 1024:.1f}",
            )
    console.print(t)
    job = charts["rollup_job"]
    console.print(f"rollup job over the month: {job['runs']} runs, {job['cpu_s']:.1f} CPU s")


def print_rollup_engines(console: Console, engines: dict[str, Any]) -> None:
    """The hourly rollup on both paths (bench.rollup_engines): its own plain table."""
    from bench.rollup_engines import print_table

    print_table(engines)


def print_cost(console: Console, figures: dict[str, Any]) -> None:
    cost, naive, iot = figures["cost"], figures["naive"], figures["iot_core"]
    basic = figures["iot_core_basic_ingest"]
    memory = cost["lambda_functions"]["api_handler"]["memory_mb"]
    t = table(
        f"cost: USD per million readings (prices: {cost['prices_note']}; api_handler {memory} MB arm64)",
        "item",
        *(f"batch {b}" for b in BATCHES),
    )
    for label, key in COST_ROWS:
        t.add_row(label, *(usd(cost["by_batch"][b]["usd"][key]) for b in BATCHES))
    t.add_row("[bold]total (iotcloud)[/]", *(f"[bold]{usd(cost['by_batch'][b]['usd_total'])}[/]" for b in BATCHES))
    t.add_row(
        "  with 3x the measured Lambda duration",
        *(usd(cost["by_batch"][b]["usd_total_with_3x_lambda_duration"]) for b in BATCHES),
    )
    t.add_row("target", "", "", "< 0.10")
    console.print(t)
    t = table(
        "cost: iotcloud vs naive (same API) vs AWS IoT Core, USD per million readings (iot_core.assumptions)",
        "design",
        *(f"batch {b}" for b in BATCHES),
    )
    door = figures["cost_function_url"]
    t.add_row("iotcloud via REST API, everything above", *(usd(cost["by_batch"][b]["usd_total"]) for b in BATCHES))
    t.add_row(
        "iotcloud via REST API, ingest + store only",
        *(usd(cost["by_batch"][b]["usd_ingest_and_store"]) for b in BATCHES),
    )
    t.add_row(
        "[bold]iotcloud via Function URL, everything[/]",
        *(f"[bold]{usd(door['by_batch'][b]['usd_total'])}[/]" for b in BATCHES),
    )
    t.add_row(
        "[bold]iotcloud via Function URL, ingest + store only[/]",
        *(f"[bold]{usd(door['by_batch'][b]['usd_ingest_and_store'])}[/]" for b in BATCHES),
    )
    t.add_row(
        "  request-path write units / reading (Function URL)",
        *(f"{door['by_batch'][b]['units']['request_path_write_units_per_reading']:.4f}" for b in BATCHES),
    )
    t.add_row("naive (one item per reading), everything", *(usd(naive["by_batch"][b]["usd_total"]) for b in BATCHES))
    t.add_row("naive, ingest + store only", *(usd(naive["by_batch"][b]["usd_ingest_and_store"]) for b in BATCHES))
    t.add_row(
        "AWS IoT Core -> rule -> DynamoDBv2, an item per message (ingest + store)",
        *(usd(iot["by_batch"][b]["usd_total"]) for b in BATCHES),
    )
    t.add_row(
        "AWS IoT Core Basic Ingest ($aws/rules, no messaging) (ingest + store)",
        *(usd(basic["by_batch"][b]["usd_total"]) for b in BATCHES),
    )
    t.add_row(
        "  IoT Core write units / publish (item bytes)",
        *(
            f"{iot['by_batch'][b]['units']['write_units_per_publish']} "
            f"({iot['by_batch'][b]['units']['item_bytes_per_publish']:,})"
            for b in BATCHES
        ),
    )
    console.print(t)
    m = door["memory"]
    options = ", ".join(
        f"{o['memory_mb']} MB {o['duration_ms']:.0f} ms ${o['compute_usd_per_million_requests']:.2f}"
        for o in m["options"]
    )
    console.print(
        f"ingest function memory (per million requests, modelled mean): {options}; chosen {m['chosen_mb']} MB, "
        f"configured {m['configured_mb']} MB",
        highlight=False,
    )


def print_waiting_device(console: Console, waiting: dict[str, Any]) -> None:
    t = table(f"a device waiting for commands: {waiting['unit']}", "way", "USD / device / month", "calls / month")
    poll, ws = waiting["long_poll"], waiting["websocket"]
    t.add_row("long poll (GET /v1/commands?wait=20)", f"{poll['usd_total']:.4f}", f"{poll['requests']:,.0f} requests")
    t.add_row("WebSocket (WAMP, keepalive pings)", f"{ws['usd_total']:.4f}", f"{ws['messages']:,.0f} messages")
    console.print(t)


def print_cold_start(console: Console, cold: dict[str, Any]) -> None:
    t = table(
        f"cold start: import time, median of {cold['runs_each']} fresh interpreters each, interleaved (same run)",
        "figure",
        "import app",
        "bare boto3+chalice+pynamodb",
        "ratio",
        "target",
    )
    c = cold["cached"]
    t.add_row(
        "bytecode cached: CPU time",
        f"{c['app_ms']:.0f} ms",
        f"{c['bare_ms']:.0f} ms",
        f"{c['ratio']:.2f}",
        f"<= {cold['target_ratio']}",
    )
    t.add_row(
        "bytecode cached: wall time",
        f"{c['wall_app_ms']:.0f} ms",
        f"{c['wall_bare_ms']:.0f} ms",
        f"{c['wall_ratio']:.2f}",
        "",
    )
    if "as_deployed" in cold:
        d = cold["as_deployed"]
        t.add_row(
            "as deployed (unzipped Lambda zip, its .pyc, nothing written): CPU time",
            f"{d['app_ms']:.0f} ms",
            f"{d['bare_ms']:.0f} ms",
            f"{d['ratio']:.2f}",
            f"<= {cold['target_ratio']}",
        )
    console.print(t)
    _print_zip(console, cold["zip"])
    if cold["slow_imports"]:
        _print_slow_imports(console, cold["slow_imports"])


def _print_zip(console: Console, z: dict[str, Any]) -> None:
    if z.get("zip_bytes"):
        mb = 1024 * 1024
        biggest = ", ".join(f"{p['name']} {p['compressed_bytes'] / mb:.2f} MB" for p in z["biggest_packages"][:5])
        console.print(
            f"Lambda zip ({z['stage']}, {z['source']}): {z['zip_bytes'] / mb:.2f} MB, "
            f"{z['unzipped_bytes'] / mb:.2f} MB unzipped, {z['files']} files, {z['pyc_files']} .pyc; biggest: {biggest}"
        )
    else:
        console.print(f"Lambda zip: not measured ({z.get('package_error')})")


def _print_slow_imports(console: Console, slow: dict[str, Any]) -> None:
    prof = slow["profile_of_import_app_after_bare"]
    t = table(
        f"import app: modules only the app imports "
        f"({slow['app_only_modules']}, {slow['app_only_self_ms']:.0f} ms self), python -X importtime",
        "module",
        "self ms",
        "cumulative ms",
    )
    for m in slow["top_modules_self_ms"][:10]:
        t.add_row(m["module"], f"{m['self_ms']:.1f}", f"{m['cumulative_ms']:.1f}")
    console.print(t)
    console.print(
        f"profile of `import app` after the bare imports: {prof['dataclass_decoration']['calls']} dataclasses "
        f"take {prof['dataclass_share']:.0%} of it; regex compilation {prof['regex_compilation']['ms']:.0f} ms "
        f"(profiled times are inflated; the shares are what matter)"
    )


def print_e2e(console: Console, e2e: dict[str, Any]) -> None:
    f = e2e["fleet"]
    title = (
        f"e2e: device simulator through the local stack ({f['devices']} devices x {f['records_per_device']} "
        f"records, batch {f['batch']}; same run)"
    )
    t = table(title, "figure", "iotcloud (chunked)", "naive (same server)")
    ours, naive = e2e["chunked"], e2e["naive"]
    for label, key, fmt in (
        ("readings / s", "readings_per_second", "{:,.0f}"),
        ("requests / s", "requests_per_second", "{:.1f}"),
        ("readings acked", "readings_acked", "{:,}"),
        ("readings stored", "readings_stored", "{:,}"),
        ("server errors", "server_errors", "{}"),
    ):
        t.add_row(label, fmt.format(ours.get(key)), fmt.format(naive.get(key)))
    t.add_row(
        "latency p50 / p95 ms",
        *(
            f"{r['latency_ms']['p50']:.0f} / {r['latency_ms']['p95']:.0f}" if r.get("latency_ms") else ""
            for r in (ours, naive)
        ),
    )
    console.print(t)


def print_local_stack(console: Console, local_stack: dict[str, Any]) -> None:
    for name, f in local_stack.items():
        title = f"{name}: devstack up, simulator {f['devices']} devices {f['duration_s']} s, batch {f['batch']}"
        t = table(title, "figure", "value")
        latency = f.get("latency_ms") or {}
        rows = (
            ("requests", f.get("requests")),
            ("readings sent / acked", f"{f.get('readings_sent')} / {f.get('readings_acked')}"),
            ("transport errors", f.get("transport_errors")),
            ("503 answers (retried)", f.get("answers_503")),
            ("server errors", f.get("server_errors")),
            ("latency p50 / p95 ms", f"{latency.get('p50', 0):.0f} / {latency.get('p95', 0):.0f}"),
            ("stack RSS MB: at start / peak", f"{f.get('stack_start_rss_mb')} / {f.get('stack_peak_rss_mb')}"),
            ("stack peak threads", f.get("stack_peak_threads")),
            ("passed (exit 0, nothing missing)", f.get("ok")),
        )
        for label, value in rows:
            t.add_row(label, str(value))
        console.print(t)


def print_capacity(console: Console, cap: dict[str, Any]) -> None:
    t = table(
        f"capacity: {cap['scenario']} = {cap['records_per_s']:,.0f} records/s, {cap['readings_per_s']:,.0f} readings/s",
        "figure",
        *(f"batch {b}" for b in BATCHES),
    )
    by = cap["by_batch"]

    def row(label: str, get: Any) -> None:
        t.add_row(label, *(get(by[b]) for b in BATCHES))

    row("API requests / s", lambda d: f"{d['requests_per_s']:,.0f}")
    row(
        "Lambda api concurrency (x ms)",
        lambda d: f"{d['lambda_api_concurrency']:,.0f} (x {d['lambda_duration_ms_used']:.1f} ms)",
    )
    row(
        "DynamoDB WRU/s readings / devices",
        lambda d: f"{d['dynamodb']['readings_table_wru_per_s']:,.0f} / {d['dynamodb']['devices_table_wru_per_s']:,.0f}",
    )
    row(
        "DynamoDB RRU/s devices / most-read table",
        lambda d: (
            f"{d['dynamodb']['devices_table_rru_per_s']:,.0f} / {max(d['dynamodb']['table_rru_per_s'].values()):,.0f}"
        ),
    )
    row(
        "active_hour index: WCU/s on one key",
        lambda d: f"{d['dynamodb']['active_hour_key_wcu_per_s_at_top_of_hour']:,.0f}",
    )
    row("DynamoDB on-demand USD / month", lambda d: f"{d['dynamodb']['on_demand_usd_month']:,.0f}")
    row("stream records / s", lambda d: f"{d['stream']['records_per_s']:,.0f}")
    row("S3 objects / month", lambda d: f"{d['s3_objects_per_month']:,.0f}")
    row("USD / month (API GW tiers)", lambda d: f"{d['usd_month']:,.0f}")
    row("quotas exceeded", lambda d: ", ".join(d["exceeded"]) or "none")
    row("least headroom, request path", lambda d: d["first_quota_hit_on_request_path"])
    row("least headroom, anywhere", lambda d: d["first_quota_hit"])
    console.print(t)
    t = table(
        "capacity: quotas (value) and headroom = quota / use (< 1: exceeded)",
        "quota",
        "value",
        *(f"batch {b}" for b in BATCHES),
    )
    for key, quota in cap["quotas"].items():
        value = quota["value"]
        cells = []
        for b in BATCHES:
            h = by[b]["headroom"].get(key)
            cells.append("n/a" if h is None else f"{h:,.2f}")
        if key == "dynamodb_stream_readers":
            cells = ["2 of 2 used"] * len(BATCHES)
        t.add_row(quota["name"], "" if value is None else f"{value:,}", *cells)
    risks = {
        "live_handler_records_per_s_per_shard": "risk: live handler throughput per stream shard (in-process timing)",
        "archiver_records_per_s_per_shard": "risk: archiver throughput per stream shard (in-process timing)",
    }
    for key, name in risks.items():
        t.add_row(name, "", *(f"{by[b]['throughput_risks_headroom'][key]:,.2f}" for b in BATCHES))
    console.print(t)


@dataclass
class _Run:
    """One `python -m bench`: the figures so far, each section's time, the sections that failed."""

    console: Console
    figures: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def timed(self, name: str, fn: Any) -> Any:
        """Run a section; a section that fails is reported and recorded, and the others still run."""
        self.console.print(f"[bold]{name}[/] ...")
        t0 = time.perf_counter()
        try:
            with redirect_stdout(io.StringIO()):  # EMF lines the app prints
                return fn()
        except Exception as e:
            self.failed.append(name)
            self.console.print_exception()
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            self.timings[name] = time.perf_counter() - t0

    def shown(self, name: str, printer: Any) -> None:
        if "error" not in self.figures[name]:
            printer(self.console, self.figures[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    console = Console(width=max(120, Console().width))
    started = time.perf_counter()
    run = _Run(
        console,
        {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
            "command": "make bench (python -m bench)",
        },
    )
    _run_sections(run, only)
    figures, timings = run.figures, run.timings
    timings["total"] = time.perf_counter() - started
    figures["timings_s"] = timings
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("figures.json" if only == set(SECTIONS) else "figures-partial.json")
    out.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"written to {out} in {timings['total']:.0f} s")
    if run.failed:
        console.print(f"[red]failed sections: {', '.join(run.failed)}[/]")
    return 1 if run.failed else 0


def _run_sections(run: _Run, only: set[str]) -> None:
    """The sections in `only`, in their order, each printed as it ends; capacity whenever cost ran."""
    from bench import archive, coldstart, e2e, fleet, ingest, measure, model

    figures, timed, shown = run.figures, run.timed, run.shown
    if "ingest" in only:
        figures["ingest"] = timed("ingest", lambda: ingest.run(measure_imports=False))
        shown("ingest", print_ingest)
    if "archive" in only or "cost" in only:
        figures["archive"] = timed("archive", archive.run)
        shown("archive", print_archive)
    if "read_side" in only or "cost" in only:  # before cost: the capacity model reads the Athena load time
        from bench import rollup_engines

        figures["rollup_engines"] = timed("rollup_engines", rollup_engines.measure)
        shown("rollup_engines", print_rollup_engines)
    if "read_side" in only:
        from bench import charts

        figures["charts"] = timed("charts", charts.run)
        shown("charts", print_charts)
    if "cost" in only:
        figures["measure"] = timed("measure", measure.run)
        shown("measure", print_measure)
        if "error" not in figures["measure"] and "error" not in figures["archive"]:
            job_cpu = figures["archive"]["chunked"]["rollup_and_index_job_cpu_s_per_million_readings"]
            job = {**model.job_outputs_per_reading(), "cpu_s_per_million_readings": job_cpu}
            if "error" not in figures["rollup_engines"]:
                job["athena_load_s_per_hour"] = figures["rollup_engines"]["fleet"]["athena"]["load_lambda_s"]
            figures.update(model.costs(figures["measure"], job))
            print_cost(run.console, figures)
            print_state_reads(run.console, figures["state_reads"])
            print_waiting_device(run.console, figures["waiting_device"])
    if "cold_start" in only:
        figures["cold_start"] = timed("cold_start", coldstart.run)
        shown("cold_start", print_cold_start)
        if "ingest" in figures and "cached" in figures["cold_start"]:
            c = figures["cold_start"]["cached"]  # the ingest section's import figures, from this measurement
            figures["ingest"].update(
                {
                    "import_app_s": c["app_ms"] / 1000,
                    "import_bare_boto3_chalice_pynamodb_s": c["bare_ms"] / 1000,
                    "import_ratio": c["ratio"],
                    "import_source": "cold_start.cached (CPU time)",
                }
            )
    if "e2e" in only:
        figures["e2e"] = timed("e2e", e2e.run)
        shown("e2e", print_e2e)
    if "local_stack" in only:
        figures["local_stack"] = timed("local_stack", fleet.run)
        shown("local_stack", print_local_stack)
    if "cost" in figures:
        job = figures["cost"]["job_outputs"]
        # At scale devices post through the Function URL; the REST API door's table is kept beside it.
        figures["capacity"] = model.capacity(figures["measure"], figures["cost_function_url"], job, door=True)
        figures["capacity_rest_api"] = model.capacity(figures["measure"], figures["cost"], job)
        print_capacity(run.console, figures["capacity"])
        rest = figures["capacity_rest_api"]["by_batch"]
        run.console.print(
            "REST API door at the same scale: API Gateway headroom "
            + ", ".join(f"batch {b} {rest[b]['headroom']['api_gateway_rps']:.2f}" for b in BATCHES)
            + "; least headroom "
            + ", ".join(f"batch {b} {rest[b]['first_quota_hit']}" for b in BATCHES),
            highlight=False,
        )


if __name__ == "__main__":
    sys.exit(main())
