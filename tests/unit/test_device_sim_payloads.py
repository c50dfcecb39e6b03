"""device_sim: payload encoders for json, senml-json, senml-xml and thingsboard."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from device_sim.model import Record, Sample, stored_identity
from device_sim.payloads import (
    CONTENT_TYPES,
    FAULT_METRIC,
    MALFORMED_KINDS,
    encode,
    malformed,
    ms_to_seconds,
    reading_count,
)

NS = "{urn:ietf:params:xml:ns:senml}"
TS1 = 1_764_061_200_123
TS2 = 1_764_061_201_000

RECORDS = [
    Record(
        TS1,
        (
            Sample("temp", "Cel", 21.5),
            Sample("door", "", "open"),
            Sample("heating", "", True),
            Sample("count", "", 7),
        ),
    ),
    Record(TS2, (Sample("temp", "Cel", -3.25), Sample("door", "", 'a "quoted" <&> text'))),
]


def test_json_is_a_list_of_ts_and_values() -> None:
    body = encode("json", RECORDS)
    assert body.content_type == "application/json"
    data = json.loads(body.content)
    assert data == [
        {"ts": TS1, "values": {"temp": 21.5, "door": "open", "heating": True, "count": 7}},
        {"ts": TS2, "values": {"temp": -3.25, "door": 'a "quoted" <&> text'}},
    ]
    assert isinstance(data[0]["ts"], int)


def test_thingsboard_body_equals_json_body() -> None:
    tb = encode("thingsboard", RECORDS)
    assert tb.content_type == "application/json"
    assert tb.content == encode("json", RECORDS).content


def test_senml_json_pack() -> None:
    body = encode("senml-json", RECORDS)
    assert body.content_type == "application/senml+json"
    pack = json.loads(body.content)
    assert isinstance(pack, list) and len(pack) == reading_count(RECORDS) == 6
    first = pack[0]
    assert first == {"n": "temp", "u": "Cel", "t": 1764061200.123, "v": 21.5}
    assert pack[1] == {"n": "door", "t": 1764061200.123, "vs": "open"}  # no empty "u"
    assert pack[2] == {"n": "heating", "t": 1764061200.123, "vb": True}
    assert pack[3] == {"n": "count", "t": 1764061200.123, "v": 7}
    assert pack[4]["t"] == 1764061201.0
    for entry in pack:
        assert "bn" not in entry and "bt" not in entry
        assert isinstance(entry["t"], float)
    # the text carries exactly the millisecond value
    assert b'"t":1764061200.123' in body.content


@pytest.mark.parametrize("ts", [TS1, TS2, 946_684_800_001, 1_999_999_999_999, 1_700_000_000_007])
def test_senml_time_round_trips_to_the_millisecond(ts: int) -> None:
    assert round(ms_to_seconds(ts) * 1000) == ts
    text = json.dumps(ms_to_seconds(ts))
    whole, _, frac = text.partition(".")
    assert len(frac) <= 3


def test_senml_xml_is_namespaced_and_parseable() -> None:
    body = encode("senml-xml", RECORDS)
    assert body.content_type == "application/senml+xml"
    root = ET.fromstring(body.content)
    assert root.tag == f"{NS}sensml"
    children = list(root)
    assert [c.tag for c in children] == [f"{NS}senml"] * 6
    a = children[0].attrib
    assert a == {"n": "temp", "u": "Cel", "t": "1764061200.123", "v": "21.5"}
    assert children[1].attrib == {"n": "door", "t": "1764061200.123", "vs": "open"}
    assert children[2].attrib["vb"] == "true"
    assert children[3].attrib["v"] == "7"
    assert children[5].attrib["vs"] == 'a "quoted" <&> text'  # escaped, then unescaped
    assert b"&lt;&amp;&gt;" in body.content or b"&lt;&amp;>" in body.content


def test_senml_xml_false_and_control_characters() -> None:
    body = encode("senml-xml", [Record(TS1, (Sample("f", "", False), Sample("s", "", "a\nb\t")))])
    children = list(ET.fromstring(body.content))
    assert children[0].attrib["vb"] == "false"
    assert children[1].attrib["vs"] == "a\nb\t"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        encode("csv", RECORDS)


def test_content_types_cover_all_formats() -> None:
    assert set(CONTENT_TYPES) == {"json", "senml-json", "senml-xml", "thingsboard"}


def test_encoders_refuse_non_finite_values() -> None:
    bad = [Record(TS1, (Sample("x", "", math.nan),))]
    with pytest.raises(ValueError):
        encode("json", bad)
    with pytest.raises(ValueError):
        encode("senml-json", bad)


@pytest.mark.parametrize("fmt", ["json", "thingsboard", "senml-json"])
def test_malformed_json_variants(fmt: str) -> None:
    truncated = malformed(fmt, RECORDS, "truncated")
    with pytest.raises(ValueError):
        json.loads(truncated.content)
    non_finite = malformed(fmt, RECORDS, "non_finite")
    assert b"NaN" in non_finite.content
    assert b"temp" not in non_finite.content  # no real readings in it
    assert FAULT_METRIC.encode() in non_finite.content
    bad_metric = malformed(fmt, RECORDS, "bad_metric")
    assert b"bad metric!" in bad_metric.content
    json.loads(bad_metric.content)  # well-formed, invalid content (422)
    assert truncated.content_type == CONTENT_TYPES[fmt]


def test_malformed_xml_variants() -> None:
    with pytest.raises(ET.ParseError):
        ET.fromstring(malformed("senml-xml", RECORDS, "truncated").content)
    nan = ET.fromstring(malformed("senml-xml", RECORDS, "non_finite").content)
    assert list(nan)[0].attrib["v"] == "NaN"
    bad = ET.fromstring(malformed("senml-xml", RECORDS, "bad_metric").content)
    assert list(bad)[0].attrib["n"] == "bad metric!"
    with pytest.raises(ValueError):
        malformed("senml-xml", RECORDS, "nope")
    assert set(MALFORMED_KINDS) == {"truncated", "non_finite", "bad_metric"}


def test_stored_identity_drops_units_for_json_shapes() -> None:
    s = Sample("temp", "Cel", 1.0)
    assert stored_identity(s, 5, "json") == ("temp", "", 5)
    assert stored_identity(s, 5, "thingsboard") == ("temp", "", 5)
    assert stored_identity(s, 5, "senml-json") == ("temp", "Cel", 5)
    assert stored_identity(s, 5, "senml-xml") == ("temp", "Cel", 5)
