from __future__ import annotations

import json
import math

import pytest

from chalicelib.domain.parsing import MAX_DETAILS, ParsedPayload, parse_payload, parse_time
from chalicelib.domain.readings import Limits, Reading
from chalicelib.errors import (
    IotCloudError,
    MalformedPayloadError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from tests.corpus import BAD_INPUTS, BadInput

NOW = 1_764_061_200_000  # 2025-11-25T09:00:00Z
LIMITS = Limits()
JSON = "application/json"
SENML_JSON = "application/senml+json"
SENML_XML = "application/senml+xml"


def parse(body: bytes | str, content_type: str | None = JSON, received_at_ms: int = NOW) -> ParsedPayload:
    raw = body.encode() if isinstance(body, str) else body
    return parse_payload(raw, content_type, received_at_ms, LIMITS)


def problems_of(body: bytes | str, content_type: str | None = JSON) -> list[tuple[str, int | None, str | None]]:
    with pytest.raises(ValidationError) as caught:
        parse(body, content_type)
    return [(p.code, p.index, p.metric) for p in caught.value.details]


# --------------------------------------------------------------------------- accepted shapes


def test_plain_object_is_one_record_at_receive_time() -> None:
    parsed = parse('{"temp": 21.5, "door": "open", "count": 3, "alarm": false}')
    assert parsed == ParsedPayload(
        readings=[
            Reading("temp", "", NOW, 21.5),
            Reading("door", "", NOW, "open"),
            Reading("count", "", NOW, 3),
            Reading("alarm", "", NOW, False),
        ],
        records=1,
        ignored=0,
    )


def test_value_types_are_kept() -> None:
    values = {
        r.metric: r.value for r in parse('{"i": 3, "f": 3.0, "b": true, "s": "3", "big": 9223372036854775808}').readings
    }
    assert values == {"i": 3, "f": 3.0, "b": True, "s": "3", "big": 2**63}
    assert [type(v) for v in values.values()] == [int, float, bool, str, int]


def test_plain_object_ts_key_is_the_time_not_a_metric() -> None:
    parsed = parse('{"ts": 1764061100000, "temp": 21.5}')
    assert parsed.readings == [Reading("temp", "", 1_764_061_100_000, 21.5)]


def test_ts_values_record() -> None:
    parsed = parse('{"ts": 1764061100000, "values": {"temp": 21.5, "hum": 40}}')
    assert parsed.readings == [Reading("temp", "", 1_764_061_100_000, 21.5), Reading("hum", "", 1_764_061_100_000, 40)]
    assert parsed.records == 1


def test_ts_values_record_without_ts_uses_receive_time() -> None:
    assert parse('{"values": {"temp": 21.5}}').readings == [Reading("temp", "", NOW, 21.5)]


def test_values_record_may_hold_a_metric_named_ts() -> None:
    parsed = parse('{"ts": 1764061100000, "values": {"ts": 1}}')
    assert parsed.readings == [Reading("ts", "", 1_764_061_100_000, 1)]
    # and a plain object afterwards still treats ts as its time (the name cache must not leak)
    assert parse('{"ts": 1764061100000, "x": 1}').readings == [Reading("x", "", 1_764_061_100_000, 1)]


def test_batch_mixes_both_shapes_in_payload_order_without_dedup() -> None:
    body = [
        {"ts": 1764061000000, "values": {"temp": 21.0}},
        {"ts": 1764061000000, "values": {"temp": 21.0}},
        {"temp": 22.0},
        {"ts": "2025-11-25T08:59:00Z", "temp": 23.0},
    ]
    parsed = parse(json.dumps(body))
    assert parsed.records == 4
    assert parsed.ignored == 0
    assert parsed.readings == [
        Reading("temp", "", 1_764_061_000_000, 21.0),
        Reading("temp", "", 1_764_061_000_000, 21.0),
        Reading("temp", "", NOW, 22.0),
        Reading("temp", "", NOW - 60_000, 23.0),
    ]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1764061100, 1_764_061_100_000),  # epoch seconds
        (1764061100.25, 1_764_061_100_250),  # fractional seconds
        (1764061100123, 1_764_061_100_123),  # milliseconds
        (1764061100123.6, 1_764_061_100_124),  # fractional milliseconds round
        ('"2025-11-25T08:58:20Z"', 1_764_061_100_000),
        ('"2025-11-25T09:58:20+01:00"', 1_764_061_100_000),
        ('"2025-11-25T08:58:20.123Z"', 1_764_061_100_123),
    ],
)
def test_record_time_forms(ts: object, expected: int) -> None:
    assert parse(f'{{"ts": {ts}, "values": {{"temp": 1}}}}').readings[0].ts_ms == expected


