"""The demo's scripted freezer alert fits the demo's duration: it is raised and cleared before
the end for every duration the demo accepts, and shorter durations are refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.domain.alerts import Cleared, Raised, RuleState, evaluate, validate_rule
from chalicelib.domain.readings import Reading
from device_sim.profiles import SampleSource, device_rng, load_profile
from devstack.__main__ import main
from devstack.demo import (
    FREEZER_DEVICES,
    FREEZER_INTERVAL_S,
    FREEZER_METRIC,
    FREEZER_RULE,
    freezer_profile,
    minimum_duration,
    warm_up,
)

RULE = validate_rule(FREEZER_RULE, rule_id="rule-demo", created_at=0, updated_at=0)


def produced_steps(duration: float, jitter: float) -> range:
    """The records a simulated device makes in a run (device_sim/fleet.py run_producer: record
    `step` is due `jitter + step * interval` after the start and is made while that is before the end)."""
    count = 0
    while jitter + count * FREEZER_INTERVAL_S < duration:
        count += 1
    return range(count)


def events_of(profile_path: Path, ordinal: int, duration: float, jitter: float, seed: int = 1) -> list[object]:
    (freezer,) = load_profile(profile_path).device_types
    source = SampleSource(freezer, device_rng(seed, ordinal, "values"), FREEZER_INTERVAL_S, ordinal)
    readings = []
    for step in produced_steps(duration, jitter):
        sample = next(s for s in source.next_samples() if s.metric == FREEZER_METRIC)
        ts_ms = round((jitter + step * FREEZER_INTERVAL_S) * 1000)
        readings.append(Reading(sample.metric, sample.unit, ts_ms, sample.value))
    _state, events = evaluate(RULE, RuleState(RULE.rule_id, f"freezer-{ordinal}"), readings)
    return events


@pytest.mark.parametrize("duration", [minimum_duration(), minimum_duration() + 0.5, 40.0, 60.0, 300.0])
@pytest.mark.parametrize("jitter", [0.0, 0.999 * FREEZER_INTERVAL_S])  # a device starts up to one interval late
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_scripted_alert_is_raised_and_cleared_within_the_duration(
    tmp_path: Path, duration: float, jitter: float, seed: int
) -> None:
    script = warm_up(duration)
    assert script.ends < duration
    profile = freezer_profile(script, tmp_path / "freezers.yaml")
    events = events_of(profile, 0, duration, jitter, seed)
    assert [type(e) for e in events] == [Raised, Cleared]
    raised, cleared = events
    assert isinstance(raised, Raised) and isinstance(cleared, Cleared)
    assert script.at * 1000 <= raised.ts_ms < cleared.ts_ms < duration * 1000
    for other in range(1, FREEZER_DEVICES):  # only the first freezer warms up
        assert events_of(profile, other, duration, jitter, seed) == []


def test_a_longer_demo_has_a_longer_warm_up_in_whole_intervals() -> None:
    scripts = [warm_up(d) for d in (minimum_duration(), 40.0, 60.0, 300.0)]
    assert [s.duration for s in scripts] == sorted(s.duration for s in scripts)
    assert scripts[0].duration < scripts[-1].duration
    for s in scripts:
        assert (s.at / FREEZER_INTERVAL_S).is_integer() and (s.duration / FREEZER_INTERVAL_S).is_integer()


def test_the_minimum_is_the_sum_of_the_parts_of_the_script() -> None:
    # 5 cold readings, 2 over the threshold (the rule) + 1 spare, 3 cold after, 1 for the start jitter.
    assert minimum_duration() == 12 * FREEZER_INTERVAL_S
    assert minimum_duration({**FREEZER_RULE, "duration": {"readings": 5}}) == 15 * FREEZER_INTERVAL_S
    with pytest.raises(ValueError, match="at least 12 s"):
        warm_up(minimum_duration() - 0.5)


@pytest.mark.parametrize("duration", ["11.9", "5", "0", "-3", "nan", "soon"])
def test_a_demo_too_short_for_its_alert_is_refused_before_anything_starts(
    duration: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import devstack.stack

    def no_stack(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stack was started")

    monkeypatch.setattr(devstack.stack.LocalStack, "__enter__", no_stack)
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--duration", duration, "--api-port", "1", "--moto-port", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --duration" in err
    if duration != "soon":
        assert "at least 12 s to raise and clear" in err


def test_the_minimum_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import devstack.__main__ as cli

    seen: list[float] = []
    monkeypatch.setattr(cli, "cmd_demo", lambda args: seen.append(args.duration) or 0)
    parser_default = main(["demo", "--duration", f"{minimum_duration():g}"])
    assert parser_default == 0 and seen == [minimum_duration()]
