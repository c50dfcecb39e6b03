"""Every accepted telemetry shape goes in through the API and comes back out unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.functional.helpers import HOUR, T0, body_of, latest_of, now_ms, state_of

VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "senml"
CONTENT_TYPES = {".json": "application/senml+json", ".xml": "application/senml+xml"}
TIMELESS = {"ex1", "ex2", "ex7", "ex9"}  # no t or bt anywhere: resolved at the receive time


def _example_name(path: Path) -> str:
    return path.name.split(".")[0]


VECTOR_INPUTS = sorted(
    (p for p in VECTORS.glob("ex*.gen.*") if not p.name.endswith(".resolved.json")),
    key=lambda p: (int(_example_name(p)[2:]), p.suffix),
)
RESOLVED_INPUTS = [p for p in VECTOR_INPUTS if (VECTORS / f"{_example_name(p)}.gen.resolved.json").exists()]


def post_native(api: Any, device: dict[str, Any], raw: bytes, content_type: str | None) -> Any:
    return api.post(device["token"], raw=raw, content_type=content_type)


def post_thingsboard(api: Any, device: dict[str, Any], raw: bytes, content_type: str | None) -> Any:
    return api.request("POST", f"/api/v1/{device['token']}/telemetry", None, raw=raw, content_type=content_type)


def post_door_native(api: Any, device: dict[str, Any], raw: bytes, content_type: str | None) -> Any:
    return api.door("POST", "/v1/telemetry", device["token"], raw=raw, content_type=content_type)


def post_door_thingsboard(api: Any, device: dict[str, Any], raw: bytes, content_type: str | None) -> Any:
    return api.door("POST", f"/api/v1/{device['token']}/telemetry", None, raw=raw, content_type=content_type)


# Both paths through both doors: the REST API and the Function URL (chalicelib/api/function_url.py).
ROUTES = {
    "native": post_native,
    "thingsboard": post_thingsboard,
    "door-native": post_door_native,
    "door-thingsboard": post_door_thingsboard,
}


def post_ok(
    api: Any,
    device: dict[str, Any],
    route: str,
    body: Any,
    content_type: str | None = "application/json",
    raw: bytes | None = None,
) -> tuple[dict[str, Any], int, int]:
    """Post, check the answer is 200 with the ingest result, and return it with the receive window."""
    payload = raw if raw is not None else json.dumps(body).encode()
    start = now_ms()
    answer = ROUTES[route](api, device, payload, content_type)
    end = now_ms()
    assert answer.status_code == 200, answer.body
    result = body_of(answer)
    assert set(result) == {"accepted", "records", "ignored"}
    return result, start, end


def tagged(value: Any) -> tuple[str, Any]:
    """A value with its JSON type, so False never equals 0 and 1 never equals True."""
    return (type(value).__name__ if isinstance(value, bool | str) else "number", value)


def as_rows(readings: list[dict[str, Any]]) -> list[tuple[str, str, int, tuple[str, Any]]]:
    return sorted((r["metric"], r["unit"], r["ts"], tagged(r["value"])) for r in readings)


@pytest.fixture(params=sorted(ROUTES))
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --------------------------------------------------------------------------- JSON shapes


def test_plain_object_is_stored_at_the_receive_time(api, device, route):
    result, start, end = post_ok(api, device, route, {"temp": 21.5, "door": "open", "on": True, "count": 3})
    assert result == {"accepted": 4, "records": 1, "ignored": 0}
    got = api.readings(device["id"])
    assert len(got) == 4
    times = {r["ts"] for r in got}
    assert len(times) == 1 and start <= times.pop() <= end
    assert {r["metric"]: tagged(r["value"]) for r in got} == {
        "temp": tagged(21.5),
        "door": tagged("open"),
        "on": tagged(True),
        "count": tagged(3),
    }
    assert {r["unit"] for r in got} == {""}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0, T0),
        (T0 + 123, T0 + 123),
        (T0 // 1000, T0),
        (T0 / 1000 + 0.25, T0 + 250),
        ("2025-11-25T09:00:00Z", T0),
        ("2025-11-25T09:00:00.125Z", T0 + 125),
        ("2025-11-25T10:00:00+01:00", T0),
    ],
    ids=["ms", "ms_odd", "seconds", "fractional_seconds", "iso_z", "iso_fraction", "iso_offset"],
)
def test_record_with_ts_and_values(api, device, route, ts, expected):
    result, _, _ = post_ok(api, device, route, {"ts": ts, "values": {"temp": 21.5, "hum": 40}})
    assert result == {"accepted": 2, "records": 1, "ignored": 0}
    assert api.readings(device["id"]) == [
        {"metric": "hum", "unit": "", "ts": expected, "value": 40},
        {"metric": "temp", "unit": "", "ts": expected, "value": 21.5},
    ]


def test_plain_object_with_its_own_ts(api, device, route):
    result, _, _ = post_ok(api, device, route, {"ts": T0, "temp": 20.0})
    assert result == {"accepted": 1, "records": 1, "ignored": 0}
    assert api.readings(device["id"]) == [{"metric": "temp", "unit": "", "ts": T0, "value": 20.0}]


def test_batch_of_records(api, device, route):
    batch = [
        {"ts": T0, "values": {"temp": 20.0, "hum": 40}},
        {"ts": T0 + 60_000, "values": {"temp": 20.5}},
        {"ts": "2025-11-25T11:00:00Z", "values": {"temp": 21.0, "door": "closed"}},
    ]
    result, _, _ = post_ok(api, device, route, batch)
    assert result == {"accepted": 5, "records": 3, "ignored": 0}
    assert as_rows(api.readings(device["id"])) == as_rows(
        [
            {"metric": "temp", "unit": "", "ts": T0, "value": 20.0},
            {"metric": "hum", "unit": "", "ts": T0, "value": 40},
            {"metric": "temp", "unit": "", "ts": T0 + 60_000, "value": 20.5},
            {"metric": "temp", "unit": "", "ts": T0 + 2 * HOUR, "value": 21.0},
            {"metric": "door", "unit": "", "ts": T0 + 2 * HOUR, "value": "closed"},
        ]
    )


def test_batch_repeating_an_identity_keeps_the_last_value(api, device, route):
    result, _, _ = post_ok(api, device, route, [{"ts": T0, "values": {"temp": 1}}, {"ts": T0, "values": {"temp": 2}}])
    assert result == {"accepted": 1, "records": 2, "ignored": 0}
    assert api.readings(device["id"]) == [{"metric": "temp", "unit": "", "ts": T0, "value": 2}]


# --------------------------------------------------------------------------- SenML


SENML_PACK = [
    {"bn": "room1/", "bt": T0 / 1000, "bu": "Cel", "n": "temp", "v": 21.5},
    {"n": "temp", "t": 60, "v": 21.75},
    {"n": "hum", "u": "%RH", "v": 40},
    {"n": "label", "vs": "kitchen"},
    {"n": "open", "vb": True},
]
SENML_EXPECTED = [
    {"metric": "room1/temp", "unit": "Cel", "ts": T0, "value": 21.5},
    {"metric": "room1/temp", "unit": "Cel", "ts": T0 + 60_000, "value": 21.75},
    {"metric": "room1/hum", "unit": "%RH", "ts": T0, "value": 40},
    {"metric": "room1/label", "unit": "Cel", "ts": T0, "value": "kitchen"},
    {"metric": "room1/open", "unit": "Cel", "ts": T0, "value": True},
]
SENML_XML = (
    '<sensml xmlns="urn:ietf:params:xml:ns:senml">'
    f'<senml bn="room1/" bt="{T0 // 1000}" bu="Cel" n="temp" v="21.5"/>'
    '<senml n="temp" t="60" v="21.75"/>'
    '<senml n="hum" u="%RH" v="40"/>'
    '<senml n="label" vs="kitchen"/>'
    '<senml n="open" vb="true"/>'
    "</sensml>"
).encode()


@pytest.mark.parametrize("content_type", ["application/senml+json", "application/json", None])
def test_senml_json_pack(api, device, route, content_type):
    result, _, _ = post_ok(api, device, route, SENML_PACK, content_type=content_type)
    assert result == {"accepted": 5, "records": 5, "ignored": 0}
    assert as_rows(api.readings(device["id"])) == as_rows(SENML_EXPECTED)


def test_senml_xml_pack(api, device, route):
    result, _, _ = post_ok(api, device, route, None, content_type="application/senml+xml", raw=SENML_XML)
    assert result == {"accepted": 5, "records": 5, "ignored": 0}
    assert as_rows(api.readings(device["id"])) == as_rows(SENML_EXPECTED)


def test_senml_content_type_parameters_are_understood(api, device):
    result, _, _ = post_ok(api, device, "native", SENML_PACK, content_type="Application/SenML+JSON; charset=utf-8")
    assert result["accepted"] == 5


def test_senml_data_and_sum_records_are_accepted_but_not_stored(api, device, route):
    pack = [{"bn": "d/", "bt": T0 / 1000, "n": "blob", "vd": "aGkgCg"}, {"n": "energy", "s": 12.5}, {"n": "t", "v": 1}]
    result, _, _ = post_ok(api, device, route, pack, content_type="application/senml+json")
    assert result == {"accepted": 1, "records": 3, "ignored": 2}
    assert api.readings(device["id"]) == [{"metric": "d/t", "unit": "", "ts": T0, "value": 1}]


@pytest.mark.parametrize("example", RESOLVED_INPUTS, ids=lambda p: p.name)
def test_senml_conformance_vector_round_trips(api, device, example):
    resolved = json.loads((VECTORS / f"{_example_name(example)}.gen.resolved.json").read_text())
    raw = example.read_bytes()
    result, start, end = post_ok(api, device, "native", None, content_type=CONTENT_TYPES[example.suffix], raw=raw)
    assert result["accepted"] == len(resolved)
    assert result["records"] == result["accepted"] + result["ignored"] + _base_only_records(example)

    got = api.readings(device["id"])
    expected = [
        {
            "metric": record["n"],
            "unit": record.get("u", ""),
            "ts": round(record["t"] * 1000),
            "value": next(record[key] for key in ("v", "vs", "vb") if key in record),
        }
        for record in resolved
    ]
    if _example_name(example) in TIMELESS:
        # The vector was resolved at its generator's "now"; here, now is our receive time.
        times = {r["ts"] for r in got}
        assert len(times) == 1, times
        received = times.pop()
        assert start <= received <= end
        expected = [{**e, "ts": received} for e in expected]
    assert as_rows(got) == as_rows(expected)


def _base_only_records(example: Path) -> int:
    """Records that only set base fields (they yield nothing and are not 'ignored')."""
    if example.suffix != ".json":
        return 0
    value_keys = {"v", "vs", "vb", "vd", "s"}
    return sum(1 for record in json.loads(example.read_text()) if value_keys.isdisjoint(record))


def test_every_conformance_input_is_exercised():
    names = {p.name for p in VECTOR_INPUTS}
    assert names - {p.name for p in RESOLVED_INPUTS} <= {"ex13.gen.json"}  # ex13: see the test below
    assert {"ex1.gen.xml", "ex2.gen.xml", "ex3.gen.xml", "ex5.gen.xml", "ex8.gen.xml"} <= names


def test_senml_ex13_without_resolved_form(api, device):
    # ex13 ships without a resolved file; its resolution by RFC 8428 section 4.6 is plain.
    raw = (VECTORS / "ex13.gen.json").read_bytes()
    result, _, _ = post_ok(api, device, "native", None, content_type="application/senml+json", raw=raw)
    assert result == {"accepted": 4, "records": 4, "ignored": 0}
    assert as_rows(api.readings(device["id"])) == as_rows(
        [
            {"metric": "2001:db8::3", "unit": "/", "ts": 1_320_078_429_000, "value": 0.5},
            {"metric": "2001:db8::4", "unit": "/", "ts": 1_320_078_429_000, "value": 0.5},
            {"metric": "2001:db8::3", "unit": "/", "ts": 1_320_078_429_100, "value": 0},
            {"metric": "2001:db8::4", "unit": "/", "ts": 1_320_078_429_100, "value": 0},
        ]
    )


@pytest.mark.parametrize("suffix", [".json", ".xml"])
def test_senml_ex5_one_name_three_units_loses_nothing(api, device, suffix):
    raw = (VECTORS / f"ex5.gen{suffix}").read_bytes()
    result, _, _ = post_ok(api, device, "native", None, content_type=CONTENT_TYPES[suffix], raw=raw)
    assert result == {"accepted": 13, "records": 13, "ignored": 0}
    got = api.readings(device["id"])
    assert len(got) == 13
    first = [(r["unit"], r["value"]) for r in got if r["ts"] == 1_320_067_464_000]
    assert sorted(first) == sorted([("%RH", 20), ("lon", 24.30621), ("lat", 60.07965)])
    state = latest_of(api, device["id"])
    assert state == {
        ("urn:dev:ow:10e2073a01080063", "%RH"): (1_320_067_644_000, 21.2),
        ("urn:dev:ow:10e2073a01080063", "lon"): (1_320_067_644_000, 24.30628),
        ("urn:dev:ow:10e2073a01080063", "lat"): (1_320_067_644_000, 60.07967),
        ("urn:dev:ow:10e2073a01080063", "%EL"): (1_320_067_614_000, 98),
    }


# --------------------------------------------------------------------------- device state


def test_state_shows_latest_values_and_last_seen(api, device, route):
    assert state_of(api, device["id"]) == {"device_id": device["id"], "last_seen": None, "latest": []}
    _, start, end = post_ok(
        api, device, route, [{"ts": T0, "values": {"temp": 20}}, {"ts": T0 + 1000, "values": {"temp": 21}}]
    )
    state = state_of(api, device["id"], device["token"])
    assert start <= state["last_seen"] <= end
    assert state["latest"] == [{"metric": "temp", "unit": "", "ts": T0 + 1000, "value": 21}]


def test_state_only_moves_forward(api, device, route):
    post_ok(api, device, route, {"ts": T0 + HOUR, "values": {"temp": 25.0, "door": "open"}})
    _, start, end = post_ok(api, device, route, {"ts": T0, "values": {"temp": 19.0, "door": "closed", "hum": 55}})
    assert latest_of(api, device["id"]) == {
        ("temp", ""): (T0 + HOUR, 25.0),
        ("door", ""): (T0 + HOUR, "open"),
        ("hum", ""): (T0, 55),  # new metric, added even though the request is older
    }
    # last_seen is when the device was last heard from, whatever its readings' times.
    assert start <= state_of(api, device["id"])["last_seen"] <= end
    # Both requests' readings are stored.
    assert len(api.readings(device["id"])) == 5


def test_state_moves_forward_again_after_an_out_of_order_request(api, device):
    post_ok(api, device, "native", {"ts": T0 + 2000, "values": {"temp": 2}})
    post_ok(api, device, "native", {"ts": T0, "values": {"temp": 0, "hum": 1}})
    post_ok(api, device, "native", {"ts": T0 + 1000, "values": {"hum": 3}})
    post_ok(api, device, "native", {"ts": T0 + 3000, "values": {"temp": 4}})
    assert latest_of(api, device["id"]) == {("temp", ""): (T0 + 3000, 4), ("hum", ""): (T0 + 1000, 3)}


def test_state_keeps_units_apart(api, device):
    pack = [{"bn": "p", "bt": T0 / 1000, "u": "Cel", "v": 20}, {"u": "Far", "v": 68}]
    post_ok(api, device, "native", pack, content_type="application/senml+json")
    assert latest_of(api, device["id"]) == {("p", "Cel"): (T0, 20), ("p", "Far"): (T0, 68)}


def test_numbers_beyond_dynamodbs_range_reach_the_state_intact(api, device):
    # Finite floats are valid readings; DynamoDB numbers only span magnitudes 1e-130 to 1e126.
    values = {"huge": 1e200, "tiny": -1e-200, "max": 1.7976931348623157e308, "zero": 0.0, "big_int": 2**63}
    result, _, _ = post_ok(api, device, "native", {"ts": T0, "values": values})
    assert result["accepted"] == 5
    assert {r["metric"]: r["value"] for r in api.readings(device["id"])} == values
    assert latest_of(api, device["id"]) == {(metric, ""): (T0, value) for metric, value in values.items()}
    post_ok(api, device, "native", {"ts": T0 - 1, "values": {"huge": 1.0, "other": 1e-300}})  # the merge path
    assert latest_of(api, device["id"])[("huge", "")] == (T0, 1e200)
    assert latest_of(api, device["id"])[("other", "")] == (T0 - 1, 1e-300)
