"""device_sim: scripted anomalies in profiles (pure, plus one run against the in-process fake server)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from device_sim.config import SimConfig
from device_sim.fakeserver import FakeServer
from device_sim.profiles import (
    BUILTIN_DIR,
    AnomalySpec,
    DeviceType,
    ProfileError,
    SampleSource,
    assign_types,
    device_rng,
    load_profile,
    parse_profile,
    type_ordinals,
)
from device_sim.runner import run_simulation


def one_metric(spec: dict[str, Any], count: int = 1) -> DeviceType:
    return parse_profile({"device_types": {"t": {"count": count, "metrics": {"m": spec}}}}).device_types[0]


def series(dtype: DeviceType, n: int, *, interval: float = 1.0, ordinal: int = 0, seed: int = 7) -> list[Any]:
    source = SampleSource(dtype, random.Random(seed), interval, ordinal)
    return [source.next_samples()[0].value for _ in range(n)]


def without_anomaly(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "anomaly"}


def test_the_freezer_profile_warms_the_first_freezer_from_20_to_50_seconds() -> None:
    profile = load_profile("freezer-anomaly")
    assert profile.source == str(BUILTIN_DIR / "freezer-anomaly.yaml")
    (freezer,) = profile.device_types
    temp = freezer.metrics[0]
    assert temp.anomaly == AnomalySpec(at=20.0, duration=30.0, value=-5, devices=1)
    first = [s[0].value for s in _samples(freezer, 0, 70)]
    second = [s[0].value for s in _samples(freezer, 1, 70)]
    assert first[20:50] == [-5] * 30
    assert all(-21 <= v <= -19 for v in first[:20] + first[50:])  # about -20 C before and after
    assert all(-21 <= v <= -19 for v in second)  # the other freezers never warm


def _samples(dtype: DeviceType, index: int, n: int, seed: int = 1) -> list[Any]:
    source = SampleSource(dtype, device_rng(seed, index), 1.0, index)
    return [source.next_samples() for _ in range(n)]


def test_the_anomaly_changes_nothing_else() -> None:
    walk = {"generator": "random_walk", "start": 0, "min": -50, "max": 50, "step": 1}
    with_it = one_metric({**walk, "anomaly": {"at": 3, "duration": 2, "value": 99}})
    plain = one_metric(walk)
    a, b = series(with_it, 10), series(plain, 10)
    assert a[3:5] == [99, 99]
    assert a[:3] + a[5:] == b[:3] + b[5:]
    assert series(with_it, 10) == a  # deterministic


def test_offset_adds_to_the_generated_value_and_keeps_integers() -> None:
    counter = one_metric({"generator": "counter", "anomaly": {"at": 2, "duration": 2, "offset": 100}})
    assert series(counter, 6) == [0, 1, 102, 103, 4, 5]
    sinus = {"generator": "sinusoid", "period": 10, "amplitude": 1, "phase": 0, "decimals": 1}
    shifted = one_metric({**sinus, "anomaly": {"at": 0, "duration": 100, "offset": 0.25}})
    assert series(shifted, 5) == [round(v + 0.25, 1) for v in series(one_metric(sinus), 5)]


def test_the_window_is_in_simulated_seconds() -> None:
    counter = one_metric({"generator": "counter", "anomaly": {"at": 1, "duration": 1, "value": -1}})
    assert series(counter, 6, interval=0.5) == [0, 1, -1, -1, 4, 5]  # t = 1.0 and 1.5
    assert series(counter, 4, interval=2.0) == [0, 1, 2, 3]  # t = 0, 2, 4, 6: none falls in [1, 2)


def test_strings_and_booleans() -> None:
    door = one_metric(
        {"generator": "choice", "values": ["closed"], "anomaly": {"at": 1, "duration": 1, "value": "open"}}
    )
    assert series(door, 3) == ["closed", "open", "closed"]
    flag = one_metric(
        {"generator": "boolean", "flip_probability": 0, "anomaly": {"at": 0, "duration": 2, "value": True}}
    )
    assert series(flag, 3) == [True, True, False]


def test_devices_limits_it_to_the_first_of_the_type() -> None:
    spec = {"generator": "constant", "value": 1, "anomaly": {"at": 0, "duration": 10, "value": 2, "devices": 2}}
    dtype = one_metric(spec)
    assert [series(dtype, 1, ordinal=i)[0] for i in range(4)] == [2, 2, 1, 1]
    everyone = one_metric({**spec, "anomaly": {"at": 0, "duration": 10, "value": 2}})
    assert [series(everyone, 1, ordinal=i)[0] for i in range(4)] == [2, 2, 2, 2]


def test_type_ordinals_count_within_each_type() -> None:
    profile = parse_profile(
        {"device_types": {"a": {"count": 2, "metrics": {"x": {"generator": "counter"}}},
                          "b": {"count": 3, "metrics": {"y": {"generator": "counter"}}}}}
    )  # fmt: skip
    assert type_ordinals(assign_types(profile, 5)) == [0, 1, 0, 1, 2]
    assert type_ordinals([]) == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"generator": "location", "lat": 0, "lon": 0, "radius_m": 5}, "not supported for location"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 1}}, "either 'value' or 'offset'"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 1, "value": 1, "offset": 1}}, "either"),
        ({"generator": "counter", "anomaly": {"at": -1, "duration": 1, "value": 1}}, "anomaly.at"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 0, "value": 1}}, "anomaly.duration"),
        ({"generator": "counter", "anomaly": {"duration": 1, "value": 1}}, "missing required key 'at'"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 1, "value": "hot"}}, "must be a number"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 1, "value": True}}, "must be a number"),
        ({"generator": "choice", "values": ["a"], "anomaly": {"at": 0, "duration": 1, "value": 1}}, "a string"),
        ({"generator": "choice", "values": ["a"], "anomaly": {"at": 0, "duration": 1, "offset": 1}}, "offset"),
        ({"generator": "boolean", "anomaly": {"at": 0, "duration": 1, "value": "yes"}}, "a boolean"),
        ({"generator": "constant", "value": "x", "anomaly": {"at": 0, "duration": 1, "value": 2}}, "a string"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 1, "value": 1, "devices": 0}}, "devices"),
        ({"generator": "counter", "anomaly": {"at": 0, "duration": 1, "value": 1, "when": 2}}, "unknown key"),
        ({"generator": "counter", "anomaly": [0, 1]}, "must be a mapping"),
    ],
)
def test_invalid_anomalies_say_where(spec: dict[str, Any], problem: str) -> None:
    if spec["generator"] == "location":
        spec = {**spec, "anomaly": {"at": 0, "duration": 1, "value": 1}}
    with pytest.raises(ProfileError) as caught:
        parse_profile({"device_types": {"t": {"metrics": {"m": spec}}}}, "p.yaml")
    assert str(caught.value).startswith("p.yaml: device_types.t.metrics.m.anomaly")
    assert problem in str(caught.value)


def test_the_simulator_sends_the_anomaly_of_the_first_device_only() -> None:
    profile = parse_profile(
        {"device_types": {"freezer": {"count": 2, "metrics": {
            "temp": {"generator": "constant", "value": -20.0, "anomaly": {"at": 0, "duration": 1, "value": -5.0,
                                                                          "devices": 1}}}}}}
    )  # fmt: skip
    cfg = SimConfig(
        profile=profile, url="http://sim.test", admin_token="admin-secret", devices=2, count=3, interval=0.0,
        batch=3, progress=False, verify=False, drain_timeout=2.0,
    )  # fmt: skip
    assert cfg.validate() == []
    server = FakeServer()
    report = asyncio.run(run_simulation(cfg, transport=httpx.MockTransport(server.handle)))
    assert report["exit_code"] == 0, report["failures"]
    by_name = {d["name"]: d["id"] for d in server.devices.values()}
    values = [sorted(set(server.readings_of(by_name[name]).values())) for name in sorted(by_name)]
    assert values == [[-5.0], [-20.0]]  # interval 0: every record is at t = 0, inside the window
