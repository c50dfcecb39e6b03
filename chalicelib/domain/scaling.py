"""Scaling reports: CloudWatch alarm evaluation and simple scaling with cooldown, in pure code.

moto stores alarms but never evaluates them, so this module does what CloudWatch and
Auto Scaling would do with the classic pair of policies (ChangeInCapacity +1 / -1,
cooldown 180 s) driven by two alarms ("Average > 70 for 2 periods of 60 s",
"Average < 40 for 2 periods of 60 s"):

1. ``period_stats``: raw load samples -> utilization % per aligned period.
2. ``alarm_state``: one alarm evaluation, M out of N with missing-data treatment.
3. ``decide``: both alarms at one instant + cooldown + [min, max] clamping -> a Decision.
4. ``replay``: ``decide`` at the end of every period, carrying capacity, cooldown and
   alarm states over: what a group with these alarms would have done over the window.
5. ``projection``: least-squares trend of the load and when it would cross a threshold.
6. ``report_document``: the JSON body of one report run.

Sources (CloudWatch User Guide, "Using Amazon CloudWatch alarms",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html,
sections "Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data",
"How alarm state is evaluated when data is missing", "Avoiding premature transitions to
alarm state"; the PutMetricAlarm API reference for TreatMissingData; the EC2 Auto Scaling
User Guide, "Scaling cooldowns for Amazon EC2 Auto Scaling",
https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-scaling-cooldowns.html).

Time is int milliseconds since the epoch, UTC, as everywhere in the domain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

REPORT_SCHEMA_VERSION = 1

MissingData: TypeAlias = Literal["missing", "ignore", "breaching", "notBreaching"]
Comparison: TypeAlias = Literal[">", ">=", "<", "<="]
Statistic: TypeAlias = Literal["Average", "Maximum", "p95"]
AlarmStateValue: TypeAlias = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
Action: TypeAlias = Literal["scale_up", "scale_down", "hold"]
TargetKind: TypeAlias = Literal["asg", "dynamodb", "lambda"]
Mode: TypeAlias = Literal["report", "apply"]
TriggerKind: TypeAlias = Literal["schedule", "alarm"]
Trend: TypeAlias = Literal["rising", "flat", "falling", "insufficient_data"]

OK: AlarmStateValue = "OK"
ALARM: AlarmStateValue = "ALARM"
INSUFFICIENT_DATA: AlarmStateValue = "INSUFFICIENT_DATA"

_COMPARISONS: dict[str, str] = {
    ">": "greater than",
    ">=": "greater than or equal to",
    "<": "less than",
    "<=": "less than or equal to",
}
_MISSING_DATA = ("missing", "ignore", "breaching", "notBreaching")
_STATISTICS = {"Average": "mean", "Maximum": "maximum", "p95": "p95"}
_KINDS = ("asg", "dynamodb", "lambda")
_MODES = ("report", "apply")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR_MS = 3_600_000
# Alarms on AWS/DynamoDB metrics always ignore missing data, whatever TreatMissingData
# says (PutMetricAlarm API reference, TreatMissingData).
_ALWAYS_IGNORES_MISSING = "AWS/DynamoDB"


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmSpec:
    """A CloudWatch metric alarm on a target's utilization %.

    ``datapoints_to_alarm`` (M) defaults to ``evaluation_periods`` (N). ``evaluation_range``
    is how many recent periods CloudWatch looks back over when some are missing: the docs
    don't publish it ("depends on the length of the alarm period and ... resolution") and
    their examples use 5 for N = 3, so the default is N + 2.
    """

    comparison: Comparison
    threshold: float
    period_s: int = 60
    evaluation_periods: int = 2
    datapoints_to_alarm: int | None = None
    missing_data: MissingData = "missing"
    statistic: Statistic = "Average"
    evaluation_range: int | None = None

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARISONS:
            raise ValueError(f"comparison must be one of {sorted(_COMPARISONS)}, not {self.comparison!r}")
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        if self.period_s <= 0:
            raise ValueError("period_s must be positive")
        if self.evaluation_periods < 1:
            raise ValueError("evaluation_periods must be at least 1")
        if not 1 <= self.datapoints_required <= self.evaluation_periods:
            raise ValueError("datapoints_to_alarm must be between 1 and evaluation_periods")
        if self.missing_data not in _MISSING_DATA:
            raise ValueError(f"missing_data must be one of {list(_MISSING_DATA)}, not {self.missing_data!r}")
        if self.statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {list(_STATISTICS)}, not {self.statistic!r}")
        if self.range_periods < self.evaluation_periods:
            raise ValueError("evaluation_range must be at least evaluation_periods")

    @property
    def datapoints_required(self) -> int:
        """M: breaching datapoints needed for ALARM."""
        return self.evaluation_periods if self.datapoints_to_alarm is None else self.datapoints_to_alarm

    @property
    def range_periods(self) -> int:
        """The evaluation range: periods looked back over when data is missing."""
        return self.evaluation_periods + 2 if self.evaluation_range is None else self.evaluation_range

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the alarming side of the threshold."""
        if self.comparison == ">":
            return value > self.threshold
        if self.comparison == ">=":
            return value >= self.threshold
        if self.comparison == "<":
            return value < self.threshold
        return value <= self.threshold

    def describe(self) -> str:
        """E.g. ``Average > 70% for 2 of 2 periods of 60 s (missing data: missing)``."""
        return (
            f"{self.statistic} {self.comparison} {_num(self.threshold)}% for {self.datapoints_required} of "
            f"{self.evaluation_periods} periods of {self.period_s} s (missing data: {self.missing_data})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "comparison": self.comparison,
            "threshold": self.threshold,
            "statistic": self.statistic,
            "period_s": self.period_s,
            "evaluation_periods": self.evaluation_periods,
            "datapoints_to_alarm": self.datapoints_required,
            "evaluation_range": self.range_periods,
            "missing_data": self.missing_data,
        }


