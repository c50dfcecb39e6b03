"""One CloudWatch alarm evaluation: M out of N datapoints, with missing-data treatment.

Sources (CloudWatch User Guide, "Using Amazon CloudWatch alarms",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html,
sections "Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data",
"How alarm state is evaluated when data is missing", "Avoiding premature transitions to
alarm state"; the PutMetricAlarm API reference for TreatMissingData)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.domain.scaling.config import ALARM, COMPARISONS, INSUFFICIENT_DATA, OK, AlarmSpec, AlarmStateValue
from chalicelib.domain.scaling.formatting import cw_time, num, plural_s, was_were


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
        """JSON-ready form: every field, in order; the spec in its own form (its JSON names)."""
        return {**asdict(self), "evaluated": list(self.evaluated), "spec": self.spec.to_dict()}


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

    if len(real) >= n:
        chosen = real[-n:]
        breaching = sum(1 for i in chosen if _breaches(spec, window[i]))
        state: AlarmStateValue = ALARM if breaching >= m else OK
        reason = _threshold_reason(spec, state, window, stamps, chosen, breaching, 0)
        return AlarmEvaluation(state, breaching, tuple(window[i] for i in chosen), 0, reason, spec)

    return _with_missing(spec, window, stamps, real, previous_state)


def _breaches(spec: AlarmSpec, value: float | None) -> bool:
    return value is not None and spec.breaches(value)


def _with_missing(
    spec: AlarmSpec,
    window: list[float | None],
    stamps: list[int | None],
    real: list[int],
    previous_state: AlarmStateValue,
) -> AlarmEvaluation:
    """`alarm_state` when fewer than N real datapoints are in the range: the treatment decides."""
    n, m, r = spec.evaluation_periods, spec.datapoints_required, spec.range_periods

    shortfall = n - len(real)
    fills = [i for i, v in enumerate(window) if v is None][-shortfall:]
    chosen = sorted(real + fills)
    evaluated = tuple(window[i] for i in chosen)
    real_breaching = sum(1 for i in real if _breaches(spec, window[i]))
    treatment = spec.missing_data

    if treatment in ("breaching", "notBreaching"):
        breaching = real_breaching + (shortfall if treatment == "breaching" else 0)
        state: AlarmStateValue = ALARM if breaching >= m else OK
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
            f"Threshold Crossed: {len(real)} available datapoint{plural_s(len(real))} "
            f"{_datapoints(window, stamps, list(reversed(real)))} {was_were(len(real))} "
            f"{COMPARISONS[spec.comparison]} the threshold ({num(spec.threshold)}), the oldest {oldest_age} "
            f"periods ago (at least {m}) and none since within it: premature alarm rule "
            f"({shortfall} missing datapoint{plural_s(shortfall)})."
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
    words = COMPARISONS[spec.comparison]
    if state == ALARM:
        count, relation, minimum, transition = breaching, words, m, "OK -> ALARM"
    else:
        count, relation, minimum, transition = n - breaching, f"not {words}", n - m + 1, "ALARM -> OK"
    text = (
        f"Threshold Crossed: {count} out of the last {n} datapoints {_datapoints(window, stamps, newest_first)} "
        f"{was_were(count)} {relation} the threshold ({num(spec.threshold)}) "
        f"(minimum {minimum} datapoint{plural_s(minimum)} for {transition} transition)."
    )
    if filled:
        text += f" {filled} missing datapoint{plural_s(filled)} treated as {spec.missing_data}."
    return text


def _datapoints(window: Sequence[float | None], stamps: Sequence[int | None], order: Sequence[int]) -> str:
    parts = []
    for i in order:
        v, ts = window[i], stamps[i]
        text = "missing" if v is None else num(v)
        if ts is not None:
            text += f" ({cw_time(ts)})"
        parts.append(text)
    return "[" + ", ".join(parts) + "]"
