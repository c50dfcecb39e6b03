"""RFC 8428's own examples must be accepted and resolve exactly to their resolved forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.parsing import ParsedPayload, parse_payload
from chalicelib.domain.readings import Limits, Reading

VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "senml"
CONTENT_TYPES = {".json": "application/senml+json", ".xml": "application/senml+xml"}
NOW = 1_764_061_200_000  # receive time for examples that carry their own (absolute) times
INPUTS = sorted(
    (p for p in VECTORS.glob("ex*.gen.*") if not p.name.endswith(".resolved.json")),
    key=lambda p: (int(p.name[2:].split(".")[0]), p.suffix),
)
RESOLVED = {p for p in INPUTS if p.with_name(p.name.split(".")[0] + ".gen.resolved.json").exists()}
TIMELESS = {"ex1", "ex2", "ex7", "ex9"}


def resolved_path(example: Path) -> Path:
    return example.with_name(example.name.split(".")[0] + ".gen.resolved.json")


def has_time(example: Path) -> bool:
    if example.suffix == ".xml":
        text = example.read_text()
        return " t=" in text or " bt=" in text or "\nt=" in text or "\nbt=" in text
    return any("t" in record or "bt" in record for record in json.loads(example.read_text()))


def expected_readings(resolved: list[dict[str, Any]]) -> list[tuple[str, str, int, object, bool]]:
    out = []
    for record in resolved:
        value = next(record[key] for key in ("v", "vs", "vb") if key in record)
        out.append((record["n"], record.get("u", ""), round(record["t"] * 1000), value, type(value) is bool))
    return out


def as_tuples(readings: list[Reading]) -> list[tuple[str, str, int, object, bool]]:
    return [(r.metric, r.unit, r.ts_ms, r.value, type(r.value) is bool) for r in readings]


def parse_example(example: Path, received_at_ms: int) -> ParsedPayload:
    return parse_payload(example.read_bytes(), CONTENT_TYPES[example.suffix], received_at_ms, Limits())


def test_every_vector_is_exercised() -> None:
    names = {p.name for p in INPUTS}
    assert len(INPUTS) == 18
    assert {"ex1.gen.xml", "ex2.gen.xml", "ex3.gen.xml", "ex5.gen.xml", "ex8.gen.xml", "ex13.gen.json"} <= names
    assert {p.name.split(".")[0] for p in INPUTS if not has_time(p)} == TIMELESS


@pytest.mark.parametrize("example", sorted(RESOLVED), ids=lambda p: p.name)
def test_example_resolves_exactly(example: Path) -> None:
    resolved = json.loads(resolved_path(example).read_text())
    # Time-less examples resolved to the generator's receive time: receive them then.
    received_at = round(resolved[0]["t"] * 1000) if not has_time(example) else NOW
    parsed = parse_example(example, received_at)
    assert as_tuples(parsed.readings) == expected_readings(resolved)
    source_records = len(json.loads(example.read_text())) if example.suffix == ".json" else parsed.records
    assert parsed.records == source_records


def test_numeric_types_survive_resolution() -> None:
    parsed = parse_example(VECTORS / "ex9.gen.json", round(1.498780179e09 * 1000))
    assert [type(r.value) for r in parsed.readings] == [float, int, int]


def test_ex3_sub_second_base_time_has_no_float_error() -> None:
    for suffix in (".json", ".xml"):
        parsed = parse_example(VECTORS / f"ex3.gen{suffix}", NOW)
        assert [r.ts_ms for r in parsed.readings] == [
            1_276_020_076_001,
            1_276_020_071_001,
            1_276_020_072_001,
            1_276_020_073_001,
            1_276_020_074_001,
            1_276_020_075_001,
            1_276_020_076_001,
        ]
        assert parsed.readings[0].unit == "V"
        assert {r.unit for r in parsed.readings[1:]} == {"A"}


def test_ex5_three_units_at_one_time_are_all_kept() -> None:
    for suffix in (".json", ".xml"):
        parsed = parse_example(VECTORS / f"ex5.gen{suffix}", NOW)
        assert len(parsed.readings) == 13
        first = [r for r in parsed.readings if r.ts_ms == 1_320_067_464_000]
        assert [(r.metric, r.unit, r.value) for r in first] == [
            ("urn:dev:ow:10e2073a01080063", "%RH", 20),
            ("urn:dev:ow:10e2073a01080063", "lon", 24.30621),
            ("urn:dev:ow:10e2073a01080063", "lat", 60.07965),
        ]
        assert len({r.identity for r in parsed.readings}) == 13


def test_ex7_data_value_is_accepted_but_not_stored() -> None:
    parsed = parse_example(VECTORS / "ex7.gen.json", round(1.499109309e09 * 1000))
    assert parsed.records == 4
    assert parsed.ignored == 1
    assert [r.metric for r in parsed.readings] == [
        "urn:dev:ow:10e2073a01080063:temp",
        "urn:dev:ow:10e2073a01080063:label",
        "urn:dev:ow:10e2073a01080063:open",
    ]


def test_ex9_base_name_only_record_yields_nothing() -> None:
    parsed = parse_example(VECTORS / "ex9.gen.json", NOW)
    assert parsed.records == 4
    assert parsed.ignored == 0
    assert len(parsed.readings) == 3


def test_ex13_same_name_at_base_time_and_a_tenth_later() -> None:
    parsed = parse_example(VECTORS / "ex13.gen.json", NOW)
    assert parsed.readings == [
        Reading("2001:db8::3", "/", 1_320_078_429_000, 0.5),
        Reading("2001:db8::4", "/", 1_320_078_429_000, 0.5),
        Reading("2001:db8::3", "/", 1_320_078_429_100, 0),
        Reading("2001:db8::4", "/", 1_320_078_429_100, 0),
    ]
    assert (parsed.records, parsed.ignored) == (4, 0)


@pytest.mark.parametrize("name", ["ex1", "ex2", "ex3", "ex5", "ex8"])
def test_xml_and_json_forms_agree(name: str) -> None:
    received_at = round(json.loads((VECTORS / f"{name}.gen.resolved.json").read_text())[0]["t"] * 1000)
    from_json = parse_example(VECTORS / f"{name}.gen.json", received_at)
    from_xml = parse_example(VECTORS / f"{name}.gen.xml", received_at)
    assert as_tuples(from_xml.readings) == as_tuples(from_json.readings)
    assert [type(r.value) for r in from_xml.readings] == [type(r.value) for r in from_json.readings]
    assert (from_xml.records, from_xml.ignored) == (from_json.records, from_json.ignored)


def test_senml_json_vectors_are_also_accepted_as_application_json() -> None:
    for example in (p for p in INPUTS if p.suffix == ".json"):
        payload = example.read_bytes()
        senml = parse_payload(payload, "application/senml+json", NOW, Limits())
        assert parse_payload(payload, "application/json", NOW, Limits()) == senml