@dataclass(frozen=True)
class Policy:
    """Two simple scaling policies (ChangeInCapacity) sharing one cooldown and bounds."""

    scale_up: AlarmSpec
    scale_down: AlarmSpec
    step_up: int = 1
    step_down: int = 1
    cooldown_s: int = 180
    min_capacity: int = 1
    max_capacity: int = 10

    def __post_init__(self) -> None:
        if self.scale_up.period_s != self.scale_down.period_s:
            raise ValueError("both alarms must use the same period (they read the same per-period stats)")
        if self.step_up < 1 or self.step_down < 1:
            raise ValueError("steps must be at least 1")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        if not 0 <= self.min_capacity <= self.max_capacity:
            raise ValueError("need 0 <= min_capacity <= max_capacity")

    @property
    def period_s(self) -> int:
        """The alarms' common period."""
        return self.scale_up.period_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "scale_up": self.scale_up.to_dict(),
            "scale_down": self.scale_down.to_dict(),
            "step_up": self.step_up,
            "step_down": self.step_down,
            "cooldown_s": self.cooldown_s,
            "min_capacity": self.min_capacity,
            "max_capacity": self.max_capacity,
        }


@dataclass(frozen=True)
class MetricQuery:
    """Which CloudWatch metric holds a target's load (read by the metrics adapter)."""

    namespace: str
    metric_name: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    stat: str = "Sum"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "namespace": self.namespace,
            "metric_name": self.metric_name,
            "dimensions": dict(sorted(self.dimensions.items())),
            "stat": self.stat,
        }


