"""The scaling report job: metrics -> utilization -> policy decisions -> actions, report, mail."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.adapters.mail import Mailer
from chalicelib.adapters.metrics import Metrics
from chalicelib.adapters.reports import ReportStore
from chalicelib.adapters.scaling import Capacities, metric_series
from chalicelib.clock import now_ms
from chalicelib.domain.charts import ChartPanel, multi_target_chart
from chalicelib.domain.chunks import HOUR_MS, hour_bucket
from chalicelib.domain.costs import dynamodb_write_costs
from chalicelib.domain.mail import Attachment, build_message
from chalicelib.domain.scaling.config import AlarmSpec, MetricQuery, Policy, Target
from chalicelib.domain.scaling.periods import period_stats
from chalicelib.domain.scaling.policy import capacity_timeline, decide
from chalicelib.domain.scaling.projection import projection
from chalicelib.domain.scaling.report import TargetResult, report_document
from chalicelib.domain.scaling.targets import load_targets_config


def _spec(raw: dict[str, Any], period_s: int) -> AlarmSpec:
    return AlarmSpec(
        comparison=raw["comparison"],
        threshold=float(raw["threshold"]),
        period_s=period_s,
        evaluation_periods=int(raw["evaluation_periods"]),
        datapoints_to_alarm=raw.get("datapoints_to_alarm"),
        missing_data=raw.get("missing_data", "missing"),
        statistic=raw.get("statistic", "Average"),
    )


def targets_from_config(config: dict[str, Any]) -> list[Target]:
    """The typed targets of a scaling configuration (chalicelib/domain/scaling/targets.json)."""
    period = int(config.get("period_s", 60))
    out = []
    for raw in config["targets"]:
        policy = raw["policy"]
        metric = raw["metric"]
        out.append(
            Target(
                name=raw["name"],
                kind=raw["kind"],
                resource=raw["resource"],
                mode=raw.get("mode", "report"),
                capacity_per_unit=float(raw.get("capacity_per_unit", 1)),
                metric=MetricQuery(
                    namespace=metric["namespace"],
                    metric_name=metric["name"],
                    dimensions=dict(metric.get("dimensions", {})),
                    stat=metric.get("stat", "Sum"),
                ),
                policy=Policy(
                    scale_up=_spec(policy["scale_up"], period),
                    scale_down=_spec(policy["scale_down"], period),
                    step_up=int(policy.get("step_up", 1)),
                    step_down=int(policy.get("step_down", 1)),
                    cooldown_s=int(policy.get("cooldown_s", 180)),
                    min_capacity=int(policy.get("min_capacity", 1)),
                    max_capacity=int(policy.get("max_capacity", 10)),
                ),
            )
        )
    return out


@dataclass(frozen=True)
class ReportRun:
    report: dict[str, Any]
    keys: dict[str, str]
    mailed_to: tuple[str, ...]
    mail_id: str | None

    def summary(self) -> dict[str, Any]:
        """What the schedule and alarm handlers return: the report's id, its S3 keys, who was mailed."""
        return {"report": self.report["id"], "s3": self.keys, "mailed_to": list(self.mailed_to)}


class ActiveDevices(Protocol):
    def count_active(self, hour: str) -> int: ...


@dataclass(frozen=True)
class ScalingReportJob:
    """The scaling report as the schedule and the stage's alarms run it, with this stage's collaborators.

    Before each report it records the ActiveDevices metric (devices whose last request fell in
    the last complete hour or this one) and drains the metrics, so the report reads what the
    local stack's PutMetricData queue still holds.
    """

    stage: str
    scaling_file: str  # SCALING_FILE: empty for the stage's own configuration (chalicelib.domain.scaling.targets)
    devices: ActiveDevices
    metrics: Metrics
    cloudwatch: Any
    capacities: Capacities
    store: ReportStore
    mailer: Mailer | None
    mail_from: str
    recipients: tuple[str, ...]
    clock: Callable[[], int] = now_ms

    def run(self, trigger: str = "schedule", alarm_name: str | None = None) -> ReportRun:
        """One report: `trigger` is "schedule" or "alarm" (then `alarm_name` is the alarm's)."""
        now = self.clock()
        active = self.devices.count_active(hour_bucket(now - HOUR_MS)) + self.devices.count_active(hour_bucket(now))
        self.metrics.add("ActiveDevices", active)
        self.metrics.drain()
        return run_scaling_report(
            stage=self.stage,
            config=load_targets_config(self.stage, self.scaling_file),  # read per run: an edit applies at once
            now_ms=now,
            cloudwatch=self.cloudwatch,
            capacities=self.capacities,
            store=self.store,
            mailer=self.mailer,
            mail_from=self.mail_from,
            recipients=self.recipients,
            trigger=trigger,
            alarm_name=alarm_name,
        )


@dataclass(frozen=True)
class _Window:
    """The report's window: whole periods ending at the last complete one."""

    period: int  # seconds
    start_ms: int
    end_ms: int


@dataclass
class _Evaluated:
    """What the targets' evaluation gathers for the report and its chart."""

    results: list[TargetResult]
    skipped: list[dict[str, Any]]
    panels: list[ChartPanel]


