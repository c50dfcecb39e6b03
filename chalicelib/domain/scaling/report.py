"""The JSON body of one scaling report run, and its one-line-per-target summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.scaling.config import Target, TriggerKind
from chalicelib.domain.scaling.formatting import iso_utc, num
from chalicelib.domain.scaling.periods import PeriodStats
from chalicelib.domain.scaling.policy import Decision
from chalicelib.domain.scaling.projection import Projection

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TargetResult:
    """Everything one report run found out about one target."""

    target: Target
    stats: Sequence[PeriodStats]
    decision: Decision
    applied: bool = False
    projection: Projection | None = None


def report_document(
    *,
    report_id: str,
    stage: str,
    generated_at_ms: int,
    window_start_ms: int,
    window_end_ms: int,
    period_s: int,
    results: Sequence[TargetResult],
    trigger: TriggerKind = "schedule",
    alarm_name: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one report run (schema ``REPORT_SCHEMA_VERSION``); plain dicts and lists only.

    A target's ``capacity.after`` is the decision's capacity when it was applied, else the
    capacity before (a report-mode decision changes nothing).
    """
    if trigger not in ("schedule", "alarm"):
        raise ValueError(f"trigger must be 'schedule' or 'alarm', not {trigger!r}")
    if alarm_name is not None and trigger != "alarm":
        raise ValueError("alarm_name goes with an 'alarm' trigger")
    trigger_doc: dict[str, Any] = {"kind": trigger}
    if alarm_name is not None:
        trigger_doc["alarm_name"] = alarm_name
    targets = [_target_document(r) for r in results]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "id": report_id,
        "stage": stage,
        "generated_at": iso_utc(generated_at_ms),
        "trigger": trigger_doc,
        "window": {"start_ms": window_start_ms, "end_ms": window_end_ms, "period_s": period_s},
        "targets": targets,
        "summary": "\n".join(summary_line(r) for r in results),
    }


def _target_document(result: TargetResult) -> dict[str, Any]:
    target, decision = result.target, result.decision
    return {
        "name": target.name,
        "kind": target.kind,
        "resource": target.resource,
        "mode": target.mode,
        "capacity": {
            "before": decision.from_capacity,
            "after": decision.to_capacity if result.applied else decision.from_capacity,
            "min": target.policy.min_capacity,
            "max": target.policy.max_capacity,
        },
        "utilization": [s.to_dict() for s in result.stats],
        "alarms": {"scale_up": decision.up_alarm.to_dict(), "scale_down": decision.down_alarm.to_dict()},
        "decision": decision.to_dict(include_alarms=False),
        "applied": result.applied,
        "projection": None if result.projection is None else result.projection.to_dict(),
        "metric": None if target.metric is None else target.metric.to_dict(),
    }


def summary_line(result: TargetResult) -> str:
    """One line about one target, for the report's summary."""
    target, d = result.target, result.decision
    if d.action == "hold":
        what = f"hold at {d.from_capacity}" + (" (cooldown)" if d.in_cooldown else "")
    else:
        what = f"{d.action} {d.from_capacity} -> {d.to_capacity}, " + ("applied" if result.applied else "not applied")
    parts = [
        f"{target.name} ({target.kind} {target.resource}): {what}",
        f"alarms up {d.up_alarm.state}, down {d.down_alarm.state}",
    ]
    peaks = [s.maximum for s in result.stats if s.maximum is not None]
    parts.append(f"peak {max(peaks):.1f}%" if peaks else "no data")
    p = result.projection
    if p is not None and p.trend != "insufficient_data":
        trend = f"trend {p.slope_pct_per_hour:+.1f}%/h"
        if p.already_above:
            trend += f", above {num(p.threshold_pct)}% now"
        elif p.crosses_at_ms is not None:
            trend += f", crosses {num(p.threshold_pct)}% at {iso_utc(p.crosses_at_ms, minutes=True)}"
        parts.append(trend)
    return "; ".join(parts)