@dataclass(frozen=True)
class Target:
    """One scalable resource: an Auto Scaling group, a provisioned table, a function's concurrency.

    ``capacity_per_unit`` is the load one capacity unit handles (readings/s per instance,
    write units per provisioned unit, ...): utilization = load / (capacity * per unit) * 100.
    """

    name: str
    kind: TargetKind
    resource: str
    policy: Policy
    mode: Mode = "report"
    capacity_per_unit: float = 1.0
    metric: MetricQuery | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {list(_KINDS)}, not {self.kind!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, not {self.mode!r}")
        if not (math.isfinite(self.capacity_per_unit) and self.capacity_per_unit > 0):
            raise ValueError("capacity_per_unit must be a positive number")

    def total_capacity(self, capacity: int) -> float:
        """The load ``capacity`` units handle at 100 %."""
        return capacity * self.capacity_per_unit


# --- per-period statistics -----------------------------------------------------------------


@dataclass(frozen=True)
class PeriodStats:
    """Utilization % of one period starting at ``start_ms``; None where the period has no data."""

    start_ms: int
    samples: int
    mean: float | None
    p95: float | None
    maximum: float | None

    def value(self, statistic: Statistic) -> float | None:
        """The alarm statistic of this period."""
        if statistic == "Average":
            return self.mean
        if statistic == "Maximum":
            return self.maximum
        return self.p95

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "start_ms": self.start_ms,
            "samples": self.samples,
            "mean": self.mean,
            "p95": self.p95,
            "maximum": self.maximum,
        }


def period_start(ts_ms: int, period_s: int) -> int:
    """The start of the period holding ``ts_ms`` (periods are aligned to multiples of the period)."""
    period_ms = period_s * 1000
    return ts_ms // period_ms * period_ms


