"""Alert rules: validation, and evaluation against hand-computed sequences (pure, no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.alerts import (
    Alert,
    Cleared,
    Condition,
    Raised,
    Rule,
    RuleState,
    alert_id_for,
    alert_writes,
    email_text,
    evaluate,
    evaluate_offline,
    notifications_for,
    patch_rule,
    validate_rule,
)
from chalicelib.domain.readings import Reading
from chalicelib.errors import ValidationError

T0 = 1_764_061_200_000  # 2025-11-25T09:00:00Z
S = 1000
RULE_ID = "rule-" + "0" * 20


def rule(**fields: Any) -> Rule:
    body = {"name": "freezer too warm", "scope": {"type": "freezer"}, "metric": "temp"}
    body["condition"] = {"op": ">", "value": -15}
    body.update(fields)
    return validate_rule(
        {k: v for k, v in body.items() if v is not None}, rule_id=RULE_ID, created_at=T0, updated_at=T0
    )


def temps(*points: tuple[int, Any], metric: str = "temp", unit: str = "Cel") -> list[Reading]:
    """Readings at T0 + seconds."""
    return [Reading(metric, unit, T0 + seconds * S, value) for seconds, value in points]


def fresh() -> RuleState:
    return RuleState(RULE_ID, "fz-1")


def run(r: Rule, *batches: list[Reading], state: RuleState | None = None) -> tuple[RuleState, list[Any]]:
    """Evaluate batches in turn (as successive invocations would); all events in order."""
    state = state or fresh()
    events: list[Any] = []
    for batch in batches:
        state, new = evaluate(r, state, batch)
        events += new
    return state, events


def shape(events: list[Any]) -> list[tuple[str, int]]:
    """Events as (kind, seconds after T0)."""
    return [("raised" if isinstance(e, Raised) else "cleared", (e.ts_ms - T0) // S) for e in events]


# --- thresholds and durations ---------------------------------------------------------------------------------------


def test_immediate_rule_raises_on_the_first_reading_over_and_clears_on_the_first_back():
    state, events = run(rule(), temps((0, -20), (60, -10), (120, -12), (180, -20)))
    assert shape(events) == [("raised", 60), ("cleared", 180)]
    assert events[0].readings == tuple(temps((60, -10)))
    assert events[1].readings == tuple(temps((180, -20)))
    assert events[0].alert_id == events[1].alert_id == alert_id_for(RULE_ID, "fz-1", T0 + 60 * S)
    assert state.active_alert is None and state.last_ts == T0 + 180 * S


def test_seconds_duration_raises_once_the_condition_held_that_long():
    r = rule(duration={"seconds": 300})
    # Over the threshold from t=0, a reading a minute: 240 s is not yet 300 s; t=300 is.
    state, events = run(r, temps(*[(t, -10) for t in range(0, 300, 60)]))
    assert events == [] and state.pending_since == T0 and state.pending_count == 5
    state, events = run(r, temps((300, -11)), state=state)
    assert shape(events) == [("raised", 300)]
    assert events[0].readings == tuple(temps((0, -10), (300, -11)))  # the run's first reading and the last


def test_a_reading_back_under_the_threshold_restarts_the_duration():
    r = rule(duration={"seconds": 300})
    readings = temps((0, -10), (60, -10), (120, -10), (180, -20), *[(t, -10) for t in range(240, 541, 60)])
    _, events = run(r, readings)
    assert shape(events) == [("raised", 540)]  # 540 - 240 = 300; the run from t=0 was broken at t=180


def test_readings_duration_counts_consecutive_readings():
    r = rule(duration={"readings": 3})
    _, events = run(r, temps((0, -10), (10, -10), (20, -20), (30, -10), (40, -10), (50, -10), (60, -9)))
    assert shape(events) == [("raised", 50)]


def test_duration_spans_invocations():
    r = rule(duration={"readings": 3})
    _, events = run(r, temps((0, -10)), temps((10, -10)), temps((20, -10)))
    assert shape(events) == [("raised", 20)]


def test_hysteresis_clear_needs_the_clear_condition_not_just_the_threshold():
    r = rule(clear={"op": "<", "value": -18})
    _, events = run(r, temps((0, -10), (10, -16), (20, -17.9), (30, -14), (40, -18), (50, -19), (60, -16)))
    # -16, -17.9, -18 are between: still active; -14 is over again: no second alert; -19 clears.
    assert shape(events) == [("raised", 0), ("cleared", 50)]


def test_default_clear_is_the_negated_condition():
    r = rule()
    assert r.clear_condition == Condition("<=", -15)
    _, events = run(r, temps((0, -10), (10, -15)))
    assert shape(events) == [("raised", 0), ("cleared", 10)]  # -15 is not > -15


@pytest.mark.parametrize(
    ("op", "negated"),
    [(">", "<="), (">=", "<"), ("<", ">="), ("<=", ">"), ("==", "!="), ("!=", "=="), ("equals", "not_equals"),
     ("contains", "not_contains")],
)  # fmt: skip
def test_negations(op, negated):
    assert Condition(op, 1).negated() == Condition(negated, 1)
    assert Condition(negated, 1).negated() == Condition(op, 1)


def test_numeric_operators():
    cases = {">": [False, False, True], ">=": [False, True, True], "<": [True, False, False],
             "<=": [True, True, False], "==": [False, True, False], "!=": [True, False, True]}  # fmt: skip
    for op, expected in cases.items():
        assert [Condition(op, 5).holds(v) for v in (4, 5, 6.5)] == expected, op


# --- out of order, duplicates, flapping -----------------------------------------------------------------------------


def test_a_late_reading_is_ignored_and_cannot_reopen_the_past():
    r = rule()
    state, _ = run(r, temps((0, -20), (120, -20)))
    state, events = run(r, temps((60, -5)), state=state)  # arrives after t=120 was evaluated
    assert events == [] and state.last_ts == T0 + 120 * S and state.active_alert is None


def test_late_reading_does_not_count_towards_a_duration():
    r = rule(duration={"readings": 2})
    state, _ = run(r, temps((60, -10)))
    state, events = run(r, temps((30, -10)), state=state)
    assert events == [] and state.pending_count == 1


def test_a_batch_is_evaluated_in_time_order_whatever_order_it_arrives_in():
    _, events = run(rule(), list(reversed(temps((0, -10), (60, -12), (120, -20)))))
    assert shape(events) == [("raised", 0), ("cleared", 120)]


def test_duplicates_are_ignored_within_a_batch_and_across_batches():
    r = rule(duration={"readings": 2})
    batch = temps((0, -10), (0, -10), (10, -20))  # the same time twice counts once
    state, events = run(r, batch)
    assert events == [] and state.pending_count == 0
    again, events = run(r, batch, state=state)  # the stream delivering the batch again
    assert events == [] and again == state


def test_retrying_the_same_batch_from_the_same_state_gives_the_same_alert():
    r = rule()
    first = run(r, temps((0, -10)))
    second = run(r, temps((0, -10)))
    assert first == second


def test_flapping_signal_keeps_one_active_alert():
    r = rule(clear={"op": "<", "value": -18})
    readings = temps(*[(t, -10 if t % 20 == 0 else -16) for t in range(0, 200, 10)])
    state, events = run(r, readings)
    assert shape(events) == [("raised", 0)]
    assert state.active_alert == events[0].alert_id


def test_after_a_clear_a_new_alert_has_a_new_id():
    _, events = run(rule(), temps((0, -10), (10, -20), (20, -10)))
    assert shape(events) == [("raised", 0), ("cleared", 10), ("raised", 20)]
    assert events[0].alert_id != events[2].alert_id


# --- strings, booleans, units, other metrics ------------------------------------------------------------------------


def test_string_equals_with_readings_duration():
    r = rule(metric="door", condition={"op": "equals", "value": "open"}, duration={"readings": 2})
    doors = temps((0, "open"), (10, "closed"), (20, "open"), (30, "open"), (40, "open"), (50, "closed"), metric="door")
    _, events = run(r, doors)
    assert shape(events) == [("raised", 30), ("cleared", 50)]


def test_string_contains():
    r = rule(metric="status", condition={"op": "contains", "value": "alarm"})
    status = temps((0, "running"), (10, "alarm: E-042 spindle"), (20, "alarm: E-043"), (30, "idle"), metric="status")
    _, events = run(r, status)
    assert shape(events) == [("raised", 10), ("cleared", 30)]


def test_boolean_condition():
    r = rule(metric="ok", condition={"op": "is", "value": False})
    assert r.clear_condition == Condition("is", True)
    flags = temps((0, True), (10, False), (20, False), (30, True), metric="ok")
    _, events = run(r, flags)
    assert shape(events) == [("raised", 10), ("cleared", 30)]


def test_values_of_another_kind_are_ignored():
    assert not Condition(">", 1).holds(True)  # a boolean is not a number here
    r = rule()
    _, events = run(r, temps((0, "error"), (10, True), (20, -20)))
    assert events == []
    _, events = run(rule(metric="ok", condition={"op": "is", "value": True}), temps((0, 1), metric="ok"))
    assert events == []


def test_other_metrics_and_units_are_ignored():
    r = rule(unit="Cel")
    readings = temps((0, -5), metric="humidity") + temps((10, 260), unit="K") + temps((20, -20))
    state, events = run(r, readings)
    assert events == [] and state.last_ts == T0 + 20 * S
    _, events = run(rule(), temps((0, 260), unit="K"))  # no unit on the rule: any unit counts
    assert shape(events) == [("raised", 0)]


def test_disabled_rule_evaluates_nothing():
    state, events = run(rule(enabled=False), temps((0, -5)))
    assert events == [] and state == fresh()


# --- offline --------------------------------------------------------------------------------------------------------


def offline_rule(seconds: int = 3600) -> Rule:
    return validate_rule(
        {"name": "silent", "kind": "offline", "scope": {"all": True}, "offline": {"seconds": seconds}},
        rule_id=RULE_ID,
        created_at=T0,
        updated_at=T0,
    )


def test_offline_raises_after_the_silence_and_clears_when_heard_from():
    r = offline_rule(3600)
    state, events = evaluate_offline(r, fresh(), T0, T0 + 3599 * S)
    assert events == []
    state, events = evaluate_offline(r, state, T0, T0 + 3600 * S)
    assert shape(events) == [("raised", 3600)] and events[0].last_seen == T0
    state, again = evaluate_offline(r, state, T0, T0 + 7200 * S)
    assert again == []  # still silent: still the one alert
    state, events = evaluate_offline(r, state, T0 + 7300 * S, T0 + 7301 * S)
    assert shape(events) == [("cleared", 7301)] and state.active_alert is None
    assert state.last_seen == T0 + 7300 * S


def test_offline_last_seen_only_moves_forward():
    r = offline_rule(3600)
    state, _ = evaluate_offline(r, fresh(), T0 + 3000 * S, T0 + 3001 * S)
    state, events = evaluate_offline(r, state, T0, T0 + 3700 * S)  # a stale last_seen from a lagging read
    assert events == [] and state.last_seen == T0 + 3000 * S


def test_offline_knows_nothing_without_any_last_seen():
    assert evaluate_offline(offline_rule(), fresh(), None, T0) == (fresh(), [])


def test_offline_clear_from_the_stream_records_the_reading():
    r = offline_rule(3600)
    state, _ = evaluate_offline(r, fresh(), T0, T0 + 3600 * S)
    reading = temps((4000, -20))[0]
    _, events = evaluate_offline(r, state, T0 + 4000 * S, T0 + 4001 * S, reading=reading)
    assert isinstance(events[0], Cleared) and events[0].readings == (reading,)


def test_threshold_and_offline_evaluations_ignore_the_other_kind():
    assert evaluate(offline_rule(), fresh(), temps((0, 1))) == (fresh(), [])
    assert evaluate_offline(rule(), fresh(), T0, T0 + 10**9) == (fresh(), [])


# --- alerts and notifications ---------------------------------------------------------------------------------------


def test_raised_and_cleared_in_one_batch_is_written_as_one_cleared_alert():
    r = rule(severity="critical")
    _, events = run(r, temps((0, -10), (10, -20)))
    writes = alert_writes(r, events)
    assert writes.cleared == ()
    (alert,) = writes.created
    assert alert.state == "cleared" and alert.cleared_at == T0 + 10 * S and alert.severity == "critical"
    assert alert.raised_by == tuple(temps((0, -10))) and alert.cleared_by == tuple(temps((10, -20)))
    assert Alert.from_raise_doc(alert.raise_doc()).raise_doc() == alert.raise_doc()


def test_a_clear_of_an_earlier_alert_is_an_update():
    r = rule()
    state, _ = run(r, temps((0, -10)))
    _, events = run(r, temps((10, -20)), state=state)
    writes = alert_writes(r, events)
    assert writes.created == () and [c.alert_id for c in writes.cleared] == [state.active_alert]


def test_notifications_per_target():
    r = rule(notify={"emails": ["ops@example.com", "Oncall <oncall@example.org>"]}, unit="Cel")
    _, events = run(r, temps((0, -5), (10, -20)))
    notes = notifications_for(r, events, T0)
    assert [(n.channel, n.notification_id.split(".", 1)[1]) for n in notes] == [
        ("email", "raised.email"), ("wamp", "raised.wamp"), ("email", "cleared.email"), ("wamp", "cleared.wamp"),
    ]  # fmt: skip
    assert notes[0].payload["to"] == ["ops@example.com", "Oncall <oncall@example.org>"]
    assert notes[1].payload["topic"] == "iotcloud.alerts"
    assert notes[1].payload["kwargs"]["event"] == "raised" and notes[1].payload["kwargs"]["readings"][0]["value"] == -5
    silent = rule(notify={"emails": [], "topic": None})
    assert notifications_for(silent, events, T0) == []


def test_email_text_says_what_and_why():
    r = rule(severity="critical", duration={"seconds": 300}, clear={"op": "<", "value": -18})
    subject, text = email_text(r, Raised("a", RULE_ID, "fz-1", T0, tuple(temps((0, -5)))))
    assert subject == "[CRITICAL] RAISED: freezer too warm on fz-1"
    assert "temp > -15 for 300 s" in text and "temp = -5 Cel" in text and "2025-11-25T09:00:00.000Z" in text
    subject, text = email_text(r, Cleared("a", RULE_ID, "fz-1", T0, ()))
    assert subject.startswith("[CRITICAL] CLEARED") and "Clears on: temp < -18" in text


def test_rule_and_state_round_trip_through_their_stored_form():
    r = rule(unit="Cel", duration={"readings": 4}, clear={"op": "<", "value": -18}, notify={"emails": ["a@b.co"]})
    assert Rule.from_dict(r.as_dict()) == r
    o = offline_rule()
    assert Rule.from_dict(o.as_dict()) == o
    state, _ = run(rule(duration={"readings": 3}), temps((0, -10), (10, -10)))
    assert RuleState.from_dict(RULE_ID, "fz-1", state.as_dict(), 0) == state


# --- validation -----------------------------------------------------------------------------------------------------


def problems(body: Any) -> set[tuple[str, str | None]]:
    with pytest.raises(ValidationError) as caught:
        validate_rule(body, rule_id=RULE_ID, created_at=T0, updated_at=T0)
    assert caught.value.status == 422
    return {(p.code, p.field) for p in caught.value.details}


def test_validation_lists_every_problem():
    found = problems({"name": "", "scope": {"group": "x"}, "metric": "bad metric", "condition": {"op": "~", "value": 1},
                      "severity": "fatal", "colour": "red", "notify": {"emails": ["nope"]}})  # fmt: skip
    assert found == {
        ("invalid_field", "name"),
        ("invalid_field", "scope"),
        ("invalid_field", "metric"),
        ("invalid_field", "condition"),
        ("invalid_field", "severity"),
        ("unknown_field", "colour"),
        ("invalid_field", "notify"),
    }


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"condition": {"op": ">", "value": "7"}}, "condition"),
        ({"condition": {"op": "equals", "value": 7}}, "condition"),
        ({"condition": {"op": "is", "value": 1}}, "condition"),
        ({"condition": {"op": ">", "value": float("nan")}}, "condition"),
        ({"condition": {"op": ">", "value": True}}, "condition"),
        ({"condition": None}, "condition"),
        ({"clear": {"op": "equals", "value": "x"}}, "clear"),
        ({"duration": {"seconds": -1}}, "duration"),
        ({"duration": {"readings": 0}}, "duration"),
        ({"duration": {"seconds": 5, "readings": 2}}, "duration"),
        ({"scope": {"all": False}}, "scope"),
        ({"scope": {"device": "a", "type": "b"}}, "scope"),
        ({"unit": ""}, "unit"),
        ({"offline": {"seconds": 600}}, "offline"),
        ({"enabled": "yes"}, "enabled"),
        ({"notify": {"topic": "Not A URI"}}, "notify"),
        ({"notify": {"emails": ["a@b.co"] * 11}}, "notify"),
        ({"kind": "anomaly"}, "kind"),
    ],
)
def test_invalid_threshold_fields(fields, where):
    body = {"name": "n", "scope": {"all": True}, "metric": "temp", "condition": {"op": ">", "value": 1}, **fields}
    assert ("invalid_field", where) in problems({k: v for k, v in body.items() if v is not None})


def test_offline_rules_take_seconds_and_no_threshold_fields():
    found = problems({"name": "n", "kind": "offline", "scope": {"all": True}, "metric": "temp"})
    assert found == {("invalid_field", "metric"), ("invalid_field", "offline")}
    assert ("invalid_field", "offline") in problems(
        {"name": "n", "kind": "offline", "scope": {"all": True}, "offline": {"seconds": 30}}
    )


def test_defaults():
    r = rule()
    assert (r.severity, r.enabled, r.notify.topic, r.notify.emails, r.duration.as_dict(), r.clear) == (
        "major", True, "iotcloud.alerts", (), None, None,
    )  # fmt: skip
    assert r.as_dict()["effective_clear"] == {"op": "<=", "value": -15}


def test_patch_replaces_given_fields_and_null_resets_to_the_default():
    r = rule(clear={"op": "<", "value": -18}, duration={"seconds": 60})
    patched = patch_rule(r, {"clear": None, "severity": "minor", "duration": {"readings": 3}}, T0 + 5)
    assert patched.clear is None and patched.severity == "minor" and patched.duration.readings == 3
    assert (patched.created_at, patched.updated_at, patched.rule_id) == (T0, T0 + 5, RULE_ID)
    with pytest.raises(ValidationError) as caught:
        patch_rule(r, {"id": "rule-x"}, T0)
    assert caught.value.details[0].code == "unknown_field"
    with pytest.raises(ValidationError):
        patch_rule(r, {"kind": "offline", "offline": {"seconds": 600}}, T0)  # metric and condition still set
    offline = patch_rule(
        r, {"kind": "offline", "offline": {"seconds": 600}, "metric": None, "condition": None, "clear": None,
            "duration": None}, T0,
    )  # fmt: skip
    assert offline.kind == "offline" and offline.offline_seconds == 600
