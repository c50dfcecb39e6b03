"""`python -m bench`: run the benchmarks, print a table, write bench/results/*.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import archive, ingest

RESULTS = Path(__file__).resolve().parent / "results"

ROWS = [
    ("DynamoDB requests / ingest request", "dynamodb_requests_per_ingest_request", "{:.2f}"),
    ("write units / reading (readings)", "write_units_per_reading", "{:.4f}"),
    ("write units / reading (+ device state)", "write_units_per_reading_with_state", "{:.4f}"),
    ("stored bytes / reading", "stored_bytes_per_reading", "{:.1f}"),
    ("hot-path CPU µs / reading", "hot_path_cpu_us_per_reading", "{:.2f}"),
    ("items stored", "items", "{:,}"),
    ("wall time in process (s, moto)", "wall_s_in_process", "{:.2f}"),
]


def main() -> int:
    console = Console()
    console.print("[bold]ingest benchmark[/]: 10,000 records x 5 metrics, 100 records a request, moto in process")
    result = ingest.run()
    table = Table(title="chunked vs naive (same run)")
    table.add_column("figure")
    table.add_column("chunked (iotcloud)", justify="right")
    table.add_column("naive baseline", justify="right")
    table.add_column("target", justify="right")
    for label, key, fmt in ROWS:
        target = result["targets"].get(key)
        table.add_row(
            label,
            fmt.format(result["chunked"][key]),
            fmt.format(result["naive"][key]),
            "" if target is None else f"<= {target}",
        )
    console.print(table)
    console.print(
        f"import app.py: {result['import_app_s'] * 1000:.0f} ms; bare boto3+chalice+pynamodb: "
        f"{result['import_bare_boto3_chalice_pynamodb_s'] * 1000:.0f} ms (ratio {result['import_ratio']:.2f})"
    )
    console.print("\n[bold]archive benchmark[/]: 100,000 readings through the archiver to moto's S3")
    archived = archive.run()
    table = Table(title="archiver vs one object per reading (same run)")
    table.add_column("figure")
    table.add_column("archiver (iotcloud)", justify="right")
    table.add_column("one object per reading", justify="right")
    table.add_column("target", justify="right")
    ours, naive = archived["chunked"], archived["baseline_one_object_per_reading"]
    table.add_row("S3 PUT requests", f"{ours['s3_put_requests']:,}", f"{naive['s3_put_requests']:,}", "<= 10")
    table.add_row(
        "archived bytes / reading",
        f"{ours['archived_bytes_per_reading']:.2f}",
        f"{naive['archived_bytes_per_reading']:.1f}",
        "<= 12",
    )
    table.add_row("archiver CPU µs / reading", f"{ours['archiver_cpu_us_per_reading']:.2f}", "", "")
    table.add_row(
        "rollup + index job CPU s / million readings",
        f"{ours['rollup_and_index_job_cpu_s_per_million_readings']:.1f}",
        "",
        "",
    )
    table.add_row(
        "wall time with moto (s)",
        f"{ours['wall_s_with_moto']:.2f}",
        f"{naive['wall_s_with_moto_scaled']:.0f} (scaled)",
        "",
    )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    figures = {"ingest": result, "archive": archived}
    out = RESULTS / "figures.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