def nearest_rank(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (``pct`` in (0, 100]) of non-empty ``values``."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def period_stats(
    points: Sequence[tuple[int, float]], start_ms: int, end_ms: int, period_s: int, capacity: float
) -> list[PeriodStats]:
    """Raw ``(ts_ms, load)`` samples -> utilization % (load / capacity * 100) per period.

    Periods are aligned to multiples of ``period_s`` (as CloudWatch aligns them): the first
    is the one holding ``start_ms``, the last the one holding ``end_ms - 1`` (``end_ms`` is
    exclusive, so the last period may be partial). Samples outside, and non-finite
    values, are dropped. A period without samples has ``samples=0`` and None statistics.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError("capacity must be a positive number")
    if end_ms <= start_ms:
        return []
    period_ms = period_s * 1000
    first = period_start(start_ms, period_s)
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        if not (first <= ts < end_ms) or not math.isfinite(value):
            continue
        buckets.setdefault(period_start(ts, period_s), []).append(value / capacity * 100.0)
    out = []
    for start in range(first, end_ms, period_ms):
        values = buckets.get(start)
        if not values:
            out.append(PeriodStats(start, 0, None, None, None))
        else:
            out.append(
                PeriodStats(start, len(values), math.fsum(values) / len(values), nearest_rank(values, 95), max(values))
            )
    return out


# --- one alarm evaluation ------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmEvaluation:
    """The outcome of evaluating one alarm once.

    ``evaluated`` holds the N datapoints the state was decided on, oldest first; None is a
    missing datapoint filled in per the missing-data treatment (``filled`` of them).
    ``breaching`` counts breaching datapoints among them (fills included when missing data
    is ``breaching``). ``reason`` reads like CloudWatch's StateReason.
    """

    state: AlarmStateValue
    breaching: int
    evaluated: tuple[float | None, ...]
    filled: int
    reason: str
    spec: AlarmSpec

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "state": self.state,
            "breaching": self.breaching,
            "evaluated": list(self.evaluated),
            "filled": self.filled,
            "reason": self.reason,
            "spec": self.spec.to_dict(),
        }


def alarm_state(
    values: Sequence[float | None],
    spec: AlarmSpec,
    previous_state: AlarmStateValue = INSUFFICIENT_DATA,
    *,
    timestamps_ms: Sequence[int] | None = None,
) -> AlarmEvaluation:
    """Evaluate ``spec`` on ``values`` (the statistic per period, oldest first, None = missing).

    The last value is the most recent complete period at the evaluation time. Only the last
    ``spec.range_periods`` values (the evaluation range) matter; a shorter sequence counts
    as missing before its start. ``previous_state`` is kept when missing data is ``ignore``
    and the data can't decide. ``timestamps_ms`` (period starts, aligned with ``values``)
    only make the reason more readable.

    What CloudWatch does (User Guide, "How alarm state is evaluated when data is missing"):

    - At least N real datapoints in the range: the N most recent real ones are evaluated,
      gaps skipped, and the missing-data treatment is not used. ALARM when at least M of
      them breach, OK otherwise.
    - Fewer: all real datapoints are evaluated, and the shortfall is made up with as few
      missing datapoints as possible (the most recent missing periods), filled per the
      treatment: ``breaching`` counts them as breaching, ``notBreaching`` as within the
      threshold. At least M breaching -> ALARM, else OK.
    - ``missing`` with no real datapoint in the range -> INSUFFICIENT_DATA; ``ignore`` with
      none -> the previous state.
    - ``missing``/``ignore`` with some real data and fewer than M breaching: OK, except the
      "premature alarm" rule: when every real datapoint is breaching and the oldest of them
      is at least M periods old (the latest period is 1 old), ``missing`` goes to ALARM
      (``- - X - -`` with M = 3, ``- - - X -`` with M = 2) and ``ignore`` keeps the
      previous state. Requiring *every* real datapoint to breach is our reading of the
      docs' tables: ``0 - X - -`` (M = 2, N = 3) is OK there, not ALARM.

    Every row of the two tables in that section comes out as documented (see the tests).
    Not modelled: percentile low-sample-count handling (p95 is always evaluated, like
    EvaluateLowSampleCountPercentile=evaluate) and the periods' publication delay.
    """
    n, m, r = spec.evaluation_periods, spec.datapoints_required, spec.range_periods
    if timestamps_ms is not None and len(timestamps_ms) != len(values):
        raise ValueError("timestamps_ms must be as long as values")
    recent = list(values[-r:])
    pad: list[None] = [None] * (r - len(recent))
    window: list[float | None] = [*pad, *recent]
    stamps: list[int | None] = [*pad, *timestamps_ms[-r:]] if timestamps_ms is not None else [None] * r
    real = [i for i, v in enumerate(window) if v is not None]

    def breaching_at(i: int) -> bool:
        v = window[i]
        return v is not None and spec.breaches(v)

    if len(real) >= n:
        chosen = real[-n:]
        breaching = sum(1 for i in chosen if breaching_at(i))
        state: AlarmStateValue = ALARM if breaching >= m else OK
        reason = _threshold_reason(spec, state, window, stamps, chosen, breaching, 0)
        return AlarmEvaluation(state, breaching, tuple(window[i] for i in chosen), 0, reason, spec)

    shortfall = n - len(real)
    fills = [i for i, v in enumerate(window) if v is None][-shortfall:]
    chosen = sorted(real + fills)
    evaluated = tuple(window[i] for i in chosen)
    real_breaching = sum(1 for i in real if breaching_at(i))
    treatment = spec.missing_data

    if treatment in ("breaching", "notBreaching"):
        breaching = real_breaching + (shortfall if treatment == "breaching" else 0)
        state = ALARM if breaching >= m else OK
        reason = _threshold_reason(spec, state, window, stamps, chosen, breaching, shortfall)
        return AlarmEvaluation(state, breaching, evaluated, shortfall, reason, spec)

    if not real:
        if treatment == "ignore":
            reason = f"Missing data ignored: all {r} datapoints were unknown; state kept ({previous_state})."
            return AlarmEvaluation(previous_state, 0, evaluated, shortfall, reason, spec)
        return AlarmEvaluation(
            INSUFFICIENT_DATA, 0, evaluated, shortfall, f"Insufficient Data: {r} datapoints were unknown.", spec
        )

    if real_breaching >= m:
        reason = _threshold_reason(spec, ALARM, window, stamps, chosen, real_breaching, shortfall)
        return AlarmEvaluation(ALARM, real_breaching, evaluated, shortfall, reason, spec)

    oldest_age = r - real[0]
    if real_breaching == len(real) and oldest_age >= m:
        if treatment == "ignore":
            reason = (
                f"Missing data ignored: {len(real)} of the last {r} datapoints known, all breaching, the "
                f"oldest {oldest_age} periods ago; state kept ({previous_state})."
            )
            return AlarmEvaluation(previous_state, real_breaching, evaluated, shortfall, reason, spec)
        reason = (
            f"Threshold Crossed: {len(real)} available datapoint{_s(len(real))} "
            f"{_datapoints(window, stamps, list(reversed(real)))} {_were(len(real))} "
            f"{_COMPARISONS[spec.comparison]} the threshold ({_num(spec.threshold)}), the oldest {oldest_age} "
            f"periods ago (at least {m}) and none since within it: premature alarm rule "
            f"({shortfall} missing datapoint{_s(shortfall)})."
        )
        return AlarmEvaluation(ALARM, real_breaching, evaluated, shortfall, reason, spec)

    reason = _threshold_reason(spec, OK, window, stamps, chosen, real_breaching, shortfall)
    return AlarmEvaluation(OK, real_breaching, evaluated, shortfall, reason, spec)


def _threshold_reason(
    spec: AlarmSpec,
    state: AlarmStateValue,
    window: Sequence[float | None],
    stamps: Sequence[int | None],
    chosen: Sequence[int],
    breaching: int,
    filled: int,
) -> str:
    n, m = spec.evaluation_periods, spec.datapoints_required
    newest_first = list(reversed(chosen))
    words = _COMPARISONS[spec.comparison]
    if state == ALARM:
        count, relation, minimum, transition = breaching, words, m, "OK -> ALARM"
    else:
        count, relation, minimum, transition = n - breaching, f"not {words}", n - m + 1, "ALARM -> OK"
    text = (
        f"Threshold Crossed: {count} out of the last {n} datapoints {_datapoints(window, stamps, newest_first)} "
        f"{_were(count)} {relation} the threshold ({_num(spec.threshold)}) "
        f"(minimum {minimum} datapoint{_s(minimum)} for {transition} transition)."
    )
    if filled:
        text += f" {filled} missing datapoint{_s(filled)} treated as {spec.missing_data}."
    return text


def _datapoints(window: Sequence[float | None], stamps: Sequence[int | None], order: Sequence[int]) -> str:
    parts = []
    for i in order:
        v, ts = window[i], stamps[i]
        text = "missing" if v is None else _num(v)
        if ts is not None:
            text += f" ({_cw_time(ts)})"
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the scaling policies do at ``at_ms``.

    ``in_cooldown`` says whether ``at_ms`` falls inside the cooldown of the last action
    (whatever the alarms say); ``clamped`` that the step was cut by min/max capacity (to
    nothing: then the action is ``hold``).
    """

    at_ms: int
    action: Action
    from_capacity: int
    to_capacity: int
    reason: str
    up_alarm: AlarmEvaluation
    down_alarm: AlarmEvaluation
    in_cooldown: bool
    clamped: bool
    cooldown_ends_ms: int | None = None

    def to_dict(self, *, include_alarms: bool = True) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {
            "at_ms": self.at_ms,
            "at": iso_utc(self.at_ms),
            "action": self.action,
            "from_capacity": self.from_capacity,
            "to_capacity": self.to_capacity,
            "reason": self.reason,
            "in_cooldown": self.in_cooldown,
            "cooldown_ends_ms": self.cooldown_ends_ms,
            "clamped": self.clamped,
        }
        if include_alarms:
            out["up_alarm"] = self.up_alarm.to_dict()
            out["down_alarm"] = self.down_alarm.to_dict()
        return out