def run_scaling_report(
    *,
    stage: str,
    config: dict[str, Any],
    now_ms: int,
    cloudwatch: Any,
    capacities: Capacities,
    store: ReportStore,
    mailer: Mailer | None,
    mail_from: str,
    recipients: tuple[str, ...],
    trigger: str = "schedule",
    alarm_name: str | None = None,
) -> ReportRun:
    """Evaluate every target over the window, act on `apply` targets, store and mail the report."""
    period = int(config.get("period_s", 60))
    end_ms = now_ms - now_ms % (period * 1000)  # the last complete period ends here
    window = _Window(period, end_ms - int(config.get("window_s", 3600)) * 1000, end_ms)
    evaluated = _Evaluated([], [], [])
    for target in targets_from_config(config):
        _evaluate_target(target, _per_second(config, target.name), window, cloudwatch, capacities, store, evaluated)
    report_id = f"{now_ms:013d}-{secrets.token_hex(4)}"
    report = report_document(
        report_id=report_id,
        stage=stage,
        generated_at_ms=now_ms,
        window_start_ms=window.start_ms,
        window_end_ms=window.end_ms,
        period_s=period,
        results=evaluated.results,
        trigger="alarm" if trigger == "alarm" else "schedule",
        alarm_name=alarm_name if trigger == "alarm" else None,
    )
    report["skipped"] = evaluated.skipped
    chart = multi_target_chart(evaluated.panels, title=f"iotcloud {stage}: scaling report {report_id}")
    keys = store.save(report, chart)
    mail_id = None
    if mailer is not None and mail_from and recipients:
        mail_id = mailer.send(_mail(report, chart, mail_from, recipients))
    return ReportRun(report, keys, recipients if mail_id else (), mail_id)


def _evaluate_target(
    target: Target,
    per_second: bool,
    window: _Window,
    cloudwatch: Any,
    capacities: Capacities,
    store: ReportStore,
    into: _Evaluated,
) -> None:
    """One target: its series, its decision (applied in `apply` mode), its state, its chart panel."""
    metric = _metric_query(target, per_second)
    period, start_ms, end_ms = window.period, window.start_ms, window.end_ms
    # Look back far enough that the first evaluations see what CloudWatch would.
    lookback = (max(target.policy.scale_up.range_periods, target.policy.scale_down.range_periods) - 1) * period
    points = metric_series(cloudwatch, metric, start_ms - lookback * 1000, end_ms, period)
    capacity = capacities.current(target.kind, target.resource)
    if capacity is None or capacity <= 0:
        into.skipped.append(_skipped(target, points, start_ms))
        return
    stats = period_stats(points, start_ms - lookback * 1000, end_ms, period, target.total_capacity(capacity))
    state = store.last_action(target.name) or {}
    decision = decide(
        target,
        stats,
        capacity,
        end_ms,
        state.get("last_action_ms"),
        up_previous=state.get("up_state", "INSUFFICIENT_DATA"),
        down_previous=state.get("down_state", "INSUFFICIENT_DATA"),
    )
    applied = False
    if target.mode == "apply" and decision.action != "hold":
        capacities.apply(target.kind, target.resource, decision.to_capacity)
        applied = True
    store.record_action(
        target.name,
        {
            "last_action_ms": end_ms if applied else state.get("last_action_ms"),
            "up_state": decision.up_alarm.state,
            "down_state": decision.down_alarm.state,
        },
    )
    trend = projection(points, target.total_capacity(capacity), target.policy.scale_up.threshold, end_ms)
    into.results.append(TargetResult(target, stats, decision, applied=applied, projection=trend))
    timeline = capacity_timeline([decision] if applied else [], capacity, start_ms)
    into.panels.append(
        ChartPanel(
            f"{target.name} ({target.kind} {target.resource})",
            [s for s in stats if s.start_ms >= start_ms],
            target.policy.scale_up.threshold,
            target.policy.scale_down.threshold,
            timeline,
        )
    )


def _metric_query(target: Target, per_second: bool) -> dict[str, Any]:
    """The target's metric as metric_series reads it."""
    assert target.metric is not None
    return {
        "namespace": target.metric.namespace,
        "name": target.metric.metric_name,
        "dimensions": dict(target.metric.dimensions),
        "stat": target.metric.stat,
        "per_second": per_second,
    }


def _skipped(target: Target, points: list[tuple[int, float]], start_ms: int) -> dict[str, Any]:
    """The report's entry for a target without provisioned capacity (a DynamoDB one shows its write costs)."""
    entry: dict[str, Any] = {
        "name": target.name,
        "kind": target.kind,
        "resource": target.resource,
        "reason": "no provisioned capacity to scale (missing, on demand, or unreserved)",
    }
    if target.kind == "dynamodb":
        load = [v for ts, v in points if ts >= start_ms] or [0.0]
        entry["cost"] = dynamodb_write_costs(sum(load) / len(load), max(load))
    return entry


def _per_second(config: dict[str, Any], name: str) -> bool:
    return bool(next(t for t in config["targets"] if t["name"] == name)["metric"].get("per_second"))


def _mail(report: dict[str, Any], chart: str, sender: str, recipients: tuple[str, ...]) -> Any:
    import json

    actions = [t for t in report["targets"] if t["decision"]["action"] != "hold"]
    subject = f"[iotcloud {report['stage']}] scaling report: " + (
        ", ".join(f"{t['name']} {t['decision']['action'].replace('_', ' ')}" for t in actions) or "no change"
    )
    text = (
        f"Scaling report {report['id']} ({report['generated_at']}, trigger: {report['trigger']['kind']})\n\n"
        f"{report['summary']}\n\nThe chart and the full report are attached.\n"
    )
    return build_message(
        sender,
        list(recipients),
        subject,
        text,
        attachments=[
            Attachment(f"{report['id']}.svg", chart.encode(), "image/svg+xml"),
            Attachment(f"{report['id']}.json", json.dumps(report, indent=2).encode(), "application/json"),
        ],
    )
