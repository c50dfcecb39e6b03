"""The scaling report run after run, in pure code: what the tests of the policy over time drive."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.domain.scaling.config import INSUFFICIENT_DATA, Target
from chalicelib.domain.scaling.periods import PeriodStats
from chalicelib.domain.scaling.policy import Decision, decide


def successive_runs(
    target: Target, stats: Sequence[PeriodStats], initial_capacity: int, start_last_action_ms: int | None = None
) -> list[Decision]:
    """``decide`` at the end of every period of ``stats`` in turn, each run starting from what the
    previous one left (capacity, last action, both alarms' states), as jobs.scaling_report does
    from one run to the next through the report store."""
    if not stats:
        return []
    period_ms = target.policy.period_s * 1000
    starts = [s.start_ms for s in stats]
    capacity, last_action = initial_capacity, start_last_action_ms
    up_state, down_state = INSUFFICIENT_DATA, INSUFFICIENT_DATA
    decisions = []
    for start in range(min(starts), max(starts) + 1, period_ms):
        now = start + period_ms
        ended = [s for s in stats if s.start_ms < now]
        decision = decide(target, ended, capacity, now, last_action, up_previous=up_state, down_previous=down_state)
        decisions.append(decision)
        up_state, down_state = decision.up_alarm.state, decision.down_alarm.state
        if decision.action != "hold":
            capacity, last_action = decision.to_capacity, now
    return decisions