def effective_spec(spec: AlarmSpec, target: Target) -> AlarmSpec:
    """The alarm as CloudWatch runs it: AWS/DynamoDB metrics always ignore missing data."""
    if target.metric is not None and target.metric.namespace == _ALWAYS_IGNORES_MISSING:
        return replace(spec, missing_data="ignore")
    return spec


def decide(
    target: Target,
    stats: Sequence[PeriodStats],
    capacity: int,
    now_ms: int,
    last_action_ms: int | None,
    *,
    up_previous: AlarmStateValue = INSUFFICIENT_DATA,
    down_previous: AlarmStateValue = INSUFFICIENT_DATA,
) -> Decision:
    """Evaluate both alarms at ``now_ms`` and apply the policies' step, cooldown and bounds.

    ``stats`` are per-period utilization at the policy's period, aligned (``period_stats``);
    the alarms see the periods that ended by ``now_ms``. To match CloudWatch right from the
    window's start, include ``evaluation_range - 1`` periods before it.

    Rules (Auto Scaling simple scaling with a cooldown, as the classic scenario):

    - An alarm in ALARM invokes its policy at every evaluation, not only on the transition
      (User Guide: "For Auto Scaling actions, the alarm continues to invoke the action once
      per minute that the alarm remains in the new state").
    - Scale-up wins when both alarms are in ALARM.
    - After an action at t, nothing happens before t + cooldown: the cooldown is the
      half-open interval [t, t + cooldown), so at exactly t + cooldown the next action is
      allowed ("waits for a cooldown period to end before any further scaling activities").
      AWS starts the cooldown when the activity completes; here, at the decision.
    - The new capacity is clamped to [min, max]; a step cut to nothing is ``hold``, and a
      hold never starts a cooldown.
    """
    if capacity < 0:
        raise ValueError("capacity must not be negative")
    lookup = {s.start_ms: s for s in stats}
    return _decide(target, lookup, capacity, now_ms, last_action_ms, up_previous, down_previous)