def test_time_just_inside_the_limits_is_accepted() -> None:
    future = NOW + LIMITS.max_future_ms
    body = json.dumps([{"ts": future, "values": {"a": 1}}, {"ts": LIMITS.min_ts_ms, "values": {"a": 2}}])
    assert [r.ts_ms for r in parse(body).readings] == [future, LIMITS.min_ts_ms]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF8",
        'application/json; charset="utf-8"',
        "application/json; boundary=x",
    ],
)
def test_json_content_types(content_type: str | None) -> None:
    assert parse('{"temp": 1}', content_type).readings == [Reading("temp", "", NOW, 1)]


def test_utf8_bom_and_unicode_strings_are_fine() -> None:
    parsed = parse('\ufeff{"label": "Salle des machines \u00e9\u2603"}'.encode())
    assert parsed.readings == [Reading("label", "", NOW, "Salle des machines \u00e9\u2603")]


def test_string_limit_counts_utf8_bytes() -> None:
    assert parse(json.dumps({"s": "x" * 1024})).readings[0].value == "x" * 1024
    assert parse(json.dumps({"s": "\u00e9" * 512})).readings[0].value == "\u00e9" * 512
    assert problems_of(json.dumps({"s": "\u00e9" * 512 + "x"})) == [("value_too_long", 0, "s")]


def test_metric_name_rules() -> None:
    ok = ["a", "0", "urn:dev:ow:10e2073a01080063:temp", "a-b.c/d_e:f", "m" * 128]
    assert [r.metric for r in parse(json.dumps({name: 1 for name in ok})).readings] == ok


def test_limits_at_the_edge_are_accepted() -> None:
    assert len(parse(json.dumps({f"m{i}": i for i in range(100)})).readings) == 100
    assert parse(json.dumps([{"temp": i} for i in range(1000)])).records == 1000


def test_plain_batch_with_senml_like_metric_names_but_no_name_field_is_not_senml() -> None:
    parsed = parse('[{"t": 21.5}, {"v": 3.3, "u": 1}]')
    assert parsed.readings == [Reading("t", "", NOW, 21.5), Reading("v", "", NOW, 3.3), Reading("u", "", NOW, 1)]


def test_senml_sent_as_application_json() -> None:
    body = '[{"bn": "dev1:", "bt": 1764061100, "n": "temp", "u": "Cel", "v": 21.5}, {"n": "hum", "u": "%RH", "v": 40}]'
    expected = [Reading("dev1:temp", "Cel", 1_764_061_100_000, 21.5), Reading("dev1:hum", "%RH", 1_764_061_100_000, 40)]
    assert parse(body, JSON).readings == expected
    assert parse(body, None).readings == expected
    assert parse(body, SENML_JSON).readings == expected


def test_json_batch_with_ts_keys_is_not_senml() -> None:
    parsed = parse('[{"ts": 1764061100000, "t": 21.5}, {"ts": 1764061100000, "v": 3.3}]')
    assert parsed.readings == [Reading("t", "", 1_764_061_100_000, 21.5), Reading("v", "", 1_764_061_100_000, 3.3)]


