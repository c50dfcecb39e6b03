"""Bad telemetry bodies: each must be rejected as a whole, and nothing stored.

Shared by the unit tests (parse_payload) and the functional tests (POST /v1/telemetry).
Every case is self-contained and invalid whatever the receive time: bodies without a
time use the receive time, and cases about time use absolute values that are wrong at
any real "now" (year 2100 is in the future, 1999 is before the 2000-01-01 limit).
"""

from __future__ import annotations

import json
from typing import NamedTuple


class BadInput(NamedTuple):
    id: str
    body: bytes
    content_type: str | None
    status: int
    code: str  # the error's code (IotCloudError.code)
    detail_code: str | None  # a code some detail must carry (None: not checked)


JSON = "application/json"
SENML_JSON = "application/senml+json"
SENML_XML = "application/senml+xml"

MALFORMED = (400, "malformed_payload")
INVALID = (422, "validation_failed")
TOO_LARGE = (413, "payload_too_large")
UNSUPPORTED = (415, "unsupported_media_type")

FUTURE_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
BEFORE_2000_MS = 915_148_800_000  # 1999-01-01T00:00:00Z


def _xml(records: str) -> bytes:
    return f'<sensml xmlns="urn:ietf:params:xml:ns:senml">{records}</sensml>'.encode()


_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="&lol9;" v="1"/></sensml>
"""

_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE sensml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="temp" vs="&xxe;"/></sensml>
"""

