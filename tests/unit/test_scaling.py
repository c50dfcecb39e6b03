from __future__ import annotations

import json
import math

import pytest

from chalicelib.domain.scaling.alarms import alarm_state
from chalicelib.domain.scaling.config import AlarmSpec, MetricQuery, MissingData, Policy, Statistic, Target
from chalicelib.domain.scaling.periods import PeriodStats, nearest_rank, period_stats
from chalicelib.domain.scaling.policy import capacity_timeline, decide
from chalicelib.domain.scaling.projection import projection
from chalicelib.domain.scaling.report import REPORT_SCHEMA_VERSION, TargetResult, report_document
from tests.unit.scaling_runs import successive_runs

T0 = 1_795_597_200_000  # 2026-11-25T09:00:00Z
S = 1000
MIN = 60 * S
HOUR = 60 * MIN

UP = AlarmSpec(">", 70)  # Average > 70 for 2 periods of 60 s
DOWN = AlarmSpec("<", 40)  # Average < 40 for 2 periods of 60 s
POLICY = Policy(UP, DOWN)  # +1 / -1, cooldown 180 s, capacity 1..10


def target(policy: Policy = POLICY, **kwargs) -> Target:
    return Target("ingest", "asg", "iot-ingest", policy, **kwargs)


def flat_stats(*means: float | None, start: int = T0) -> list[PeriodStats]:
    """One period a minute; the same value for every statistic (None = no data)."""
    return [PeriodStats(start + i * MIN, 0 if v is None else 1, v, v, v) for i, v in enumerate(means)]


def states_of(values, spec, previous="INSUFFICIENT_DATA"):
    return alarm_state(values, spec, previous).state


# --- M out of N ---------------------------------------------------------------------------


def test_two_of_two_breaching_is_alarm():
    evaluation = alarm_state([80.0, 75.0], UP)
    assert evaluation.state == "ALARM"
    assert evaluation.breaching == 2
    assert evaluation.evaluated == (80.0, 75.0)
    assert evaluation.filled == 0


def test_one_of_two_breaching_is_ok():
    assert alarm_state([80.0, 65.0], UP).state == "OK"
    assert alarm_state([65.0, 80.0], UP).state == "OK"


def test_only_the_last_n_datapoints_count():
    assert states_of([80.0, 80.0, 80.0, 10.0], UP) == "OK"
    assert states_of([10.0, 10.0, 80.0, 80.0], UP) == "ALARM"


def test_three_of_five_need_not_be_consecutive():
    spec = AlarmSpec(">", 70, evaluation_periods=5, datapoints_to_alarm=3)
    assert states_of([80.0, 10.0, 80.0, 10.0, 80.0], spec) == "ALARM"
    assert states_of([80.0, 10.0, 10.0, 10.0, 80.0], spec) == "OK"
    assert states_of([10.0, 80.0, 80.0, 80.0, 10.0], spec) == "ALARM"


def test_threshold_equality_breaches_only_the_inclusive_comparisons():
    assert states_of([70.0, 70.0], AlarmSpec(">", 70)) == "OK"
    assert states_of([70.0, 70.0], AlarmSpec(">=", 70)) == "ALARM"
    assert states_of([40.0, 40.0], AlarmSpec("<", 40)) == "OK"
    assert states_of([40.0, 40.0], AlarmSpec("<=", 40)) == "ALARM"


