"""Faults: a simulated fleet against a stack whose DynamoDB throttles, whose S3 fails and whose archiver crashes.

The stack runs with devstack.faults.FaultPlan: 30 % of BatchWriteItem calls throttled or
handed back as UnprocessedItems (all or half), 30 % of UpdateItem and Query calls throttled,
20 % of archive PutObject calls failing (before or after the write), and one archiver
invocation crashing after its first object of a batch that spans several hours. The
simulator (with duplicates) runs with --verify; then the stream is drained and the three
counts are reconciled: what the simulator got acknowledged, what DynamoDB holds, what the S3
archive holds (read with DuckDB). acked == stored == archived, nothing lost, nothing twice.
The app answers 200 (after its own retries) or 503 with Retry-After (the simulator retries);
its retries absorb most of the 30 %, so one post runs while every DynamoDB write fails.
The part runs once per door: the REST API, and the ingest function's Function URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.faults import FaultPlan, FaultStats
from devstack.stack import LocalStack
from reliability.common import Client, PartResult, ingest_url, local_stack, part_name, run_simulator
from reliability.reconcile import Reconciliation, check_reconciled, reconcile

HOUR_MS = 3_600_000
MULTI_HOUR_POSTS = 20


def _post_until_acked(client: Client, token: str, body: Any, key: str, attempts: int = 30) -> int:
    """Post as a well-behaved device: retry 503 after Retry-After; the number of 503 answers."""
    for refused in range(attempts):
        answer = client.request("POST", "/v1/telemetry", token, body, headers={"Idempotency-Key": key})
        if answer.status_code == 200:
            return refused
        if answer.status_code != 503:
            raise RuntimeError(f"the multi-hour post was answered {answer.status_code}: {answer.text[:200]}")
        if "retry-after" not in answer.headers:
            raise RuntimeError("a 503 without Retry-After")
        time.sleep(float(answer.headers.get("retry-after", "1")))
    raise RuntimeError(f"the multi-hour post was refused {attempts} times")


def _multi_hour_post(client: Client, token: str, round_: int) -> tuple[set[tuple[str, int]], int]:
    """Readings in three hours: the archiver gets a batch of several partitions (the crash needs one)."""
    now = int(time.time() * 1000) - 60_000
    times = [now - k * HOUR_MS - round_ for k in range(3)]
    records = [{"ts": ts, "values": {"temp": 20 + k, "round": round_}} for k, ts in enumerate(times)]
    refused = _post_until_acked(client, token, records, key=f"faults-hours-{round_}")
    return {(metric, ts) for ts in times for metric in ("temp", "round")}, refused


def _storm_post(client: Client, plan: FaultPlan, token: str) -> tuple[set[tuple[str, int]], int]:
    """A post while every DynamoDB write fails (BatchWriteItem and UpdateItem): the app's retries (its
    30 % faults they absorb) run out within the request's budget, so the device sees 503 + Retry-After;
    its retry is acked."""
    ts = int(time.time() * 1000) - 60_000
    body = {"ts": ts, "values": {"storm": 1}}
    rates = plan.update_rate, plan.batch_write_rate
    plan.update_rate = plan.batch_write_rate = 1.0
    try:
        first = client.request("POST", "/v1/telemetry", token, body, headers={"Idempotency-Key": "faults-storm"})
    finally:
        plan.update_rate, plan.batch_write_rate = rates
    if first.status_code != 503 or "retry-after" not in first.headers:
        raise RuntimeError(f"a post during the storm was answered {first.status_code}, not 503 with Retry-After")
    refused = 1 + _post_until_acked(client, token, body, key="faults-storm")
    return {("storm", ts)}, refused


def _drain(stack: LocalStack) -> int:
    assert stack.emulator is not None
    return stack.emulator.drain(timeout=240)


@dataclass
class _Probe:
    """The probe device's own posts (besides the simulator's): what was acked, how many 503s, how many posts."""

    acked: set[tuple[str, int]]
    answers_503: int
    posts: int = 1

    def multi_hour(self, client: Client, token: str, round_: int) -> None:
        more, refused = _multi_hour_post(client, token, round_)
        self.acked |= more
        self.answers_503 += refused
        self.posts += 1


def run(work: Path, seed: int = 1, devices: int = 20, duration: float = 30.0, door: str = "api") -> PartResult:
    """The faults part, every post (the simulator's and the probe's) through `door` (reliability.common.DOORS)."""
    result = PartResult(part_name("faults", door))
    plan = FaultPlan(seed=seed)
    with (
        local_stack(work / "stack", faults=plan) as stack,
        Client(stack.api_url, stack.admin_token) as admin,
        Client(ingest_url(stack, door), stack.admin_token) as client,
    ):
        probe = admin.create_device("faults-hours")
        # Multi-hour posts first: BatchWriteItem calls of several items (partly processed faults need
        # them) and archiver batches of several partitions (the crash needs one).
        posted = _Probe(*_storm_post(client, plan, probe["token"]))
        for round_ in range(MULTI_HOUR_POSTS):
            posted.multi_hour(client, probe["token"], round_)
        report_path = work / "simulator.json"
        args = [
            "--devices", str(devices), "--duration", str(duration), "--interval", "0.5", "--batch", "5",
            "--duplicate-rate", "0.05", "--max-retries", "8", "--seed", str(seed), "--verify",
        ]  # fmt: skip
        sim_exit, sim = run_simulator(stack, report_path, args, timeout=duration + 600, door=door)
        delivered = _drain(stack)
        for round_ in range(MULTI_HOUR_POSTS, MULTI_HOUR_POSTS + 3):  # no crash yet: another multi-hour batch
            if plan.stats.crashes:
                break
            posted.multi_hour(client, probe["token"], round_)
            delivered += _drain(stack)
        rec = reconcile(stack, work)
        probe_stored = {(m, ts) for d, m, _u, ts in rec.stored if d == probe["id"]}
        assert stack.emulator is not None
        pumps = {p.name: vars(p.stats) for p in stack.emulator.pumps}
    stats = plan.stats
    result.figures = {
        "door": door,
        "devices": devices,
        "duration_s": duration,
        **_counts(sim, posted, probe_stored, rec),
        "injected": {
            "dynamodb": stats.dynamodb_faults,
            "s3": stats.s3_faults,
            "crashes": stats.crashes,
        },
        "fault_rates": {
            "batch_write": _rate(
                stats.batch_write_throttled + stats.batch_write_unprocessed_all + stats.batch_write_unprocessed_part,
                stats.batch_write_calls,
            ),
            "update_item": _rate(stats.update_throttled, stats.update_calls),
            "query": _rate(stats.query_throttled, stats.query_calls),
            "s3_put": _rate(stats.s3_faults, stats.s3_puts),
        },
        "archive_objects": rec.archive_objects,
        "stream_records_delivered": delivered,
    }
    result.details = {
        "fault_stats": stats.as_dict(),
        "stream_pumps": pumps,
        "simulator": {k: sim.get(k) for k in ("requests", "retries", "throttled", "server_errors", "transport_errors",
                                              "gave_up", "readings_acked", "rejected_by_code", "faults", "verify",
                                              "latency_ms", "exit_code", "failures")},
        "simulator_exit_code": sim_exit,
        "reconciliation": rec.as_dict(),
    }  # fmt: skip
    check_reconciled(result, sim_exit, sim, rec, result.figures["acked"])
    _check_injected(result, stats)
    return result


def _check_injected(result: PartResult, stats: FaultStats) -> None:
    """The faults reached the app: both stores failed, the archiver crashed once, a device saw a 503."""
    result.check(stats.dynamodb_faults > 0 and stats.s3_faults > 0, "no DynamoDB or no S3 fault was injected")
    result.check(stats.crashes == 1, f"{stats.crashes} archiver crashes injected (one expected)")
    if not stats.batch_write_unprocessed_part:  # a matter of the seed: tests/reliability covers it always
        result.notes.append("no BatchWriteItem call of several items drew the partly-processed fault this run")
    result.check(result.figures["answers_503"] > 0, "no 503 answer: the faults never reached a device")


def _counts(
    sim: dict[str, Any], posted: _Probe, probe_stored: set[tuple[str, int]], rec: Reconciliation
) -> dict[str, Any]:
    """The run's answers and readings, the simulator's and the probe's together: acked, stored, lost, twice."""
    verify = sim.get("verify") or {}
    rejected = sum((sim.get("rejected_by_code") or {}).values())
    answers_2xx = int(sim.get("requests") or 0) - int(sim.get("throttled") or 0) - int(sim.get("server_errors") or 0)
    answers_2xx -= int(sim.get("transport_errors") or 0) + rejected
    return {
        "acked": int(sim.get("readings_acked") or 0) + len(posted.acked),
        "stored": len(rec.stored),
        "archived": len(rec.archived),
        "lost": int(verify.get("missing", 0)) + len(posted.acked - probe_stored),
        "duplicated": int(verify.get("duplicated", 0)) + len(rec.unexplained_duplicates),
        "archived_twice_by_moto_stream_race": len(rec.duplicated_by_stream_race),
        "answers_200": answers_2xx + posted.posts,
        "answers_503": int(sim.get("throttled") or 0) + posted.answers_503,
        "server_errors": int(sim.get("server_errors") or 0),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None
