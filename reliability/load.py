"""Load: 500 simulated devices for 60 s against a local stack; no 5xx, nothing lost; latency percentiles.

The part runs once per door (the REST API, the Function URL). The simulator provisions the
fleet, then every device posts a record every second in batches of 10 (the defaults), with
--verify reading everything back. The stream is then drained and the readings table and the
S3 archive are reconciled with what was acknowledged. A 503 (with Retry-After) is the stack
saying it is overloaded and is retried by the devices; any other 5xx fails the part, and so
does a single acknowledged reading missing.
"""

from __future__ import annotations

from pathlib import Path

from reliability.common import PartResult, local_stack, part_name, run_simulator
from reliability.reconcile import check_reconciled, reconcile


def run(work: Path, devices: int = 500, duration: float = 60.0, seed: int = 1, door: str = "api") -> PartResult:
    """The load part, the devices posting through `door` (reliability.common.DOORS)."""
    result = PartResult(part_name("load", door))
    with local_stack(work / "stack") as stack:
        args = [
            "--devices", str(devices), "--duration", str(duration), "--interval", "1", "--batch", "10",
            "--seed", str(seed), "--verify",
        ]  # fmt: skip
        sim_exit, sim = run_simulator(stack, work / "simulator.json", args, timeout=duration + 900, door=door)
        assert stack.emulator is not None
        delivered = stack.emulator.drain(timeout=300)
        rec = reconcile(stack, work)
        stored, archived = rec.stored, rec.archived
    verify = sim.get("verify") or {}
    acked = int(sim.get("readings_acked") or 0)
    sent_duration = float(sim.get("duration_s") or duration)
    result.figures = {
        "door": door,
        "devices": devices,
        "duration_s": duration,
        "send_duration_s": round(sent_duration, 1),
        "requests": sim.get("requests"),
        "requests_per_second": sim.get("requests_per_second"),
        "readings_sent": sim.get("readings_sent"),
        "readings_acked": acked,
        "readings_per_second": sim.get("readings_per_second"),
        "records_per_second": sim.get("records_per_second"),
        "latency_ms": sim.get("latency_ms"),
        "answers_503": sim.get("throttled"),
        "server_errors": sim.get("server_errors"),
        "transport_errors": sim.get("transport_errors"),
        "stored": len(stored),
        "archived": len(archived),
        "lost": int(verify.get("missing", 0)),
        "duplicated": int(verify.get("duplicated", 0)) + len(rec.unexplained_duplicates),
        "archived_twice_by_moto_stream_race": len(rec.duplicated_by_stream_race),
        "unsent": sim.get("readings_unsent"),
        "stream_records_delivered": delivered,
    }
    result.details = {
        "simulator": sim,
        "simulator_exit_code": sim_exit,
        "reconciliation": rec.as_dict(),
    }
    check_reconciled(result, sim_exit, sim, rec, acked)
    result.check(not sim.get("rejected_unexpected"), f"{sim.get('rejected_unexpected')} unexpected rejections")
    offered = devices / 1.0  # records per second the fleet generates
    sustained = float(sim.get("records_per_second") or 0)
    result.figures["offered_records_per_second"] = offered
    if sustained < 0.9 * offered:
        result.findings.append(
            f"the local stack sustained {sustained:.0f} records/s of the {offered:.0f} offered "
            f"(devices buffered and caught up; nothing lost)"
        )
    return result