def _decide(
    target: Target,
    lookup: Mapping[int, PeriodStats],
    capacity: int,
    now_ms: int,
    last_action_ms: int | None,
    up_previous: AlarmStateValue,
    down_previous: AlarmStateValue,
) -> Decision:
    policy = target.policy
    up = _evaluate_at(lookup, effective_spec(policy.scale_up, target), now_ms, up_previous)
    down = _evaluate_at(lookup, effective_spec(policy.scale_down, target), now_ms, down_previous)
    cooldown_ends = None if last_action_ms is None else last_action_ms + policy.cooldown_s * 1000
    in_cooldown = cooldown_ends is not None and now_ms < cooldown_ends

    def hold(reason: str, *, clamped: bool = False) -> Decision:
        return Decision(
            now_ms,
            "hold",
            capacity,
            capacity,
            reason,
            up,
            down,
            in_cooldown,
            clamped,
            cooldown_ends if in_cooldown else None,
        )

    if up.state == ALARM:
        action: Action = "scale_up"
        wanted = capacity + policy.step_up
        target_capacity = min(policy.max_capacity, wanted)
        label = "scale-up"
    elif down.state == ALARM:
        action = "scale_down"
        wanted = capacity - policy.step_down
        target_capacity = max(policy.min_capacity, wanted)
        label = "scale-down"
    else:
        return hold(f"no alarm in ALARM (scale-up {up.state}, scale-down {down.state})")

    if in_cooldown:
        assert cooldown_ends is not None
        left_s = math.ceil((cooldown_ends - now_ms) / 1000)
        return hold(f"{label} alarm in ALARM, but in cooldown until {_hms(cooldown_ends)} UTC ({left_s} s left)")
    moves = target_capacity > capacity if action == "scale_up" else target_capacity < capacity
    if not moves:
        bound = "max" if action == "scale_up" else "min"
        return hold(
            f"{label} alarm in ALARM, but capacity {capacity} is already at its {bound} "
            f"({policy.max_capacity if bound == 'max' else policy.min_capacity})",
            clamped=True,
        )
    clamped = target_capacity != wanted
    reason = f"{label} alarm in ALARM: capacity {capacity} -> {target_capacity}"
    if clamped:
        reason += f" (step cut by {'max' if action == 'scale_up' else 'min'} capacity)"
    return Decision(now_ms, action, capacity, target_capacity, reason, up, down, in_cooldown, clamped, None)


