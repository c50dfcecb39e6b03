"""Bad telemetry bodies: each must be rejected as a whole, and nothing stored.

Shared by the unit tests (parse_payload) and the functional tests (POST /v1/telemetry).
Every case is self-contained and invalid whatever the receive time: bodies without a
time use the receive time, and cases about time use absolute values that are wrong at
any real "now" (year 2100 is in the future, 1999 is before the 2000-01-01 limit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def _expect(expected: tuple[int, str], default_type: str = JSON) -> Callable[..., BadInput]:
    """The cases of one outcome: (id, body, detail code, content type: `default_type` unless named)."""

    def case(id: str, body: bytes, detail_code: str | None, content_type: str | None = default_type) -> BadInput:
        return BadInput(id, body, content_type, expected[0], expected[1], detail_code)

    return case


_malformed = _expect(MALFORMED)
_invalid = _expect(INVALID)
_too_large = _expect(TOO_LARGE)
_unsupported = _expect(UNSUPPORTED)
_senml_invalid = _expect(INVALID, SENML_JSON)
_senml_malformed = _expect(MALFORMED, SENML_JSON)
_xml_invalid = _expect(INVALID, SENML_XML)
_xml_malformed = _expect(MALFORMED, SENML_XML)
_xml_too_large = _expect(TOO_LARGE, SENML_XML)


BAD_INPUTS: list[BadInput] = [
    # --- syntax: not JSON at all
    _malformed("json_truncated", b'{"temp": 21.5', "invalid_json"),
    _malformed("json_trailing_comma", b'{"temp": 21.5,}', "invalid_json"),
    _malformed("json_single_quotes", b"{'temp': 21.5}", "invalid_json"),
    _malformed("json_unquoted_key", b"{temp: 21.5}", "invalid_json"),
    _malformed("json_trailing_garbage", b'{"temp": 21.5} x', "invalid_json"),
    _malformed("json_comment", b'{"temp": 21.5} // celsius', "invalid_json"),
    _malformed("json_bare_word", b"temperature", "invalid_json", None),
    _malformed("json_xml_body", _xml('<senml n="temp" v="1"/>'), "invalid_json"),
    _malformed("empty_body", b"", "empty_body"),
    _malformed("whitespace_body", b" \r\n\t ", "empty_body", None),
    _malformed("invalid_utf8", b'{"temp": "\xff\xfe"}', "invalid_encoding"),
    _malformed("duplicate_key", b'{"temp": 21.5, "temp": 22.0}', "duplicate_key"),
    _malformed("duplicate_key_in_values", b'{"values": {"temp": 1, "hum": 2, "temp": 3}}', "duplicate_key"),
    _malformed("deep_nesting_arrays", b"[" * 100_000, "too_deep"),
    _malformed("deep_nesting_objects", b'{"a":' * 100_000, "too_deep"),
    _malformed("int_5000_digits", b'{"temp": ' + b"9" * 5000 + b"}", "number_too_long"),
    # --- valid JSON, wrong shape
    _invalid("top_level_number", b"42", "invalid_payload"),
    _invalid("top_level_string", b'"temp"', "invalid_payload"),
    _invalid("top_level_null", b"null", "invalid_payload"),
    _invalid("top_level_bool", b"true", "invalid_payload", None),
    _invalid("empty_object", b"{}", "no_readings"),
    _invalid("empty_list", b"[]", "no_readings"),
    _invalid("empty_values", b'{"values": {}}', "no_readings"),
    _invalid("ts_only", b'{"ts": 1000000000000}', "no_readings"),
    _invalid("batch_item_not_object", b'[{"temp": 1}, 2]', "invalid_record"),
    _invalid("values_not_object", b'{"values": [21.5]}', "invalid_record"),
    _invalid("unknown_field", b'{"ts": 1000000000000, "values": {"temp": 21.5}, "device": "x"}', "unknown_field"),
    # --- values
    _invalid("value_null", b'{"temp": null}', "invalid_value"),
    _invalid("value_list", b'{"temp": [21.5, 22.0]}', "invalid_value"),
    _invalid("value_object", b'{"temp": {"v": 21.5}}', "invalid_value"),
    _invalid("value_nan", b'{"temp": NaN}', "non_finite_number"),
    _invalid("value_infinity", b'{"temp": Infinity}', "non_finite_number"),
    _invalid("value_neg_infinity", b'{"temp": -Infinity}', "non_finite_number"),
    _invalid("value_1e400", b'{"temp": 1e400}', "non_finite_number"),
    _invalid("value_int_1e30", b'{"temp": ' + str(10**30).encode() + b"}", "number_out_of_range"),
    _invalid("value_string_1025_bytes", b'{"label": "' + b"x" * 1025 + b'"}', "value_too_long"),
    _invalid("value_string_multibyte_too_long", ('{"label": "' + "\u00e9" * 513 + '"}').encode(), "value_too_long"),
    _invalid("value_lone_surrogate", b'{"label": "\\ud800"}', "invalid_value"),
    # --- limits
    _invalid("too_many_records", json.dumps([{"temp": i} for i in range(1001)]).encode(), "too_many_records"),
    _invalid("too_many_metrics", json.dumps({f"m{i}": i for i in range(101)}).encode(), "too_many_metrics"),
    _too_large("oversize_body", b'{"a":"' + b"x" * (1 << 20) + b'"}', "body_too_large"),
    # --- metric names
    _invalid("metric_empty", b'{"": 1}', "invalid_metric_name"),
    _invalid("metric_leading_dash", b'{"-temp": 1}', "invalid_metric_name"),
    _invalid("metric_space", b'{"room temp": 1}', "invalid_metric_name"),
    _invalid("metric_unicode", '{"température": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_129_chars", b'{"' + b"m" * 129 + b'": 1}', "invalid_metric_name"),
    # --- timestamps
    _invalid("ts_future", b'{"ts": %d, "values": {"temp": 1}}' % FUTURE_MS, "timestamp_in_future"),
    _invalid("ts_future_seconds_plain", b'{"ts": %d, "temp": 1}' % (FUTURE_MS // 1000), "timestamp_in_future"),
    _invalid("ts_before_2000", b'{"ts": %d, "values": {"temp": 1}}' % BEFORE_2000_MS, "timestamp_too_old"),
    _invalid("ts_iso_without_zone", b'{"ts": "2026-11-25T09:00:00", "values": {"temp": 1}}', "invalid_timestamp"),
    _invalid("ts_garbage_string", b'{"ts": "yesterday", "values": {"temp": 1}}', "invalid_timestamp"),
    _invalid("ts_bool", b'{"ts": true, "values": {"temp": 1}}', "invalid_timestamp"),
    _invalid("ts_null", b'{"ts": null, "temp": 1}', "invalid_timestamp"),
    _invalid("ts_nan", b'{"ts": NaN, "temp": 1}', "non_finite_number"),
    # --- SenML JSON
    _senml_invalid("senml_missing_value", b'[{"n": "temp", "u": "Cel"}]', "missing_value"),
    _invalid("senml_missing_value_as_json", b'[{"bn": "dev:", "n": "temp", "u": "Cel"}]', "missing_value"),
    _senml_invalid("senml_bad_bver", b'[{"bver": 99, "n": "temp", "v": 1}]', "unsupported_version"),
    _senml_invalid("senml_must_understand_field", b'[{"n": "temp", "v": 1, "foo_": 1}]', "unsupported_field"),
    _senml_invalid("senml_v_string", b'[{"n": "temp", "v": "21.5"}]', "invalid_value"),
    _senml_invalid("senml_vb_not_bool", b'[{"n": "open", "vb": 1}]', "invalid_value"),
    _senml_invalid("senml_n_not_string", b'[{"n": 5, "v": 1}]', "invalid_metric_name"),
    _senml_invalid("senml_no_name", b'[{"v": 1}]', "invalid_metric_name"),
    _senml_invalid("senml_bad_unit", b'[{"n": "temp", "u": "deg C", "v": 1}]', "invalid_unit"),
    _senml_invalid("senml_two_values", b'[{"n": "temp", "v": 1, "vs": "one"}]', "multiple_values"),
    _senml_invalid(
        "senml_future_time", b'[{"n": "temp", "t": %d, "v": 1}]' % (FUTURE_MS // 1000), "timestamp_in_future"
    ),
    _senml_invalid("senml_object_not_pack", b'{"n": "temp", "v": 1}', "invalid_payload"),
    _senml_invalid("senml_empty_pack", b"[]", "no_readings"),
    _senml_invalid("senml_base_only", b'[{"bn": "urn:dev:x:"}]', "no_readings"),
    # --- SenML XML
    _xml_malformed("xml_billion_laughs", _BILLION_LAUGHS, "xml_forbidden"),
    _xml_malformed("xml_external_entity", _XXE, "xml_forbidden"),
    _xml_malformed("xml_dtd", _XML_DTD, "xml_forbidden"),
    _xml_malformed(
        "xml_malformed", b'<sensml xmlns="urn:ietf:params:xml:ns:senml"><senml n="temp" v="1">', "invalid_xml"
    ),
    _xml_malformed("xml_wrong_root", b'<readings><senml n="temp" v="1"/></readings>', "invalid_xml"),
    _xml_malformed("xml_root_without_namespace", b'<sensml><senml n="temp" v="1"/></sensml>', "invalid_xml"),
    _xml_malformed("xml_json_body", b'[{"n": "temp", "v": 1}]', "invalid_xml"),
    _xml_invalid("xml_v_not_number", _xml('<senml n="temp" v="warm"/>'), "invalid_value"),
    _xml_invalid("xml_v_nan", _xml('<senml n="temp" v="NaN"/>'), "non_finite_number"),
    _xml_invalid("xml_missing_value", _xml('<senml n="temp" u="Cel"/>'), "missing_value"),
    _xml_invalid("xml_bad_bver", _xml('<senml bver="11" n="temp" v="1"/>'), "unsupported_version"),
    _xml_invalid(
        "xml_time_before_2000", _xml(f'<senml n="temp" t="{BEFORE_2000_MS // 1000}" v="1"/>'), "timestamp_too_old"
    ),
    # --- content types
    _unsupported("content_type_text_plain", b'{"temp": 21.5}', "unsupported_content_type", "text/plain"),
    _unsupported("content_type_xml", _xml('<senml n="temp" v="1"/>'), "unsupported_content_type", "application/xml"),
    _unsupported(
        "content_type_octet_stream", b'{"temp": 21.5}', "unsupported_content_type", "application/octet-stream"
    ),
    _unsupported("content_type_form", b"temp=21.5", "unsupported_content_type", "application/x-www-form-urlencoded"),
    _unsupported(
        "charset_latin1",
        '{"température": 21.5}'.encode("latin-1"),
        "unsupported_charset",
        "application/json; charset=latin-1",
    ),
]

# --- unicode edge cases, hostile XML and more limits (the reliability suite, reliability/bad_input.py,
# sends every case above and below to the running local stack over HTTP as well)
BAD_INPUTS += [
    _invalid("metric_rtl_override", b'{"temp\\u202e": 1}', "invalid_metric_name"),
    _invalid("metric_rtl_override_raw", '{"temp\u202e": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_zero_width_joiner", b'{"te\\u200dmp": 1}', "invalid_metric_name"),
    _invalid("metric_zero_width_space_raw", '{"temp\u200b": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_nul_escaped", b'{"temp\\u0000": 1}', "invalid_metric_name"),
    _invalid("metric_control_char_escaped", b'{"temp\\u0007": 1}', "invalid_metric_name"),
    _invalid("metric_newline_escaped", b'{"te\\nmp": 1}', "invalid_metric_name"),
    _invalid("metric_line_separator", '{"temp\u2028": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_lone_high_surrogate", b'{"\\ud800temp": 1}', "invalid_metric_name"),
    _invalid("metric_lone_low_surrogate", b'{"temp\\udc00": 1}', "invalid_metric_name"),
    _invalid("value_reversed_surrogate_pair", b'{"label": "\\udc00\\ud800"}', "invalid_value"),
    # Normalisation-equivalent names (NFC and NFD of the same text) and look-alikes: metric
    # names are ASCII, so neither form can alias an ASCII metric.
    _invalid("metric_nfc_e_acute", '{"caf\u00e9": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_nfd_e_acute", '{"cafe\u0301": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_fullwidth_letters", '{"\uff54\uff45\uff4d\uff50": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_cyrillic_homoglyph", '{"t\u0435mp": 1}'.encode(), "invalid_metric_name"),
    _invalid("metric_kelvin_sign", '{"\u212a": 1}'.encode(), "invalid_metric_name"),
    _malformed("raw_nul_in_string", b'{"temp": "a\x00b"}', "invalid_json"),
    _malformed("raw_nul_after_body", b'{"temp": 1}\x00', "invalid_json"),
    _malformed("utf8_overlong_slash", b'{"label": "\xc0\xaf"}', "invalid_encoding"),
    _malformed("utf8_encoded_surrogate", b'{"label": "\xed\xa0\x80"}', "invalid_encoding"),
    _malformed("utf16_body_as_json", '{"temp": 1}'.encode("utf-16"), "invalid_encoding"),
    _unsupported("charset_utf16", b'{"temp": 1}', "unsupported_charset", "application/json; charset=utf-16"),
    _unsupported(
        "charset_quoted_escape", b'{"temp": 1}', "unsupported_charset", 'application/json; charset="utf-8\\"; x=1"'
    ),
    _unsupported(
        "content_type_multipart",
        b'--b\r\n\r\n{"temp": 1}\r\n--b--',
        "unsupported_content_type",
        "multipart/form-data; boundary=b",
    ),
    _invalid(
        "ts_arabic_indic_digits",
        '{"ts": "\u0662\u0660\u0662\u0666-11-25T09:00:00Z", "values": {"temp": 1}}'.encode(),
        "invalid_timestamp",
    ),
    _invalid("ts_1e300", b'{"ts": 1e300, "values": {"temp": 1}}', "timestamp_in_future"),
    _invalid("value_huge_exponent", b'{"temp": 1e99999999999}', "non_finite_number"),
    _senml_invalid(
        "senml_name_zero_width_joiner", b'[{"bn": "dev\\u200d:", "n": "temp", "v": 1}]', "invalid_metric_name"
    ),
    _senml_invalid("senml_unit_rtl_override", b'[{"n": "temp", "u": "Cel\\u202e", "v": 1}]', "invalid_unit"),
    _senml_malformed("senml_duplicate_key", b'[{"n": "a", "n": "b", "v": 1}]', "duplicate_key"),
    _senml_malformed("senml_deep_nesting", b"[" * 100_000, "too_deep"),
    _xml_malformed("xml_nul_char_reference", _xml('<senml n="temp" vs="a&#0;b"/>'), "invalid_xml"),
    _xml_invalid("xml_rtl_override_name", _xml('<senml n="temp&#x202e;" v="1"/>'), "invalid_metric_name"),
    _xml_malformed(
        "xml_deep_nesting",
        b'<sensml xmlns="urn:ietf:params:xml:ns:senml">' + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</sensml>",
        "invalid_xml",
    ),
    _xml_malformed(
        "xml_xinclude",
        _xml('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'),
        "invalid_xml",
    ),
    _xml_malformed(
        "xml_external_parameter_entity",
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY % p SYSTEM "http://example.com/x.dtd"> %p;]>'
        + _xml('<senml n="temp" v="1"/>'),
        "xml_forbidden",
    ),
    _xml_malformed(
        "xml_latin1_declared",
        '<?xml version="1.0" encoding="ISO-8859-1"?><sensml xmlns="urn:ietf:params:xml:ns:senml">'
        '<senml n="t" vs="\u00e9"/></sensml>'.encode("latin-1"),
        "invalid_encoding",
    ),
    _xml_malformed("xml_empty_body", b"", "empty_body"),
    _xml_too_large("xml_oversize", _xml('<senml n="temp" vs="' + "x" * (1 << 20) + '"/>'), "body_too_large"),
    _too_large("oversize_without_content_type", b'{"a":"' + b"x" * (1 << 20) + b'"}', "body_too_large", None),
]