def test_senml_relative_times_use_receive_time() -> None:
    parsed = parse('[{"n": "a", "v": 1}, {"n": "a", "t": -10, "v": 2}, {"n": "a", "t": -0.5, "v": 3}]', SENML_JSON)
    assert [r.ts_ms for r in parsed.readings] == [NOW, NOW - 10_000, NOW - 500]


def test_senml_base_value_and_sum_only_and_data_value() -> None:
    body = [
        {"bn": "d:", "bv": 100, "n": "level", "v": 5},
        {"n": "level", "t": -1, "v": 0.5},
        {"n": "energy", "s": 42},
        {"n": "blob", "vd": "aGkgCg"},
        {"n": "both", "v": 1, "s": 2},
    ]
    parsed = parse(json.dumps(body), SENML_JSON)
    assert parsed.readings == [
        Reading("d:level", "", NOW, 105),
        Reading("d:level", "", NOW - 1000, 100.5),
        Reading("d:both", "", NOW, 101),
    ]
    assert parsed.records == 5
    assert parsed.ignored == 2


def test_senml_pack_of_only_ignored_records_is_accepted_with_no_readings() -> None:
    parsed = parse('[{"n": "blob", "vd": "aGkgCg"}]', SENML_JSON)
    assert parsed == ParsedPayload(readings=[], records=1, ignored=1)


def test_senml_unknown_fields_are_ignored_and_bver_accepted() -> None:
    parsed = parse('[{"bver": 10, "n": "a", "v": 1, "l": "x", "ut": 60, "foo": [1]}]', SENML_JSON)
    assert parsed.readings == [Reading("a", "", NOW, 1)]


def test_senml_xml_types() -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sensml xmlns="urn:ietf:params:xml:ns:senml">'
        '<senml bn="d:" bt="1764061100" n="i" v="20"/>'
        '<senml n="f" v="-2.5e1" t="1"/>'
        '<senml n="b" vb="true"/><senml n="b2" vb="0"/>'
        '<senml n="s" vs="Salle \u00e9"/>'
        "</sensml>"
    )
    readings = parse(body, SENML_XML).readings
    t = 1_764_061_100_000
    assert readings == [
        Reading("d:i", "", t, 20),
        Reading("d:f", "", t + 1000, -25.0),
        Reading("d:b", "", t, True),
        Reading("d:b2", "", t, False),
        Reading("d:s", "", t, "Salle \u00e9"),
    ]
    assert [type(r.value) for r in readings] == [int, float, bool, bool, str]


def test_senml_xml_content_type_is_case_insensitive_with_charset() -> None:
    body = '<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="a" v="1"/></sensml>'
    assert parse(body, "Application/SenML+XML; charset=utf-8").readings == [Reading("a", "", NOW, 1)]


# --------------------------------------------------------------------------- rejected bodies


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input_is_rejected(case: BadInput) -> None:
    with pytest.raises(IotCloudError) as caught:
        parse_payload(case.body, case.content_type, NOW, LIMITS)
    error = caught.value
    codes = [p.code for p in error.details]
    assert (error.status, error.code) == (case.status, case.code), (error.message, codes)
    if case.detail_code is not None:
        assert case.detail_code in codes, (error.message, codes)
    assert error.message
    assert all(p.message for p in error.details)


def test_bad_inputs_are_rejected_at_the_real_now_too() -> None:
    import time

    now = int(time.time() * 1000)
    for case in BAD_INPUTS:
        with pytest.raises(IotCloudError) as caught:
            parse_payload(case.body, case.content_type, now, LIMITS)
        assert (caught.value.status, caught.value.code) == (case.status, case.code), case.id
        if case.detail_code is not None:
            assert case.detail_code in [p.code for p in caught.value.details], case.id


def test_corpus_is_broad_and_ids_are_unique() -> None:
    ids = [case.id for case in BAD_INPUTS]
    assert len(ids) == len(set(ids)) >= 45


def test_error_classes_for_each_stage() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_payload(b"x" * 11, JSON, NOW, Limits(max_body_bytes=10))
    with pytest.raises(UnsupportedMediaTypeError):
        parse('{"a": 1}', "text/plain")
    with pytest.raises(MalformedPayloadError):
        parse("{")
    with pytest.raises(ValidationError):
        parse('{"a": null}')