def _evaluate_at(
    lookup: Mapping[int, PeriodStats], spec: AlarmSpec, now_ms: int, previous: AlarmStateValue
) -> AlarmEvaluation:
    period_ms = spec.period_s * 1000
    last_end = now_ms // period_ms * period_ms
    starts = [last_end - k * period_ms for k in range(spec.range_periods, 0, -1)]
    values = []
    for start in starts:
        s = lookup.get(start)
        values.append(None if s is None else s.value(spec.statistic))
    return alarm_state(values, spec, previous, timestamps_ms=starts)


def replay(
    target: Target,
    stats: Sequence[PeriodStats],
    initial_capacity: int,
    start_last_action_ms: int | None = None,
    *,
    feedback: bool = False,
) -> list[Decision]:
    """``decide`` at the end of every period of ``stats`` in turn, applying each decision.

    Capacity, the cooldown and both alarms' states carry over from one evaluation to the
    next: this is what a group with these alarms would have done over the window.

    With ``feedback`` the load is taken as independent of capacity and ``stats`` as measured
    at ``initial_capacity``, so each period's utilization is rescaled to the capacity the
    replay has at that time (a scale-up lowers the next periods' utilization). Without it,
    ``stats`` are taken as they are (observed utilization).
    """
    if not stats:
        return []
    if feedback and (initial_capacity < 1 or target.policy.min_capacity < 1):
        raise ValueError("feedback needs a capacity of at least 1 throughout")
    period_ms = target.policy.period_s * 1000
    by_start = {s.start_ms: s for s in stats}
    first, last = min(by_start), max(by_start)
    capacity, last_action = initial_capacity, start_last_action_ms
    up_state, down_state = INSUFFICIENT_DATA, INSUFFICIENT_DATA
    seen: dict[int, PeriodStats] = {}
    decisions = []
    for start in range(first, last + 1, period_ms):
        s = by_start.get(start)
        if s is not None:
            seen[start] = _rescaled(s, initial_capacity / capacity) if feedback else s
        now = start + period_ms
        decision = _decide(target, seen, capacity, now, last_action, up_state, down_state)
        decisions.append(decision)
        up_state, down_state = decision.up_alarm.state, decision.down_alarm.state
        if decision.action != "hold":
            capacity, last_action = decision.to_capacity, now
    return decisions


def _rescaled(s: PeriodStats, factor: float) -> PeriodStats:
    def scale(v: float | None) -> float | None:
        return None if v is None else v * factor

    return replace(s, mean=scale(s.mean), p95=scale(s.p95), maximum=scale(s.maximum))


def capacity_timeline(decisions: Sequence[Decision], initial_capacity: int, start_ms: int) -> list[tuple[int, int]]:
    """Capacity steps ``(ts_ms, capacity)`` from a replay: the start, then every change."""
    steps = [(start_ms, initial_capacity)]
    for d in decisions:
        if d.action != "hold":
            steps.append((d.at_ms, d.to_capacity))
    return steps