def test_state_reason_reads_like_cloudwatch():
    evaluation = alarm_state([80.0, 75.5], UP, timestamps_ms=[T0, T0 + MIN])
    assert evaluation.reason == (
        "Threshold Crossed: 2 out of the last 2 datapoints [75.5 (25/11/26 09:01:00), 80.0 (25/11/26 09:00:00)] "
        "were greater than the threshold (70.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )
    ok = alarm_state([80.0, 30.0], UP)
    assert ok.reason == (
        "Threshold Crossed: 1 out of the last 2 datapoints [30.0, 80.0] was not greater than the threshold "
        "(70.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )
    assert alarm_state([None, None], UP).reason == "Insufficient Data: 4 datapoints were unknown."


@pytest.mark.parametrize(
    "kwargs",
    [
        {"comparison": "!=", "threshold": 1},
        {"comparison": ">", "threshold": math.nan},
        {"comparison": ">", "threshold": 1, "datapoints_to_alarm": 3},
        {"comparison": ">", "threshold": 1, "datapoints_to_alarm": 0},
        {"comparison": ">", "threshold": 1, "evaluation_periods": 0},
        {"comparison": ">", "threshold": 1, "missing_data": "zero"},
        {"comparison": ">", "threshold": 1, "statistic": "Sum"},
        {"comparison": ">", "threshold": 1, "evaluation_range": 1},
        {"comparison": ">", "threshold": 1, "period_s": 0},
    ],
)
def test_invalid_alarm_specs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        AlarmSpec(**kwargs)


# --- missing data: the User Guide's own tables ---------------------------------------------
# "How alarm state is evaluated when data is missing": N = 3, evaluation range 5, most recent
# datapoint on the right; 0 = not breaching, X = breaching, - = missing, keep = retain state.

TREATMENTS: tuple[MissingData, ...] = ("missing", "ignore", "breaching", "notBreaching")
DOC_ROWS = [
    # M = 3 (first table)
    (3, "0 - X - X", ("OK", "OK", "OK", "OK")),
    (3, "0 - - - -", ("OK", "OK", "OK", "OK")),
    (3, "- - - - -", ("INSUFFICIENT_DATA", "keep", "ALARM", "OK")),
    (3, "0 X X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    (3, "- - X - -", ("ALARM", "keep", "ALARM", "OK")),
    # M = 2 (second table, 2 out of 3)
    (2, "0 - X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    (2, "0 0 X 0 X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    (2, "0 - X - -", ("OK", "OK", "ALARM", "OK")),
    (2, "- - - - 0", ("OK", "OK", "ALARM", "OK")),
    (2, "- - - X -", ("ALARM", "keep", "ALARM", "OK")),
]


def datapoints(row: str) -> list[float | None]:
    return [{"0": 10.0, "X": 90.0, "-": None}[c] for c in row.split()]


@pytest.mark.parametrize(("m", "row", "expected"), DOC_ROWS)
@pytest.mark.parametrize("previous", ["OK", "ALARM"])
def test_user_guide_missing_data_tables(m, row, expected, previous):
    for treatment, want in zip(TREATMENTS, expected, strict=True):
        spec = AlarmSpec(">", 50, evaluation_periods=3, datapoints_to_alarm=m, missing_data=treatment)
        got = alarm_state(datapoints(row), spec, previous).state
        assert got == (previous if want == "keep" else want), (treatment, row)


def test_premature_alarm_waits_for_the_breach_to_age():
    spec = AlarmSpec(">", 50, evaluation_periods=3)  # M = N = 3, range 5
    # "the alarm does not go immediately into ALARM state when the data is - - - - X or - - - X -"
    assert states_of(datapoints("- - - - X"), spec) == "OK"
    assert states_of(datapoints("- - - X -"), spec) == "OK"
    assert states_of(datapoints("- - X - -"), spec) == "ALARM"
    assert "premature alarm rule" in alarm_state(datapoints("- - X - -"), spec).reason


# --- missing data: gaps in different positions, the default 2-of-2 alarm (range 4) -----------


def test_missing_looks_back_past_gaps_within_the_evaluation_range():
    assert states_of([80.0, None, 80.0], UP) == "ALARM"  # gap in the middle
    assert states_of([80.0, 80.0, None, None], UP) == "ALARM"  # two newest missing
    assert states_of([10.0, 80.0, None, None], UP) == "OK"
    evaluation = alarm_state([80.0, None, 80.0], UP)
    assert evaluation.evaluated == (80.0, 80.0)
    assert evaluation.filled == 0


def test_missing_look_back_is_limited_to_the_evaluation_range():
    assert UP.range_periods == 4
    assert states_of([80.0, 80.0, None, None, None, None], UP) == "INSUFFICIENT_DATA"
    assert states_of([None, None, None, None], UP) == "INSUFFICIENT_DATA"
    assert states_of([], UP) == "INSUFFICIENT_DATA"
    wider = AlarmSpec(">", 70, evaluation_range=6)
    assert states_of([80.0, 80.0, None, None, None, None], wider) == "ALARM"


def test_missing_with_too_few_datapoints():
    assert states_of([None, 80.0], UP) == "OK"  # newest breach is only 1 period old
    assert states_of([80.0, None], UP) == "ALARM"  # 2 periods old, nothing since: premature alarm rule
    assert states_of([None, 10.0], UP) == "OK"
    evaluation = alarm_state([None, 10.0], UP)
    assert evaluation.evaluated == (None, 10.0)
    assert evaluation.filled == 1


def test_ignore_keeps_the_previous_state_only_when_data_cannot_decide():
    spec = AlarmSpec(">", 70, missing_data="ignore")
    for previous in ("OK", "ALARM", "INSUFFICIENT_DATA"):
        assert states_of([None, None, None, None], spec, previous) == previous
        assert states_of([80.0, None], spec, previous) == previous  # premature case
    assert states_of([80.0, None, 80.0], spec, "OK") == "ALARM"  # enough real data: treatment unused
    assert states_of([None, 10.0], spec, "ALARM") == "OK"


def test_breaching_fills_only_the_shortfall_with_breaching_datapoints():
    spec = AlarmSpec(">", 70, missing_data="breaching")
    assert states_of([None, None], spec) == "ALARM"
    assert states_of([80.0, None], spec) == "ALARM"
    assert states_of([None, 80.0], spec) == "ALARM"
    assert states_of([10.0, None], spec) == "OK"  # 1 real good + 1 filled bad: 1 of 2
    assert states_of([80.0, 10.0, None], spec) == "OK"  # 2 real datapoints: no filling at all
    evaluation = alarm_state([10.0, None], spec)
    assert (evaluation.breaching, evaluation.filled) == (1, 1)
    assert "1 missing datapoint treated as breaching" in evaluation.reason


def test_not_breaching_counts_missing_as_good():
    spec = AlarmSpec(">", 70, missing_data="notBreaching")
    assert states_of([None, None], spec, "ALARM") == "OK"
    assert states_of([80.0, None], spec) == "OK"
    assert states_of([None, 80.0], spec) == "OK"
    assert states_of([80.0, None, 80.0], spec) == "ALARM"


def test_the_alarm_statistic_picks_the_period_value():
    stats = [PeriodStats(T0 + i * MIN, 10, 50.0, 75.0, 90.0) for i in range(3)]
    cases: list[tuple[Statistic, str]] = [("Average", "OK"), ("p95", "ALARM"), ("Maximum", "ALARM")]
    for statistic, state in cases:
        spec = AlarmSpec(">", 70, statistic=statistic)
        policy = Policy(spec, AlarmSpec("<", 10))
        assert decide(target(policy), stats, 2, T0 + 3 * MIN, None).up_alarm.state == state


# --- period_stats ---------------------------------------------------------------------------


def test_period_stats_align_to_period_boundaries_and_keep_empty_periods():
    points = [
        (T0 + 5 * S, 5.0),  # before start_ms, but in the (aligned) first period
        (T0 + 30 * S, 7.0),
        (T0 + 2 * MIN + 1, 10.0),  # third period; the second has nothing
        (T0 + 3 * MIN, 99.0),  # at end_ms: excluded
        (T0 + MIN + 5 * S, math.nan),  # not finite: dropped
    ]
    stats = period_stats(points, T0 + 20 * S, T0 + 3 * MIN, 60, capacity=10.0)
    assert [s.start_ms for s in stats] == [T0, T0 + MIN, T0 + 2 * MIN]
    assert stats[0] == PeriodStats(T0, 2, 60.0, 70.0, 70.0)
    assert stats[1] == PeriodStats(T0 + MIN, 0, None, None, None)
    assert stats[2] == PeriodStats(T0 + 2 * MIN, 1, 100.0, 100.0, 100.0)


def test_period_stats_mean_nearest_rank_p95_and_max():
    points = [(T0 + i * S, float(v)) for i, v in enumerate(range(1, 21))]  # 1..20 in one minute
    (only,) = period_stats(points, T0, T0 + MIN, 60, capacity=10.0)
    assert only.samples == 20
    assert only.mean == pytest.approx(105.0)
    assert only.p95 == pytest.approx(190.0)  # rank ceil(0.95 * 20) = 19 -> 19 -> 190 %
    assert only.maximum == pytest.approx(200.0)
    assert nearest_rank([3.0, 1.0, 2.0], 50) == 2.0
    assert nearest_rank([5.0], 95) == 5.0


def test_period_stats_partial_last_period_and_bad_input():
    stats = period_stats([], T0, T0 + 90 * S, 60, capacity=1.0)
    assert [s.start_ms for s in stats] == [T0, T0 + MIN]
    assert period_stats([], T0, T0, 60, 1.0) == []
    with pytest.raises(ValueError):
        period_stats([], T0, T0 + MIN, 60, capacity=0.0)
    with pytest.raises(ValueError):
        period_stats([], T0, T0 + MIN, 0, capacity=1.0)


# --- decide: cooldown, bounds, precedence ---------------------------------------------------

HIGH = flat_stats(*[90.0] * 10)
LOW = flat_stats(*[10.0] * 10)


def test_cooldown_boundary_is_inclusive_at_t_plus_cooldown():
    t = T0 + 4 * MIN  # the last action
    inside = decide(target(), HIGH, 3, t + 179 * S, t)
    assert inside.action == "hold"
    assert inside.in_cooldown
    assert inside.up_alarm.state == "ALARM"
    assert inside.cooldown_ends_ms == t + 180 * S
    assert "cooldown" in inside.reason
    at_end = decide(target(), HIGH, 3, t + 180 * S, t)
    assert at_end.action == "scale_up"
    assert (at_end.from_capacity, at_end.to_capacity) == (3, 4)
    assert not at_end.in_cooldown
    assert at_end.cooldown_ends_ms is None


def test_in_cooldown_is_reported_even_without_an_alarm():
    stats = flat_stats(*[55.0] * 10)
    decision = decide(target(), stats, 3, T0 + 5 * MIN, T0 + 4 * MIN)
    assert decision.action == "hold"
    assert decision.in_cooldown
    assert decision.reason.startswith("no alarm in ALARM")
    assert not decide(target(), stats, 3, T0 + 5 * MIN, None).in_cooldown


def test_scale_up_stops_at_max_capacity():
    at_max = decide(target(), HIGH, 10, T0 + 5 * MIN, None)
    assert (at_max.action, at_max.to_capacity, at_max.clamped) == ("hold", 10, True)
    assert "already at its max" in at_max.reason
    big_step = Policy(UP, DOWN, step_up=3)
    cut = decide(target(big_step), HIGH, 9, T0 + 5 * MIN, None)
    assert (cut.action, cut.from_capacity, cut.to_capacity, cut.clamped) == ("scale_up", 9, 10, True)


def test_scale_down_stops_at_min_capacity():
    at_min = decide(target(), LOW, 1, T0 + 5 * MIN, None)
    assert (at_min.action, at_min.to_capacity, at_min.clamped) == ("hold", 1, True)
    big_step = Policy(UP, DOWN, step_down=2, min_capacity=1)
    cut = decide(target(big_step), LOW, 2, T0 + 5 * MIN, None)
    assert (cut.action, cut.to_capacity, cut.clamped) == ("scale_down", 1, True)
    plain = decide(target(), LOW, 4, T0 + 5 * MIN, None)
    assert (plain.action, plain.to_capacity, plain.clamped) == ("scale_down", 3, False)


def test_scale_up_wins_when_both_alarms_are_in_alarm():
    odd = Policy(AlarmSpec(">", 50), AlarmSpec("<", 60))
    decision = decide(target(odd), flat_stats(*[55.0] * 4), 3, T0 + 4 * MIN, None)
    assert decision.up_alarm.state == decision.down_alarm.state == "ALARM"
    assert decision.action == "scale_up"


def test_decide_sees_only_periods_that_ended():
    stats = flat_stats(10.0, 10.0, 90.0, 90.0)
    assert decide(target(), stats, 3, T0 + 3 * MIN + 59 * S, None).up_alarm.state == "OK"
    assert decide(target(), stats, 3, T0 + 4 * MIN, None).action == "scale_up"


def test_dynamodb_metric_alarms_always_ignore_missing_data():
    dynamo = Target(
        "readings-table",
        "dynamodb",
        "readings",
        POLICY,
        metric=MetricQuery("AWS/DynamoDB", "ConsumedWriteCapacityUnits", {"TableName": "readings"}),
    )
    kept = decide(dynamo, [], 3, T0, None, up_previous="ALARM", down_previous="OK")
    assert kept.up_alarm.state == "ALARM"
    assert kept.up_alarm.spec.missing_data == "ignore"
    assert kept.action == "scale_up"
    custom = target(metric=MetricQuery("iotcloud", "ReadingsIngested"))
    assert decide(custom, [], 3, T0, None, up_previous="ALARM").up_alarm.state == "INSUFFICIENT_DATA"


def test_policy_and_target_validation():
    with pytest.raises(ValueError):
        Policy(UP, AlarmSpec("<", 40, period_s=300))
    with pytest.raises(ValueError):
        Policy(UP, DOWN, min_capacity=5, max_capacity=4)
    with pytest.raises(ValueError):
        target(capacity_per_unit=0.0)
    with pytest.raises(ValueError):
        Target("x", "ec2", "r", POLICY)  # type: ignore[arg-type]


# --- successive runs --------------------------------------------------------------------------


def test_successive_runs_seed_scenario():
    # Load above 70 % for 3 periods, then below 40 %; capacity 2; +1/-1; cooldown 180 s.
    stats = flat_stats(80.0, 80.0, 80.0, 30.0, 30.0, 30.0)
    decisions = successive_runs(target(), stats, initial_capacity=2)
    assert [d.at_ms for d in decisions] == [T0 + (i + 1) * MIN for i in range(6)]
    assert [d.action for d in decisions] == ["hold", "scale_up", "hold", "hold", "scale_down", "hold"]
    assert [d.to_capacity for d in decisions] == [2, 3, 3, 3, 2, 2]
    # +1 at the end of period 2, when the high alarm has its 2 high periods
    assert decisions[1].up_alarm.state == "ALARM"
    # period 3: still in ALARM, but in cooldown (action at 09:02, cooldown to 09:05)
    assert decisions[2].up_alarm.state == "ALARM"
    assert decisions[2].in_cooldown
    # period 4: one low period, the low alarm isn't in ALARM yet (and still in cooldown)
    assert decisions[3].down_alarm.state == "OK"
    assert decisions[3].in_cooldown
    # period 5: two low periods, and exactly 180 s after the scale-up: -1
    assert decisions[4].down_alarm.state == "ALARM"
    assert not decisions[4].in_cooldown
    # period 6: the low alarm stays in ALARM, but a new cooldown began at period 5
    assert decisions[5].down_alarm.state == "ALARM"
    assert decisions[5].in_cooldown
    assert capacity_timeline(decisions, 2, T0) == [(T0, 2), (T0 + 2 * MIN, 3), (T0 + 5 * MIN, 2)]


def test_successive_runs_keeps_invoking_while_in_alarm_after_each_cooldown():
    decisions = successive_runs(target(), flat_stats(*[90.0] * 9), initial_capacity=1)
    ups = [(d.at_ms - T0) // MIN for d in decisions if d.action == "scale_up"]
    assert ups == [2, 5, 8]
    assert decisions[-1].to_capacity == 4


def test_successive_runs_carries_a_cooldown_in_from_before_the_window():
    decisions = successive_runs(target(), flat_stats(*[90.0] * 4), 2, start_last_action_ms=T0 + MIN)
    assert [d.action for d in decisions] == ["hold", "hold", "hold", "scale_up"]
    assert decisions[1].in_cooldown and decisions[1].up_alarm.state == "ALARM"


def test_successive_runs_keeps_alarm_state_for_ignore_across_gaps():
    policy = Policy(AlarmSpec(">", 70, missing_data="ignore"), AlarmSpec("<", 40, missing_data="ignore"))
    stats = flat_stats(90.0, 90.0, None, None, None, None, None, None)
    decisions = successive_runs(target(policy), stats, initial_capacity=2)
    assert all(d.up_alarm.state == "ALARM" for d in decisions[1:])
    assert [d.action for d in decisions].count("scale_up") == 3  # 09:02, 09:05, 09:08


def test_successive_runs_of_nothing():
    assert successive_runs(target(), [], 2) == []


# --- projection -------------------------------------------------------------------------------


def test_projection_on_a_linear_ramp():
    # 10 readings/s growing by 20 per hour, sampled every minute for an hour; capacity 100.
    points = [(T0 + i * MIN, 10.0 + 20.0 * i / 60) for i in range(61)]
    p = projection(points, capacity=100.0, threshold_pct=70.0, now_ms=T0 + HOUR)
    assert p.trend == "rising"
    assert p.samples == 61
    assert p.slope_per_hour == pytest.approx(20.0)
    assert p.slope_pct_per_hour == pytest.approx(20.0)
    assert p.fitted_now == pytest.approx(30.0)
    assert p.utilization_now_pct == pytest.approx(30.0)
    assert p.crosses_at_ms is not None
    assert abs(p.crosses_at_ms - (T0 + 3 * HOUR)) <= 1  # 30 -> 70 at 20/h: two more hours
    assert not p.already_above


def test_projection_utilization_uses_capacity():
    points = [(T0 + i * MIN, 10.0 + 20.0 * i / 60) for i in range(61)]
    p = projection(points, capacity=200.0, threshold_pct=70.0, now_ms=T0 + HOUR)
    assert p.utilization_now_pct == pytest.approx(15.0)
    assert p.slope_pct_per_hour == pytest.approx(10.0)
    assert p.crosses_at_ms is not None
    assert abs(p.crosses_at_ms - (T0 + HOUR + 11 * HOUR // 2)) <= 1  # 30 -> 140 at 20/h: 5.5 h more


def test_projection_never_crosses_on_flat_or_falling_load():
    flat = projection([(T0 + i * MIN, 0.1 * 3) for i in range(30)], 1.0, 70.0, T0 + 30 * MIN)
    assert (flat.trend, flat.slope_per_hour, flat.crosses_at_ms) == ("flat", 0.0, None)
    falling = projection([(T0 + i * MIN, 50.0 - i) for i in range(30)], 100.0, 70.0, T0 + 30 * MIN)
    assert falling.trend == "falling"
    assert falling.slope_per_hour == pytest.approx(-60.0)
    assert falling.crosses_at_ms is None


def test_projection_already_above_and_too_little_data():
    above = projection([(T0 + i * MIN, 80.0 + i) for i in range(10)], 100.0, 70.0, T0 + 10 * MIN)
    assert above.already_above and above.crosses_at_ms is None
    one = projection([(T0, 5.0)], 10.0, 70.0, T0)
    assert (one.trend, one.fitted_now, one.utilization_now_pct, one.crosses_at_ms) == (
        "insufficient_data",
        5.0,
        50.0,
        None,
    )
    none = projection([], 10.0, 70.0, T0)
    assert (none.samples, none.fitted_now, none.crosses_at_ms) == (0, None, None)
    with pytest.raises(ValueError):
        projection([], 0.0, 70.0, T0)


# --- the report document ------------------------------------------------------------------------


def report(applied: bool, **kwargs):
    tgt = target(metric=MetricQuery("iotcloud", "ReadingsIngested", {"Stage": "dev"}, "Sum"))
    stats = flat_stats(80.0, 80.0, None)
    decision = decide(tgt, stats, 2, T0 + 2 * MIN, None)
    points = [(T0 + i * MIN, 10.0 + i) for i in range(3)]
    proj = projection(points, tgt.total_capacity(2), 70.0, T0 + 3 * MIN)
    result = TargetResult(tgt, stats, decision, applied=applied, projection=proj)
    return report_document(
        report_id="r-1",
        stage="dev",
        generated_at_ms=T0 + 3 * MIN,
        window_start_ms=T0,
        window_end_ms=T0 + 3 * MIN,
        period_s=60,
        results=[result],
        **kwargs,
    )


def test_report_document_is_plain_json():
    doc = report(applied=False)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema_version"] == REPORT_SCHEMA_VERSION == 1
    assert doc["generated_at"] == "2026-11-25T09:03:00.000Z"
    assert doc["trigger"] == {"kind": "schedule"}
    assert doc["window"] == {"start_ms": T0, "end_ms": T0 + 3 * MIN, "period_s": 60}
    (tgt,) = doc["targets"]
    assert tgt["capacity"] == {"before": 2, "after": 2, "min": 1, "max": 10}
    assert tgt["decision"]["action"] == "scale_up"
    assert tgt["decision"]["to_capacity"] == 3
    assert tgt["applied"] is False
    assert tgt["alarms"]["scale_up"]["state"] == "ALARM"
    assert tgt["alarms"]["scale_up"]["spec"]["threshold"] == 70
    assert tgt["alarms"]["scale_down"]["state"] == "OK"
    assert tgt["utilization"][2] == {"start_ms": T0 + 2 * MIN, "samples": 0, "mean": None, "p95": None, "maximum": None}
    assert tgt["metric"] == {
        "namespace": "iotcloud",
        "metric_name": "ReadingsIngested",
        "dimensions": {"Stage": "dev"},
        "stat": "Sum",
    }
    assert tgt["projection"]["trend"] == "rising"
    assert doc["summary"].count("\n") == 0
    assert doc["summary"].startswith("ingest (asg iot-ingest): scale_up 2 -> 3, not applied")


def test_report_document_applied_and_alarm_trigger():
    doc = report(applied=True, trigger="alarm", alarm_name="iotcloud-dev-ingest-high")
    assert doc["trigger"] == {"kind": "alarm", "alarm_name": "iotcloud-dev-ingest-high"}
    assert doc["targets"][0]["capacity"]["after"] == 3
    with pytest.raises(ValueError):
        report(applied=False, alarm_name="not-with-a-schedule")