def test_size_is_checked_before_content_type_and_syntax() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_payload(b"\xff" * 11, "text/plain", NOW, Limits(max_body_bytes=10))


def test_every_problem_is_listed_with_index_and_metric() -> None:
    body = [
        {"ts": 1764061100000, "values": {"ok": 1, "bad name": 2, "nul": None}},
        {"ts": "2025-11-25T09:00:00", "values": {"x": 1}},
        {"temp": float("nan"), "-x": 1, "long": "y" * 2000},
        {"ts": 4102444800000, "values": {"a": 1}, "extra": True},
        7,
    ]
    assert problems_of(json.dumps(body)) == [
        ("invalid_metric_name", 0, "bad name"),
        ("invalid_value", 0, "nul"),
        ("invalid_timestamp", 1, None),
        ("non_finite_number", 2, "temp"),
        ("invalid_metric_name", 2, "-x"),
        ("value_too_long", 2, "long"),
        ("unknown_field", 3, None),
        ("timestamp_in_future", 3, None),
        ("invalid_record", 4, None),
    ]


def test_error_message_counts_problems() -> None:
    with pytest.raises(ValidationError) as caught:
        parse('{"a": null, "b": null}')
    assert caught.value.message == "2 problems in payload"
    with pytest.raises(ValidationError) as caught:
        parse('{"a": null}')
    assert caught.value.message == "1 problem in payload"


def test_details_are_capped_and_the_message_says_so() -> None:
    body = json.dumps([{"a": None} for _ in range(250)])
    with pytest.raises(ValidationError) as caught:
        parse(body)
    assert len(caught.value.details) == MAX_DETAILS
    assert caught.value.message == f"250 problems in payload (first {MAX_DETAILS} listed)"


def test_too_many_records_is_one_problem() -> None:
    assert problems_of(json.dumps([{"a": None} for _ in range(5000)])) == [("too_many_records", None, None)]


def test_non_finite_numbers_report_their_position() -> None:
    assert problems_of('[{"a": 1}, {"values": {"b": NaN, "c": Infinity, "d": -Infinity, "e": 1e400}}]') == [
        ("non_finite_number", 1, "b"),
        ("non_finite_number", 1, "c"),
        ("non_finite_number", 1, "d"),
        ("non_finite_number", 1, "e"),
    ]


def test_integer_range() -> None:
    assert parse(json.dumps({"a": -(2**63), "b": 2**63})).readings[1].value == 2**63
    assert problems_of(json.dumps({"a": 2**63 + 1, "b": -(2**63) - 1})) == [
        ("number_out_of_range", 0, "a"),
        ("number_out_of_range", 0, "b"),
    ]


def test_invalid_metric_name_is_rejected_every_time() -> None:
    for _ in range(3):
        assert problems_of('{"bad name": 1}') == [("invalid_metric_name", 0, "bad name")]


def test_senml_problems_carry_record_index_and_resolved_name() -> None:
    body = [
        {"bn": "dev:", "n": "ok", "v": 1},
        {"n": "temp", "v": "21"},
        {"n": "temp", "u": "deg C", "v": 1},
        {"n": "door", "vb": "yes"},
        {"n": "label"},
        {"n": "x", "v": 1, "must_": 1},
        {"bver": 0, "n": "y", "v": 1},
        {"n": " spaced", "v": 1},
        {"n": "old", "t": 946684799, "v": 1},
    ]
    assert problems_of(json.dumps(body), SENML_JSON) == [
        ("invalid_value", 1, "dev:temp"),
        ("invalid_unit", 2, "dev:temp"),
        ("invalid_value", 3, "dev:door"),
        ("missing_value", 4, "dev:label"),
        ("unsupported_field", 5, None),
        ("unsupported_version", 6, None),
        ("invalid_metric_name", 7, "dev: spaced"),
        ("timestamp_too_old", 8, "dev:old"),
    ]


