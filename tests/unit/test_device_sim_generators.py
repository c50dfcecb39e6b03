"""device_sim: value generators, seeding and fleet profiles (pure, no server)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from device_sim.model import Sample
from device_sim.profiles import (
    BUILTIN_DIR,
    DeviceType,
    Profile,
    ProfileError,
    SampleSource,
    allocate_counts,
    assign_types,
    derive_seed,
    device_rng,
    load_profile,
    parse_profile,
    round_value,
)


def one_type(metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"device_types": {"t": {"metrics": metrics, **extra}}}


def samples_for(
    metric_spec: dict[str, Any], n: int, seed: int = 7, interval: float = 1.0, decimals: int = 2
) -> list[tuple[Sample, ...]]:
    profile = parse_profile({"decimals": decimals, **one_type({"m": metric_spec})})
    source = SampleSource(profile.device_types[0], random.Random(seed), interval)
    return [source.next_samples() for _ in range(n)]


def values(metric_spec: dict[str, Any], n: int, **kw: Any) -> list[Any]:
    return [s[0].value for s in samples_for(metric_spec, n, **kw)]


# ----------------------------------------------------------------- seeding


def test_derive_seed_is_stable_and_distinct() -> None:
    # Fixed value: a change would silently change every "repeatable" run.
    assert derive_seed(1, 0, "values") == derive_seed(1, 0, "values")
    assert derive_seed(1, 0, "values") == 8695471652102940308
    seeds = {derive_seed(s, i, k) for s in (1, 2) for i in range(5) for k in ("values", "faults")}
    assert len(seeds) == 20
    assert device_rng(1, 3).random() == device_rng(1, 3).random()
    assert device_rng(1, 3).random() != device_rng(1, 4).random()


def test_whole_profile_is_deterministic_for_a_seed() -> None:
    profile = load_profile("default")

    def run(seed: int) -> list[tuple[Sample, ...]]:
        out: list[tuple[Sample, ...]] = []
        for index, dtype in enumerate(assign_types(profile, 10)):
            source = SampleSource(dtype, device_rng(seed, index), 1.0)
            out.extend(source.next_samples() for _ in range(50))
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


# ----------------------------------------------------------------- generators


def test_constant() -> None:
    assert values({"generator": "constant", "value": "1.4.2"}, 3) == ["1.4.2"] * 3
    assert values({"generator": "constant", "value": 400}, 2) == [400, 400]
    assert values({"generator": "constant", "value": True}, 2) == [True, True]
    assert values({"generator": "constant", "value": 1.23456}, 1) == [1.23]


def test_random_walk_within_bounds_and_steps() -> None:
    spec = {"generator": "random_walk", "start": 20, "min": 18, "max": 22, "step": 0.5}
    vals = values(spec, 2000, decimals=6)
    assert vals[0] == 20
    assert all(18 <= v <= 22 for v in vals)
    assert all(abs(b - a) <= 0.5 + 1e-9 for a, b in zip(vals, vals[1:], strict=False))
    assert len(set(vals)) > 100  # it does move
    assert vals == values(spec, 2000, decimals=6)
    assert vals != values(spec, 2000, decimals=6, seed=8)


def test_sinusoid_bounds_and_period() -> None:
    spec = {
        "generator": "sinusoid",
        "period": 60,
        "amplitude": 10,
        "offset": 50,
        "noise": 0,
        "phase": 0,
    }
    vals = values(spec, 121, interval=1.0, decimals=6)
    assert vals[0] == pytest.approx(50)
    assert vals[15] == pytest.approx(60)  # quarter period
    assert vals[45] == pytest.approx(40)
    assert vals[0] == pytest.approx(vals[60]) == pytest.approx(vals[120])
    assert all(40 - 1e-9 <= v <= 60 + 1e-9 for v in vals)


def test_sinusoid_noise_and_random_phase_are_seeded() -> None:
    spec = {"generator": "sinusoid", "period": 30, "amplitude": 5, "offset": 0, "noise": 0.5}
    assert values(spec, 50) == values(spec, 50)
    assert values(spec, 50) != values(spec, 50, seed=99)


def test_decay_towards_floor() -> None:
    spec = {"generator": "decay", "start": 100, "rate": 0.1, "floor": 20}
    vals = values(spec, 200, decimals=6)
    assert vals[0] == 100
    assert vals[10] == pytest.approx(20 + 80 * math.exp(-1.0), abs=1e-6)
    assert all(b <= a for a, b in zip(vals, vals[1:], strict=False))
    assert all(v >= 20 for v in vals)
    assert vals[-1] == pytest.approx(20, abs=1e-6)


def test_counter_keeps_ints_and_rounds_floats() -> None:
    assert values({"generator": "counter", "start": 5, "increment": 3}, 4) == [5, 8, 11, 14]
    assert all(isinstance(v, int) for v in values({"generator": "counter", "start": 5}, 4))
    floats = values({"generator": "counter", "start": 0.0, "increment": 0.1}, 4)
    assert floats == [0.0, 0.1, 0.2, 0.3]  # rounded, so no 0.30000000000000004


def test_boolean_flip_probability_extremes() -> None:
    never = values({"generator": "boolean", "flip_probability": 0.0, "start": True}, 20)
    assert never == [True] * 20
    always = values({"generator": "boolean", "flip_probability": 1.0}, 6)
    assert always == [False, True, False, True, False, True]
    some = values({"generator": "boolean", "flip_probability": 0.3}, 500)
    assert all(isinstance(v, bool) for v in some)
    assert 0 < sum(some) < 500


def test_choice_picks_only_listed_values_and_honours_zero_weight() -> None:
    spec = {"generator": "choice", "values": ["a", "b", "c"], "weights": [1, 0, 3]}
    vals = values(spec, 500)
    assert set(vals) == {"a", "c"}
    assert vals.count("c") > vals.count("a")


def test_location_stays_within_radius() -> None:
    spec = {"generator": "location", "lat": 60.0, "lon": 24.0, "radius_m": 100, "step_m": 30}
    rows = samples_for(spec, 1000)
    assert [(s.metric, s.unit) for s in rows[0]] == [("m_lat", "lat"), ("m_lon", "lon")]
    assert rows[0][0].value == 60.0 and rows[0][1].value == 24.0
    for lat_s, lon_s in rows:
        lat, lon = float(lat_s.value), float(lon_s.value)
        north = (lat - 60.0) * 111_320
        east = (lon - 24.0) * 111_320 * math.cos(math.radians(60.0))
        assert math.hypot(north, east) <= 100 + 0.2  # +rounding at 6 decimals
    assert len({r[0].value for r in rows}) > 50


def test_rounding() -> None:
    assert round_value(1.23456, 2) == 1.23
    assert round_value(2.5, 0) == 2 and isinstance(round_value(2.5, 0), int)
    spec = {"generator": "random_walk", "start": 1, "min": 0, "max": 2, "step": 0.123456}
    assert all(round(v, 1) == v for v in values(spec, 50, decimals=1))
    per_metric = {**spec, "decimals": 4}
    assert any(round(v, 2) != v for v in values(per_metric, 50))


# ----------------------------------------------------------------- profiles


@pytest.mark.parametrize("name", ["default", "factory"])
def test_shipped_yaml_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.device_types
    for dtype in profile.device_types:
        source = SampleSource(dtype, random.Random(1), 1.0)
        assert len(source.next_samples()) == len(dtype.outputs())


def test_shipped_json_profile_and_paths() -> None:
    profile = load_profile(BUILTIN_DIR / "cold_chain.json")
    assert profile.name == "cold_chain"
    assert load_profile(None).name == "default"
    assert load_profile(str(BUILTIN_DIR / "factory.yaml")).name == "factory"


def test_factory_counts_define_fleet_size() -> None:
    profile = load_profile("factory")
    assert profile.uses_counts()
    assert profile.default_devices() == 12
    types = assign_types(profile, 12)
    assert [t.name for t in types].count("cnc_machine") == 6
    assert len(assign_types(profile, 24)) == 24
    assert [t.name for t in assign_types(profile, 24)].count("cnc_machine") == 12


def test_allocate_counts() -> None:
    assert allocate_counts([5, 3, 2], 10) == [5, 3, 2]
    assert allocate_counts([5, 3, 2], 1) == [1, 0, 0]
    assert allocate_counts([1, 1, 1], 10) == [4, 3, 3]
    assert allocate_counts([1, 1], 0) == [0, 0]
    assert sum(allocate_counts([0.3, 0.7, 2.1], 97)) == 97
    with pytest.raises(ValueError):
        allocate_counts([0, 0], 3)


def test_profile_level_decimals_default() -> None:
    profile = parse_profile(one_type({"x": {"generator": "constant", "value": 1.0}}))
    assert profile.decimals == 2
    assert isinstance(profile, Profile)
    assert isinstance(profile.device_types[0], DeviceType)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({}, "missing required key 'device_types'"),
        ({"device_types": {}}, "device_types: must be a non-empty mapping"),
        (one_type({"x": {"generator": "nope"}}), "unknown generator 'nope'"),
        (
            one_type(
                {"x": {"generator": "random_walk", "start": 5, "min": 10, "max": 1, "step": 1}}
            ),
            "need min <= start <= max",
        ),
        (
            one_type({"x": {"generator": "random_walk", "start": 1, "min": 0, "max": 2}}),
            "missing required key 'step'",
        ),
        (one_type({"x": {"generator": "counter", "stpe": 1}}), "unknown key 'stpe'"),
        (one_type({"bad name": {"generator": "counter"}}), "invalid metric name 'bad name'"),
        (one_type({"x" * 129: {"generator": "counter"}}), "longer than 128"),
        (
            one_type({"x": {"generator": "sinusoid", "period": 0, "amplitude": 1}}),
            "period: must be > 0",
        ),
        (
            one_type({"x": {"generator": "boolean", "flip_probability": 1.5}}),
            "flip_probability: must be between 0 and 1",
        ),
        (one_type({"x": {"generator": "choice", "values": []}}), "non-empty list of strings"),
        (
            one_type({"x": {"generator": "choice", "values": ["a"], "weights": [1, 2]}}),
            "as long as values",
        ),
        (
            one_type({"x": {"generator": "constant", "value": "y" * 1025}}),
            "longer than 1024 bytes",
        ),
        (
            one_type({"x": {"generator": "location", "lat": 95, "lon": 0, "radius_m": 10}}),
            "lat: must be between -90 and 90",
        ),
        (
            one_type(
                {
                    "p": {"generator": "location", "lat": 0, "lon": 0, "radius_m": 10},
                    "p_lat": {"generator": "counter"},
                }
            ),
            "metric 'p_lat' is produced twice",
        ),
        (
            one_type({"x": {"generator": "counter"}}, weight=1, count=2),
            "either 'weight' or 'count'",
        ),
        (one_type({"x": {"generator": "counter"}}, count=-1), "count: must be an integer"),
        (
            one_type(
                {"x": {"generator": "random_walk", "start": "a", "min": 0, "max": 1, "step": 1}}
            ),
            "x.start: must be a number",
        ),
        (one_type({"x": {"generator": "counter", "decimals": 99}}), "decimals"),
        (one_type({}), "metrics: must be a non-empty mapping"),
    ],
)
def test_invalid_profiles_give_clear_errors(doc: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(doc, "p.yaml")
    message = str(info.value)
    assert message.startswith("p.yaml: ")
    assert fragment in message


def test_error_names_the_offending_path() -> None:
    with pytest.raises(ProfileError, match=r"device_types\.t\.metrics\.temp\.generator"):
        parse_profile(one_type({"temp": {"generator": "gauss"}}), "p.yaml")


def test_too_many_metrics_rejected() -> None:
    metrics = {f"m{i}": {"generator": "counter"} for i in range(101)}
    with pytest.raises(ProfileError, match="at most 100 metrics"):
        parse_profile(one_type(metrics))


def test_load_profile_file_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("device_types: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid YAML/JSON"):
        load_profile(broken)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid YAML/JSON"):
        load_profile(bad_json)
    with pytest.raises(ProfileError, match="not a built-in profile"):
        load_profile(tmp_path / "missing.yaml")
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        "device_types:\n  s:\n    count: 2\n    metrics:\n      c: {generator: counter}\n",
        encoding="utf-8",
    )
    assert load_profile(ok).default_devices() == 2