_XML_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE sensml SYSTEM "http://example.com/senml.dtd">
<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="temp" v="1"/></sensml>
"""


def _case(
    id: str,
    body: bytes,
    content_type: str | None,
    expected: tuple[int, str],
    detail_code: str | None,
) -> BadInput:
    return BadInput(id, body, content_type, expected[0], expected[1], detail_code)


BAD_INPUTS: list[BadInput] = [
    # --- syntax: not JSON at all
    _case("json_truncated", b'{"temp": 21.5', JSON, MALFORMED, "invalid_json"),
    _case("json_trailing_comma", b'{"temp": 21.5,}', JSON, MALFORMED, "invalid_json"),
    _case("json_single_quotes", b"{'temp': 21.5}", JSON, MALFORMED, "invalid_json"),
    _case("json_unquoted_key", b"{temp: 21.5}", JSON, MALFORMED, "invalid_json"),
    _case("json_trailing_garbage", b'{"temp": 21.5} x', JSON, MALFORMED, "invalid_json"),
    _case("json_comment", b'{"temp": 21.5} // celsius', JSON, MALFORMED, "invalid_json"),
    _case("json_bare_word", b"temperature", None, MALFORMED, "invalid_json"),
    _case("json_xml_body", _xml('<senml n="temp" v="1"/>'), JSON, MALFORMED, "invalid_json"),
    _case("empty_body", b"", JSON, MALFORMED, "empty_body"),
    _case("whitespace_body", b" \r\n\t ", None, MALFORMED, "empty_body"),
    _case("invalid_utf8", b'{"temp": "\xff\xfe"}', JSON, MALFORMED, "invalid_encoding"),
    _case("duplicate_key", b'{"temp": 21.5, "temp": 22.0}', JSON, MALFORMED, "duplicate_key"),
    _case(
        "duplicate_key_in_values",
        b'{"values": {"temp": 1, "hum": 2, "temp": 3}}',
        JSON,
        MALFORMED,
        "duplicate_key",
    ),
    _case("deep_nesting_arrays", b"[" * 100_000, JSON, MALFORMED, "too_deep"),
    _case("deep_nesting_objects", b'{"a":' * 100_000, JSON, MALFORMED, "too_deep"),
    _case("int_5000_digits", b'{"temp": ' + b"9" * 5000 + b"}", JSON, MALFORMED, "number_too_long"),
    # --- valid JSON, wrong shape
    _case("top_level_number", b"42", JSON, INVALID, "invalid_payload"),
    _case("top_level_string", b'"temp"', JSON, INVALID, "invalid_payload"),
    _case("top_level_null", b"null", JSON, INVALID, "invalid_payload"),
    _case("top_level_bool", b"true", None, INVALID, "invalid_payload"),
    _case("empty_object", b"{}", JSON, INVALID, "no_readings"),
    _case("empty_list", b"[]", JSON, INVALID, "no_readings"),
    _case("empty_values", b'{"values": {}}', JSON, INVALID, "no_readings"),
    _case("ts_only", b'{"ts": 1000000000000}', JSON, INVALID, "no_readings"),
    _case("batch_item_not_object", b'[{"temp": 1}, 2]', JSON, INVALID, "invalid_record"),
    _case("values_not_object", b'{"values": [21.5]}', JSON, INVALID, "invalid_record"),
    _case(
        "unknown_field",
        b'{"ts": 1000000000000, "values": {"temp": 21.5}, "device": "x"}',
        JSON,
        INVALID,
        "unknown_field",
    ),
    # --- values
    _case("value_null", b'{"temp": null}', JSON, INVALID, "invalid_value"),
    _case("value_list", b'{"temp": [21.5, 22.0]}', JSON, INVALID, "invalid_value"),
    _case("value_object", b'{"temp": {"v": 21.5}}', JSON, INVALID, "invalid_value"),
    _case("value_nan", b'{"temp": NaN}', JSON, INVALID, "non_finite_number"),
    _case("value_infinity", b'{"temp": Infinity}', JSON, INVALID, "non_finite_number"),
    _case("value_neg_infinity", b'{"temp": -Infinity}', JSON, INVALID, "non_finite_number"),
    _case("value_1e400", b'{"temp": 1e400}', JSON, INVALID, "non_finite_number"),
    _case("value_int_1e30", b'{"temp": ' + str(10**30).encode() + b"}", JSON, INVALID, "number_out_of_range"),
    _case(
        "value_string_1025_bytes",
        b'{"label": "' + b"x" * 1025 + b'"}',
        JSON,
        INVALID,
        "value_too_long",
    ),
    _case(
        "value_string_multibyte_too_long",
        ('{"label": "' + "\u00e9" * 513 + '"}').encode(),
        JSON,
        INVALID,
        "value_too_long",
    ),
    _case("value_lone_surrogate", b'{"label": "\\ud800"}', JSON, INVALID, "invalid_value"),
    # --- limits
    _case(
        "too_many_records",
        json.dumps([{"temp": i} for i in range(1001)]).encode(),
        JSON,
        INVALID,
        "too_many_records",
    ),
    _case(
        "too_many_metrics",
        json.dumps({f"m{i}": i for i in range(101)}).encode(),
        JSON,
        INVALID,
        "too_many_metrics",
    ),
    _case("oversize_body", b'{"a":"' + b"x" * (1 << 20) + b'"}', JSON, TOO_LARGE, "body_too_large"),
    # --- metric names
    _case("metric_empty", b'{"": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_leading_dash", b'{"-temp": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_space", b'{"room temp": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_unicode", '{"température": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_129_chars", b'{"' + b"m" * 129 + b'": 1}', JSON, INVALID, "invalid_metric_name"),
    # --- timestamps
    _case(
        "ts_future",
        b'{"ts": %d, "values": {"temp": 1}}' % FUTURE_MS,
        JSON,
        INVALID,
        "timestamp_in_future",
    ),
    _case(
        "ts_future_seconds_plain",
        b'{"ts": %d, "temp": 1}' % (FUTURE_MS // 1000),
        JSON,
        INVALID,
        "timestamp_in_future",
    ),
    _case(
        "ts_before_2000",
        b'{"ts": %d, "values": {"temp": 1}}' % BEFORE_2000_MS,
        JSON,
        INVALID,
        "timestamp_too_old",
    ),
    _case(
        "ts_iso_without_zone",
        b'{"ts": "2026-11-25T09:00:00", "values": {"temp": 1}}',
        JSON,
        INVALID,
        "invalid_timestamp",
    ),
    _case(
        "ts_garbage_string",
        b'{"ts": "yesterday", "values": {"temp": 1}}',
        JSON,
        INVALID,
        "invalid_timestamp",
    ),
    _case("ts_bool", b'{"ts": true, "values": {"temp": 1}}', JSON, INVALID, "invalid_timestamp"),
    _case("ts_null", b'{"ts": null, "temp": 1}', JSON, INVALID, "invalid_timestamp"),
    _case("ts_nan", b'{"ts": NaN, "temp": 1}', JSON, INVALID, "non_finite_number"),
    # --- SenML JSON
    _case("senml_missing_value", b'[{"n": "temp", "u": "Cel"}]', SENML_JSON, INVALID, "missing_value"),
    _case(
        "senml_missing_value_as_json",
        b'[{"bn": "dev:", "n": "temp", "u": "Cel"}]',
        JSON,
        INVALID,
        "missing_value",
    ),
    _case("senml_bad_bver", b'[{"bver": 99, "n": "temp", "v": 1}]', SENML_JSON, INVALID, "unsupported_version"),
    _case(
        "senml_must_understand_field",
        b'[{"n": "temp", "v": 1, "foo_": 1}]',
        SENML_JSON,
        INVALID,
        "unsupported_field",
    ),
    _case("senml_v_string", b'[{"n": "temp", "v": "21.5"}]', SENML_JSON, INVALID, "invalid_value"),
    _case("senml_vb_not_bool", b'[{"n": "open", "vb": 1}]', SENML_JSON, INVALID, "invalid_value"),
    _case("senml_n_not_string", b'[{"n": 5, "v": 1}]', SENML_JSON, INVALID, "invalid_metric_name"),
    _case("senml_no_name", b'[{"v": 1}]', SENML_JSON, INVALID, "invalid_metric_name"),
    _case("senml_bad_unit", b'[{"n": "temp", "u": "deg C", "v": 1}]', SENML_JSON, INVALID, "invalid_unit"),
    _case(
        "senml_two_values",
        b'[{"n": "temp", "v": 1, "vs": "one"}]',
        SENML_JSON,
        INVALID,
        "multiple_values",
    ),
    _case(
        "senml_future_time",
        b'[{"n": "temp", "t": %d, "v": 1}]' % (FUTURE_MS // 1000),
        SENML_JSON,
        INVALID,
        "timestamp_in_future",
    ),
    _case("senml_object_not_pack", b'{"n": "temp", "v": 1}', SENML_JSON, INVALID, "invalid_payload"),
    _case("senml_empty_pack", b"[]", SENML_JSON, INVALID, "no_readings"),
    _case("senml_base_only", b'[{"bn": "urn:dev:x:"}]', SENML_JSON, INVALID, "no_readings"),
    # --- SenML XML
    _case("xml_billion_laughs", _BILLION_LAUGHS, SENML_XML, MALFORMED, "xml_forbidden"),
    _case("xml_external_entity", _XXE, SENML_XML, MALFORMED, "xml_forbidden"),
    _case("xml_dtd", _XML_DTD, SENML_XML, MALFORMED, "xml_forbidden"),
    _case(
        "xml_malformed",
        b'<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="temp" v="1">',
        SENML_XML,
        MALFORMED,
        "invalid_xml",
    ),
    _case("xml_wrong_root", b'<readings><senml n="temp" v="1"/></readings>', SENML_XML, MALFORMED, "invalid_xml"),
    _case(
        "xml_root_without_namespace",
        b'<sensml><senml n="temp" v="1"/></sensml>',
        SENML_XML,
        MALFORMED,
        "invalid_xml",
    ),
    _case("xml_json_body", b'[{"n": "temp", "v": 1}]', SENML_XML, MALFORMED, "invalid_xml"),
    _case("xml_v_not_number", _xml('<senml n="temp" v="warm"/>'), SENML_XML, INVALID, "invalid_value"),
    _case("xml_v_nan", _xml('<senml n="temp" v="NaN"/>'), SENML_XML, INVALID, "non_finite_number"),
    _case("xml_missing_value", _xml('<senml n="temp" u="Cel"/>'), SENML_XML, INVALID, "missing_value"),
    _case("xml_bad_bver", _xml('<senml bver="11" n="temp" v="1"/>'), SENML_XML, INVALID, "unsupported_version"),
    _case(
        "xml_time_before_2000",
        _xml(f'<senml n="temp" t="{BEFORE_2000_MS // 1000}" v="1"/>'),
        SENML_XML,
        INVALID,
        "timestamp_too_old",
    ),
    # --- content types
    _case("content_type_text_plain", b'{"temp": 21.5}', "text/plain", UNSUPPORTED, "unsupported_content_type"),
    _case(
        "content_type_xml", _xml('<senml n="temp" v="1"/>'), "application/xml", UNSUPPORTED, "unsupported_content_type"
    ),
    _case(
        "content_type_octet_stream",
        b'{"temp": 21.5}',
        "application/octet-stream",
        UNSUPPORTED,
        "unsupported_content_type",
    ),
    _case(
        "content_type_form",
        b"temp=21.5",
        "application/x-www-form-urlencoded",
        UNSUPPORTED,
        "unsupported_content_type",
    ),
    _case(
        "charset_latin1",
        '{"température": 21.5}'.encode("latin-1"),
        "application/json; charset=latin-1",
        UNSUPPORTED,
        "unsupported_charset",
    ),
]

# --- unicode edge cases, hostile XML and more limits (the reliability suite, reliability/bad_input.py,
# sends every case above and below to the running local stack over HTTP as well)
BAD_INPUTS += [
    _case("metric_rtl_override", b'{"temp\\u202e": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_rtl_override_raw", '{"temp\u202e": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_zero_width_joiner", b'{"te\\u200dmp": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_zero_width_space_raw", '{"temp\u200b": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_nul_escaped", b'{"temp\\u0000": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_control_char_escaped", b'{"temp\\u0007": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_newline_escaped", b'{"te\\nmp": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_line_separator", '{"temp\u2028": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_lone_high_surrogate", b'{"\\ud800temp": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("metric_lone_low_surrogate", b'{"temp\\udc00": 1}', JSON, INVALID, "invalid_metric_name"),
    _case("value_reversed_surrogate_pair", b'{"label": "\\udc00\\ud800"}', JSON, INVALID, "invalid_value"),
    # Normalisation-equivalent names (NFC and NFD of the same text) and look-alikes: metric
    # names are ASCII, so neither form can alias an ASCII metric.
    _case("metric_nfc_e_acute", '{"caf\u00e9": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_nfd_e_acute", '{"cafe\u0301": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_fullwidth_letters", '{"\uff54\uff45\uff4d\uff50": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_cyrillic_homoglyph", '{"t\u0435mp": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("metric_kelvin_sign", '{"\u212a": 1}'.encode(), JSON, INVALID, "invalid_metric_name"),
    _case("raw_nul_in_string", b'{"temp": "a\x00b"}', JSON, MALFORMED, "invalid_json"),
    _case("raw_nul_after_body", b'{"temp": 1}\x00', JSON, MALFORMED, "invalid_json"),
    _case("utf8_overlong_slash", b'{"label": "\xc0\xaf"}', JSON, MALFORMED, "invalid_encoding"),
    _case("utf8_encoded_surrogate", b'{"label": "\xed\xa0\x80"}', JSON, MALFORMED, "invalid_encoding"),
    _case("utf16_body_as_json", '{"temp": 1}'.encode("utf-16"), JSON, MALFORMED, "invalid_encoding"),
    _case("charset_utf16", b'{"temp": 1}', "application/json; charset=utf-16", UNSUPPORTED, "unsupported_charset"),
    _case(
        "charset_quoted_escape",
        b'{"temp": 1}',
        'application/json; charset="utf-8\\"; x=1"',
        UNSUPPORTED,
        "unsupported_charset",
    ),
    _case(
        "content_type_multipart",
        b'--b\r\n\r\n{"temp": 1}\r\n--b--',
        "multipart/form-data; boundary=b",
        UNSUPPORTED,
        "unsupported_content_type",
    ),
    _case(
        "ts_arabic_indic_digits",
        '{"ts": "\u0662\u0660\u0662\u0666-11-25T09:00:00Z", "values": {"temp": 1}}'.encode(),
        JSON,
        INVALID,
        "invalid_timestamp",
    ),
    _case("ts_1e300", b'{"ts": 1e300, "values": {"temp": 1}}', JSON, INVALID, "timestamp_in_future"),
    _case("value_huge_exponent", b'{"temp": 1e99999999999}', JSON, INVALID, "non_finite_number"),
    _case(
        "senml_name_zero_width_joiner",
        b'[{"bn": "dev\\u200d:", "n": "temp", "v": 1}]',
        SENML_JSON,
        INVALID,
        "invalid_metric_name",
    ),
    _case(
        "senml_unit_rtl_override", b'[{"n": "temp", "u": "Cel\\u202e", "v": 1}]', SENML_JSON, INVALID, "invalid_unit"
    ),
    _case("senml_duplicate_key", b'[{"n": "a", "n": "b", "v": 1}]', SENML_JSON, MALFORMED, "duplicate_key"),
    _case("senml_deep_nesting", b"[" * 100_000, SENML_JSON, MALFORMED, "too_deep"),
    _case("xml_nul_char_reference", _xml('<senml n="temp" vs="a&#0;b"/>'), SENML_XML, MALFORMED, "invalid_xml"),
    _case("xml_rtl_override_name", _xml('<senml n="temp&#x202e;" v="1"/>'), SENML_XML, INVALID, "invalid_metric_name"),
    _case(
        "xml_deep_nesting",
        b'<sensml xmlns="urn:ietf:params:xml:ns:senml">' + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</sensml>",
        SENML_XML,
        MALFORMED,
        "invalid_xml",
    ),
    _case(
        "xml_xinclude",
        _xml('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'),
        SENML_XML,
        MALFORMED,
        "invalid_xml",
    ),
    _case(
        "xml_external_parameter_entity",
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY % p SYSTEM "http://example.com/x.dtd"> %p;]>'
        + _xml('<senml n="temp" v="1"/>'),
        SENML_XML,
        MALFORMED,
        "xml_forbidden",
    ),
    _case(
        "xml_latin1_declared",
        '<?xml version="1.0" encoding="ISO-8859-1"?><sensml xmlns="urn:ietf:params:xml:ns:senml">'
        '<senml n="t" vs="\u00e9"/></sensml>'.encode("latin-1"),
        SENML_XML,
        MALFORMED,
        "invalid_encoding",
    ),
    _case("xml_empty_body", b"", SENML_XML, MALFORMED, "empty_body"),
    _case(
        "xml_oversize",
        _xml('<senml n="temp" vs="' + "x" * (1 << 20) + '"/>'),
        SENML_XML,
        TOO_LARGE,
        "body_too_large",
    ),
    _case("oversize_without_content_type", b'{"a":"' + b"x" * (1 << 20) + b'"}', None, TOO_LARGE, "body_too_large"),
]