def test_senml_non_finite_and_overflowing_times() -> None:
    assert problems_of('[{"n": "a", "t": NaN, "v": 1}]', SENML_JSON) == [("non_finite_number", 0, "a")]
    assert problems_of('[{"bt": 1e308, "n": "a", "t": 1e308, "v": 1}]', SENML_JSON) == [("invalid_timestamp", 0, "a")]
    huge = "9" * 400
    assert problems_of(f'[{{"bt": 1.5, "n": "a", "t": {huge}, "v": 1}}]', SENML_JSON) == [("invalid_timestamp", 0, "a")]


def test_senml_base_value_overflow() -> None:
    assert problems_of('[{"bv": 1e308, "n": "a", "v": 1e308}]', SENML_JSON) == [("non_finite_number", 0, "a")]


# --------------------------------------------------------------------------- parse_time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, NOW),
        (0, 0),
        (1764061200, 1_764_061_200_000),
        (1764061200.5, 1_764_061_200_500),
        (1.276020076001e09, 1_276_020_076_001),
        (-1.5, -1500),
        (99_999_999_999, 99_999_999_999_000),  # abs < 1e11: seconds
        (100_000_000_000, 100_000_000_000),  # abs >= 1e11: milliseconds
        (1764061200000, 1_764_061_200_000),
        (1764061200000.4, 1_764_061_200_000),
        ("2025-11-25T09:00:00Z", 1_764_061_200_000),
        ("2025-11-25T10:00:00+01:00", 1_764_061_200_000),
        ("2025-11-25T09:00:00.0005Z", 1_764_061_200_000),  # half a ms rounds to even
        ("2025-11-25T09:00:00.0015Z", 1_764_061_200_002),
        ("1969-12-31T23:59:59Z", -1000),
    ],
)
def test_parse_time(value: object, expected: int) -> None:
    assert parse_time(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        "2025-11-25T09:00:00",
        "2025-11-25",
        "yesterday",
        "",
        "1764061200000",
        [],
        {},
        math.nan,
        math.inf,
        "2025-11-25T09:00:00Z" + " " * 100,
    ],
)
def test_parse_time_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_time(value, NOW)


def test_parse_time_numeric_strings_on_request() -> None:
    assert parse_time("1764061200000", NOW, allow_numeric_string=True) == 1_764_061_200_000
    assert parse_time(" 1764061200.5 ", NOW, allow_numeric_string=True) == 1_764_061_200_500
    assert parse_time("2025-11-25T09:00:00Z", NOW, allow_numeric_string=True) == 1_764_061_200_000
    with pytest.raises(ValueError):
        parse_time("1e400", NOW, allow_numeric_string=True)


def test_problem_metric_is_always_encodable() -> None:
    with pytest.raises(ValidationError) as caught:
        parse('{"a\\ud800": 1}')
    (problem,) = caught.value.details
    assert problem.code == "invalid_metric_name"
    assert problem.metric is not None
    problem.metric.encode("utf-8")
    json.dumps(problem.as_dict(), ensure_ascii=False).encode("utf-8")


def test_xml_numbers_are_ascii_decimal_only() -> None:
    body = '<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="a" v="\u0663"/><senml n="b" v="1_000"/></sensml>'
    assert problems_of(body, SENML_XML) == [("invalid_value", 0, "a"), ("invalid_value", 1, "b")]
    with pytest.raises(ValueError):
        parse_time("\u0661\u0667\u0666\u0664\u0660\u0666\u0661\u0662\u0660\u0660", NOW, allow_numeric_string=True)


def test_xml_ignores_unknown_attributes_and_rejects_must_understand_ones() -> None:
    ok = '<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="a" v="1" l="x" ut="60"/></sensml>'
    assert parse(ok, SENML_XML).readings == [Reading("a", "", NOW, 1)]
    bad = '<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="a" v="1" foo_="1"/></sensml>'
    assert problems_of(bad, SENML_XML) == [("unsupported_field", 0, None)]