# --- projection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """Least-squares trend of the load and when utilization would cross a threshold.

    ``slope_per_hour`` is in load units per hour, ``slope_pct_per_hour`` in utilization
    points per hour. ``crosses_at_ms`` is None when the trend never gets there (flat,
    falling, too little data) or utilization is already at or above it (``already_above``).
    """

    samples: int
    slope_per_hour: float
    slope_pct_per_hour: float
    fitted_now: float | None
    utilization_now_pct: float | None
    threshold_pct: float
    crosses_at_ms: int | None
    already_above: bool
    trend: Trend

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "samples": self.samples,
            "slope_per_hour": self.slope_per_hour,
            "slope_pct_per_hour": self.slope_pct_per_hour,
            "fitted_now": self.fitted_now,
            "utilization_now_pct": self.utilization_now_pct,
            "threshold_pct": self.threshold_pct,
            "crosses_at_ms": self.crosses_at_ms,
            "crosses_at": None if self.crosses_at_ms is None else iso_utc(self.crosses_at_ms),
            "already_above": self.already_above,
            "trend": self.trend,
        }


def projection(points: Sequence[tuple[int, float]], capacity: float, threshold_pct: float, now_ms: int) -> Projection:
    """Fit ``load = a + b * t`` to ``(ts_ms, load)`` and extrapolate to ``now_ms`` and beyond.

    ``capacity`` is the load that is 100 % (``Target.total_capacity``). A slope whose
    change over the window is below 1e-9 of the mean load counts as flat.
    """
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError("capacity must be a positive number")
    pts = [(t, v) for t, v in points if math.isfinite(v)]
    threshold_value = threshold_pct / 100 * capacity
    if not pts:
        return Projection(0, 0.0, 0.0, None, None, threshold_pct, None, False, "insufficient_data")
    n = len(pts)
    t_mean = math.fsum(t for t, _ in pts) / n
    v_mean = math.fsum(v for _, v in pts) / n
    sxx = math.fsum((t - t_mean) ** 2 for t, _ in pts)
    slope_ms = 0.0
    trend: Trend = "insufficient_data"
    if n >= 2 and sxx > 0:
        slope_ms = math.fsum((t - t_mean) * (v - v_mean) for t, v in pts) / sxx
        span = max(t for t, _ in pts) - min(t for t, _ in pts)
        if abs(slope_ms * span) <= 1e-9 * max(1.0, abs(v_mean)):
            slope_ms = 0.0
        trend = "rising" if slope_ms > 0 else "falling" if slope_ms < 0 else "flat"
    fitted_now = v_mean + slope_ms * (now_ms - t_mean)
    already_above = fitted_now >= threshold_value
    crosses = None
    if not already_above and slope_ms > 0:
        crosses = now_ms + round((threshold_value - fitted_now) / slope_ms)
    slope_h = slope_ms * _HOUR_MS
    return Projection(
        n,
        slope_h,
        slope_h / capacity * 100,
        fitted_now,
        fitted_now / capacity * 100,
        threshold_pct,
        crosses,
        already_above,
        trend,
    )


# --- the report --------------------------------------------------------------------------------


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
            trend += f", above {_num(p.threshold_pct)}% now"
        elif p.crosses_at_ms is not None:
            trend += f", crosses {_num(p.threshold_pct)}% at {iso_utc(p.crosses_at_ms, minutes=True)}"
        parts.append(trend)
    return "; ".join(parts)


# --- formatting helpers --------------------------------------------------------------------------


def iso_utc(ts_ms: int, *, minutes: bool = False) -> str:
    """``2025-11-25T10:00:00.000Z`` (or ``2025-11-25T10:00Z`` with ``minutes``)."""
    moment = _EPOCH + timedelta(milliseconds=ts_ms)
    if minutes:
        return moment.strftime("%Y-%m-%dT%H:%MZ")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cw_time(ts_ms: int) -> str:
    # CloudWatch's StateReason prints datapoint times as dd/mm/yy HH:MM:SS.
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%d/%m/%y %H:%M:%S")


def _hms(ts_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%H:%M:%S")


def _num(value: float) -> str:
    return repr(round(float(value), 3))


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"
