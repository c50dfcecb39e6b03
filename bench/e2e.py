"""End to end: readings per second through the local stack, driven by the device simulator.

One local stack (moto server + the app over HTTP, devstack.stack.LocalStack) serves two
simulator runs with the same fleet settings, in the same run:

1. the app as it is (chunked storage);
2. the naive design: the same server with its storage swapped for one item per reading
   (bench.naive, PynamoDB batch_write into a table on the same moto server). The app
   runs in this process, so the swap is a patch of `chalicelib.api.telemetry.ingest`:
   the HTTP path, authentication, parsing, device state and metrics are the same code.

Stream emulation is off for both runs, so neither pays for the archiver and the live
handler (their costs are measured in process by bench.measure): this measures the
request path through real HTTP, with the simulator's client behaviour. The simulator
provisions its devices before it starts the clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bench.naive import NAIVE_TABLE, naive_model, naive_writer

DEVICES = 20
COUNT = 1000  # records per device
BATCH = 100
CONCURRENCY = 16
SEED = 3


def command(url: str, admin_token: str, report: Path, batch: int = BATCH) -> list[str]:
    return [
        sys.executable, "-m", "device_sim",
        "--url", url, "--admin-token", admin_token,
        "--devices", str(DEVICES), "--count", str(COUNT), "--interval", "0", "--batch", str(batch),
        "--concurrency", str(CONCURRENCY), "--seed", str(SEED), "--no-progress", "--report", str(report),
    ]  # fmt: skip


def _simulate(stack: Any, report: Path) -> dict[str, Any]:
    done = subprocess.run(command(stack.api_url, stack.admin_token, report), capture_output=True, text=True)
    result = json.loads(report.read_text()) if report.exists() else {}
    keys = (
        "duration_s", "readings_acked", "records_acked", "requests", "readings_per_second", "records_per_second",
        "requests_per_second", "latency_ms", "server_errors", "throttled", "rejected_unexpected", "ok",
    )  # fmt: skip
    figures = {k: result.get(k) for k in keys}
    figures["exit_code"] = done.returncode
    if done.returncode != 0:
        figures["stderr_tail"] = done.stderr[-2000:]
    return figures


def _stored_chunked(stack: Any, table: str) -> int:
    client = stack.client("dynamodb")
    total = 0
    kwargs: dict[str, Any] = {"TableName": table, "ProjectionExpression": "n"}
    while True:
        page = client.scan(**kwargs)
        total += sum(int(item["n"]["N"]) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _stored_naive(stack: Any) -> int:
    # moto counts the items on every DescribeTable (AWS refreshes ItemCount every ~6 hours).
    return int(stack.client("dynamodb").describe_table(TableName=NAIVE_TABLE)["Table"]["ItemCount"])


def run() -> dict[str, Any]:
    from chalicelib.api import telemetry
    from devstack.stack import LocalStack, free_port

    started = time.perf_counter()
    out: dict[str, Any] = {
        "fleet": {"devices": DEVICES, "records_per_device": COUNT, "batch": BATCH, "concurrency": CONCURRENCY},
        "command": " ".join(command("<api url>", "<admin token>", Path("<report>"))[1:]),
        "stream_emulation": False,
    }
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="iotcloud-bench-e2e-") as tmp:
        work = Path(tmp)
        with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=work, emulate_events=False) as stack:
            phases["stack_start"] = time.perf_counter() - started
            table = stack.connection()["readings_table"]
            chunked = _simulate(stack, work / "chunked.json")
            chunked["readings_stored"] = _stored_chunked(stack, table)
            phases["chunked_run"] = time.perf_counter() - started - sum(phases.values())
            model = naive_model("us-east-1", host=stack.moto_url)
            model.create_table(wait=True)
            with mock.patch.object(telemetry, "ingest", naive_writer(model)):
                naive = _simulate(stack, work / "naive.json")
            naive["readings_stored"] = _stored_naive(stack)
            phases["naive_run"] = time.perf_counter() - started - sum(phases.values())
    out["phase_s"] = phases
    out["chunked"] = chunked
    out["naive"] = naive
    if chunked.get("readings_per_second") and naive.get("readings_per_second"):
        out["speedup"] = chunked["readings_per_second"] / naive["readings_per_second"]
    out["wall_s"] = time.perf_counter() - started
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
