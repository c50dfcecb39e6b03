"""Simple scaling with cooldown: both alarms at one instant + cooldown + [min, max] -> a Decision.

``decide`` is one evaluation; the scaling report runs it once per run, carrying the last action
and both alarms' states over from the previous run (its report store). Source: the EC2 Auto
Scaling User Guide, "Scaling cooldowns for Amazon EC2 Auto Scaling",
https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-scaling-cooldowns.html."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.domain.scaling.alarms import AlarmEvaluation, alarm_state
from chalicelib.domain.scaling.config import ALARM, INSUFFICIENT_DATA, Action, AlarmSpec, AlarmStateValue, Target
from chalicelib.domain.scaling.formatting import hms, iso_utc
from chalicelib.domain.scaling.periods import PeriodStats

# Alarms on AWS/DynamoDB metrics always ignore missing data, whatever TreatMissingData
# says (PutMetricAlarm API reference, TreatMissingData).
_ALWAYS_IGNORES_MISSING = "AWS/DynamoDB"


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
        return hold(f"{label} alarm in ALARM, but in cooldown until {hms(cooldown_ends)} UTC ({left_s} s left)")
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


def capacity_timeline(decisions: Sequence[Decision], initial_capacity: int, start_ms: int) -> list[tuple[int, int]]:
    """Capacity steps ``(ts_ms, capacity)`` from decisions in time order: the start, then every change."""
    steps = [(start_ms, initial_capacity)]
    for d in decisions:
        if d.action != "hold":
            steps.append((d.at_ms, d.to_capacity))
    return steps
