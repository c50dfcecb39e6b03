"""Telemetry payloads -> validated Readings.

Accepted bodies (see DESIGN.md, domain rules):

- JSON (`application/json` or no content type):
  `{"temp": 21.5}` (one record at receive time, or at its `ts` key),
  `{"ts": <time>, "values": {...}}`, or a list (batch) of either. A list whose items
  all look like SenML records is read as SenML (devices often label SenML as JSON).
- SenML JSON (`application/senml+json`) and SenML XML (`application/senml+xml`),
  resolved as RFC 8428 section 4.6 says.

Validation is all-or-nothing: every problem is collected and raised in one
ValidationError. Syntax-level failures raise MalformedPayloadError at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, NoReturn
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from chalicelib.domain.readings import Limits, Reading, Value
from chalicelib.domain.rules import MAX_METRIC_CHARS, METRIC_CHARACTERS, UNIT_CHARACTERS
from chalicelib.domain.timeparse import parse_time
from chalicelib.errors import (
    MalformedPayloadError,
    PayloadTooLargeError,
    Problem,
    UnsupportedMediaTypeError,
    ValidationError,
)

__all__ = ["MAX_DETAILS", "ParsedPayload", "parse_payload", "parse_time"]

MAX_DETAILS: Final = 100
_INT_LIMIT: Final = 2**63
# SenML: resolved times below 2**28 s are relative to "now" (RFC 8428 section 4.5.3).
_SENML_RELATIVE_BELOW: Final = 2**28

_METRIC_NAME = re.compile(METRIC_CHARACTERS)  # the length is checked apart, so the message can say which
_UNIT = re.compile(UNIT_CHARACTERS)
_XML_INT = re.compile(r"[+-]?[0-9]+")
_XML_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_XML_NON_FINITE: Final = {"NaN": math.nan, "INF": math.inf, "+INF": math.inf, "-INF": -math.inf}

_JSON_TYPES: Final = frozenset({"application/json"})
_SENML_JSON: Final = "application/senml+json"
_SENML_XML: Final = "application/senml+xml"
_UTF8_NAMES: Final = frozenset({"utf-8", "utf8"})

_SENML_NS: Final = "{urn:ietf:params:xml:ns:senml}"
_SENML_ROOT: Final = _SENML_NS + "sensml"
_SENML_RECORD: Final = _SENML_NS + "senml"
_SENML_KEYS: Final = frozenset({"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"})
_XML_NUMBER_FIELDS: Final = frozenset({"bt", "bv", "bs", "v", "s", "t", "ut"})
_XML_INT_FIELDS: Final = frozenset({"bver"})
_XML_BOOL_FIELDS: Final = frozenset({"vb"})
_XML_BOOLS: Final = {"true": True, "1": True, "false": False, "0": False}

# Metric names already found valid. Devices repeat the same few names, so this turns a
# regex match per reading into a set lookup. Bounded: cleared when full.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX: Final = 4096

_MISSING: Final = object()


@dataclass(frozen=True)
class ParsedPayload:
    """The readings of one request, in payload order (not de-duplicated)."""

    readings: list[Reading]
    records: int
    ignored: int  # SenML records accepted but not stored (vd data values, sum-only)


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Problems:
    """Collects problems; keeps the first MAX_DETAILS and counts the rest."""

    __slots__ = ("count", "items")

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.count = 0

    def add(self, code: str, message: str, index: int | None = None, metric: str | None = None) -> None:
        self.count += 1
        if len(self.items) < MAX_DETAILS:
            if metric is not None and not metric.isascii():
                # An invalid name may hold lone surrogates, which no encoder accepts.
                metric = metric.encode("utf-8", "replace").decode("utf-8")
            self.items.append(Problem(code, message, index, metric))

    def raise_if_any(self) -> None:
        if not self.count:
            return
        if self.count > len(self.items):
            message = f"{self.count} problems in payload (first {len(self.items)} listed)"
        else:
            message = f"{self.count} problem{'' if self.count == 1 else 's'} in payload"
        raise ValidationError(message, details=self.items)


# --------------------------------------------------------------------------- entry point


def parse_payload(body: bytes, content_type: str | None, received_at_ms: int, limits: Limits) -> ParsedPayload:
    """Parse and validate a telemetry body; raise a domain error if anything is wrong.

    `received_at_ms` is the server's receive time: the time of records that give none,
    and the reference for "too far in the future" and SenML relative times.
    """
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"body is {len(body)} bytes; the limit is {limits.max_body_bytes}",
            details=[Problem("body_too_large", f"send at most {limits.max_body_bytes} bytes per request")],
        )
    media_type = _media_type(content_type)
    text = _decode(body)

    problems = _Problems()
    if media_type == _SENML_XML:
        records = _senml_xml_records(text)
        readings, ignored = _resolve_senml(records, received_at_ms, limits, problems)
        count = len(records)
    else:
        document = _load_json(text)
        if media_type == _SENML_JSON:
            if type(document) is not list:
                _raise_one("invalid_payload", "a SenML pack must be a JSON array of records")
            readings, ignored = _resolve_senml(document, received_at_ms, limits, problems)
            count = len(document)
        elif type(document) is list and _looks_like_senml(document):
            readings, ignored = _resolve_senml(document, received_at_ms, limits, problems)
            count = len(document)
        else:
            readings, count = _parse_json_shapes(document, received_at_ms, limits, problems)
            ignored = 0

    problems.raise_if_any()
    if not readings and not ignored:
        _raise_one("no_readings", "the payload contains no readings")
    return ParsedPayload(readings=readings, records=count, ignored=ignored)


def _raise_one(code: str, message: str, index: int | None = None) -> NoReturn:
    raise ValidationError(message, details=[Problem(code, message, index)])


def _malformed(code: str, message: str, detail: str | None = None) -> MalformedPayloadError:
    return MalformedPayloadError(message, details=[Problem(code, detail or message)])


# --------------------------------------------------------------------------- transport


def _media_type(content_type: str | None) -> str:
    if content_type is None or not content_type.strip():
        return "application/json"
    main, _, params = content_type.partition(";")
    media_type = main.strip().lower()
    for param in params.split(";"):
        key, _, raw = param.partition("=")
        if key.strip().lower() == "charset":
            charset = raw.strip().strip('"').strip().lower()
            if charset not in _UTF8_NAMES:
                raise UnsupportedMediaTypeError(
                    f"unsupported charset {charset[:40]!r}: send UTF-8",
                    details=[Problem("unsupported_charset", "the body must be UTF-8")],
                )
    if media_type in _JSON_TYPES or media_type in (_SENML_JSON, _SENML_XML):
        return media_type
    raise UnsupportedMediaTypeError(
        f"unsupported content type {media_type[:80]!r}",
        details=[
            Problem(
                "unsupported_content_type",
                f"use application/json, {_SENML_JSON} or {_SENML_XML}",
            )
        ],
    )


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _malformed(
            "invalid_encoding", "the body is not valid UTF-8", f"invalid UTF-8 at byte {e.start}"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text or text.isspace():
        raise _malformed("empty_body", "the body is empty")
    return text


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return result


def _load_json(text: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise _malformed(
            "invalid_json", "the body is not valid JSON", f"{e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except _DuplicateKeyError as e:
        raise _malformed(
            "duplicate_key", "the body has a duplicate key", f"key {e.key[:130]!r} appears twice in one object"
        ) from None
    except RecursionError:
        raise _malformed("too_deep", "the body is nested too deeply") from None
    except ValueError as e:  # int digit limit (sys.get_int_max_str_digits)
        raise _malformed("number_too_long", "the body has a number with too many digits", str(e)[:200]) from None


# --------------------------------------------------------------------------- checks


def _metric_problem(name: object) -> str | None:
    """Why `name` is not a valid metric name, or None if it is (cached when valid)."""
    if type(name) is not str:
        return "metric name must be a string"
    if name in _VALID_NAMES:
        return None
    if not name:
        return "metric name is empty"
    if len(name) > MAX_METRIC_CHARS:
        return f"metric name is {len(name)} characters long; at most {MAX_METRIC_CHARS} are allowed"
    if _METRIC_NAME.fullmatch(name) is None:
        return (
            f"invalid metric name {name[:40]!r}: start with a letter or digit, "
            "then use only letters, digits and - : . / _"
        )
    if len(_VALID_NAMES) >= _VALID_NAMES_MAX:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return None


def _value_problem(value: object, max_string_bytes: int) -> tuple[str, str] | None:
    """(code, message) if `value` cannot be stored, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return "non_finite_number", f"{_show_float(value)} is not a finite number"
    if isinstance(value, int):
        if -_INT_LIMIT <= value <= _INT_LIMIT:
            return None
        return "number_out_of_range", f"integers must be within +/- 2**63 (got {len(str(abs(value)))} digits)"
    if isinstance(value, str):
        if value.isascii():
            size = len(value)
        elif len(value) > max_string_bytes:
            size = len(value)  # at least this many bytes; no need to encode
        else:
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                return "invalid_value", "string contains an unpaired surrogate (not valid Unicode)"
        if size > max_string_bytes:
            return "value_too_long", f"string values are at most {max_string_bytes} UTF-8 bytes"
        return None
    return "invalid_value", f"a value must be a number, a boolean or a string, not {_json_type(value)}"


def _show_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _unit_problem(unit: object) -> str | None:
    if type(unit) is not str:
        return "unit must be a string"
    if unit == "" or _UNIT.fullmatch(unit):
        return None
    return f"invalid unit {unit[:40]!r}: 1 to 32 printable ASCII characters without spaces"


def _show_ms(ts: int) -> str:
    return str(ts) if -(10**16) < ts < 10**16 else "(far out of range)"


def _check_range(
    ts: int, index: int, metric: str | None, received_at_ms: int, limits: Limits, problems: _Problems
) -> None:
    if ts > received_at_ms + limits.max_future_ms:
        problems.add(
            "timestamp_in_future",
            f"timestamp {_show_ms(ts)} is more than {limits.max_future_ms // 1000} s"
            f" after the receive time {received_at_ms}",
            index,
            metric,
        )
    elif ts < limits.min_ts_ms:
        problems.add(
            "timestamp_too_old", f"timestamp {_show_ms(ts)} is before {limits.min_ts_ms} (2000-01-01)", index, metric
        )


def _record_time(raw: object, index: int, received_at_ms: int, limits: Limits, problems: _Problems) -> int | None:
    """The `ts` of a JSON record as int ms, or None after adding a problem."""
    kind = type(raw)
    if isinstance(raw, float) and not math.isfinite(raw):
        problems.add("non_finite_number", f"timestamp {_show_float(raw)} is not a finite number", index)
        return None
    if raw is None or not (kind is int or kind is float or kind is str):
        problems.add("invalid_timestamp", f"ts must be a number or an ISO 8601 string, not {_json_type(raw)}", index)
        return None
    try:
        ts = parse_time(raw, received_at_ms)
    except ValueError as e:
        problems.add("invalid_timestamp", str(e), index)
        return None
    _check_range(ts, index, None, received_at_ms, limits, problems)
    return ts


# --------------------------------------------------------------------------- JSON shapes


def _json_records(document: object, limits: Limits) -> list[Any]:
    """The records of a JSON body: one object, or an array of them (at most limits.max_records)."""
    if type(document) is dict:
        records: list[Any] = [document]
    elif type(document) is list:
        records = document
    else:
        _raise_one(
            "invalid_payload",
            f"the body must be a JSON object or array, not {_json_type(document)}",
        )
    if len(records) > limits.max_records:
        _raise_one("too_many_records", f"{len(records)} records; at most {limits.max_records} per request")
    return records


def _record_values(record: dict[str, Any], index: int, problems: _Problems) -> tuple[dict[str, Any], bool] | None:
    """A record's metrics and whether its "ts" is among them (the flat shape); None if it has none to read."""
    if "values" not in record:
        return record, "ts" in record
    values = record["values"]
    for key in record:
        if key != "ts" and key != "values":
            problems.add(
                "unknown_field",
                f"unknown field {key[:40]!r}: a record with values has only ts and values",
                index,
            )
    if type(values) is not dict:
        problems.add("invalid_record", f"values must be an object, not {_json_type(values)}", index)
        return None
    return values, False


def _parse_json_shapes(
    document: object, received_at_ms: int, limits: Limits, problems: _Problems
) -> tuple[list[Reading], int]:
    records = _json_records(document, limits)
    readings: list[Reading] = []
    append = readings.append
    max_metrics = limits.max_metrics_per_record
    max_string = limits.max_string_bytes
    valid_names = _VALID_NAMES
    isfinite = math.isfinite
    low, high = -_INT_LIMIT, _INT_LIMIT

    for index, record in enumerate(records):
        if type(record) is not dict:
            problems.add("invalid_record", f"each record must be an object, not {_json_type(record)}", index)
            continue
        shape = _record_values(record, index, problems)
        if shape is None:
            continue
        values, skip_ts = shape
        raw_ts = record.get("ts", _MISSING)
        if raw_ts is _MISSING:
            ts: int | None = received_at_ms
        else:
            ts = _record_time(raw_ts, index, received_at_ms, limits, problems)

        n_metrics = len(values) - skip_ts
        if n_metrics > max_metrics:
            problems.add("too_many_metrics", f"{n_metrics} metrics in one record; at most {max_metrics}", index)
            continue

        # The per-metric loop is the ingest path's hot spot: kept inline, with the lookups hoisted above.
        for name, value in values.items():
            if skip_ts and name == "ts":
                continue
            if name not in valid_names:
                why = _metric_problem(name)
                if why is not None:
                    problems.add("invalid_metric_name", why, index, name[:MAX_METRIC_CHARS])
                    continue
            # Inline fast path for the common types; anything else goes the long way.
            kind = type(value)
            if kind is float:
                ok = isfinite(value)
            elif kind is int:
                ok = low <= value <= high
            else:
                ok = kind is bool or (kind is str and len(value) <= max_string and value.isascii())
            if not ok:
                found = _value_problem(value, max_string)
                if found is not None:
                    problems.add(found[0], found[1], index, name)
                    continue
            if ts is not None:
                append(Reading(name, "", ts, value))
    return readings, len(records)


# --------------------------------------------------------------------------- SenML


def _looks_like_senml(document: list[Any]) -> bool:
    """True for a list of objects that all use SenML keys (and no `values`/`ts`), where
    some record names something (`n` or `bn` string), as every useful SenML pack does.

    The naming condition keeps plain batches like `[{"t": 21.5}, {"v": 3.3}]` plain.
    """
    named = False
    for record in document:
        if type(record) is not dict or "values" in record or "ts" in record:
            return False
        if _SENML_KEYS.isdisjoint(record):
            return False
        if not named:
            named = type(record.get("n")) is str or type(record.get("bn")) is str
    return named


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _number_field(
    record: dict[str, Any], key: str, code: str, what: str, index: int, metric: str | None, problems: _Problems
) -> int | float | None:
    """A numeric SenML field, or None (absent, or a problem was added)."""
    value = record.get(key)
    if value is None and key not in record:
        return None
    if not _is_number(value):
        problems.add(code, f"{key} ({what}) must be a number, not {_json_type(value)}", index, metric)
        return None
    if type(value) is float and not math.isfinite(value):
        problems.add("non_finite_number", f"{key} is {_show_float(value)}, not a finite number", index, metric)
        return None
    return value


def _string_field(
    record: dict[str, Any], key: str, code: str, what: str, index: int, metric: str | None, problems: _Problems
) -> str | None:
    value = record.get(key)
    if value is None and key not in record:
        return None
    if type(value) is not str:
        problems.add(code, f"{key} ({what}) must be a string, not {_json_type(value)}", index, metric)
        return None
    return value


def _senml_ms(base_time: int | float, t: int | float, received_at_ms: int) -> int | None:
    """bt + t (seconds) -> int ms, relative to the receive time below 2**28 s (RFC 8428
    section 4.5.3); None if it is not a representable time."""
    try:
        seconds = base_time + t
    except OverflowError:  # a huge int plus a float
        return None
    if type(seconds) is int:
        ms = seconds * 1000
    else:
        scaled = seconds * 1000.0
        if not math.isfinite(scaled):
            return None
        ms = round(scaled)
    if seconds < _SENML_RELATIVE_BELOW:
        ms += received_at_ms
    return ms


_BASE_KEYS = frozenset({"bn", "bt", "bu", "bv", "bs"})  # bver is checked on its own


@dataclass
class _SenmlBase:
    """A pack's base fields so far: they apply to a record and every later one, until changed."""

    name: str = ""
    time: int | float = 0
    unit: str | None = None
    value: int | float | None = None

    def update(self, record: dict[str, Any], index: int, problems: _Problems) -> None:
        """Take the record's base fields (bn, bt, bu, bv; bver and bs are checked only)."""
        if "bver" in record:
            version = record["bver"]
            if type(version) is not int or not 1 <= version <= 10:
                problems.add(
                    "unsupported_version", f"bver must be an integer from 1 to 10, not {version!r}"[:120], index
                )
        if _BASE_KEYS.isdisjoint(record):
            return  # most records carry none: skip the five lookups
        bn = _string_field(record, "bn", "invalid_metric_name", "base name", index, None, problems)
        bt = _number_field(record, "bt", "invalid_timestamp", "base time", index, None, problems)
        bu = _string_field(record, "bu", "invalid_unit", "base unit", index, None, problems)
        bv = _number_field(record, "bv", "invalid_value", "base value", index, None, problems)
        # An absent base field, or an invalid one (its problem is added), keeps the one before.
        self.name = self.name if bn is None else bn
        self.time = self.time if bt is None else bt
        self.unit = self.unit if bu is None else bu
        self.value = self.value if bv is None else bv
        _number_field(record, "bs", "invalid_value", "base sum", index, None, problems)


def _resolve_senml(
    records: list[Any], received_at_ms: int, limits: Limits, problems: _Problems
) -> tuple[list[Reading], int]:
    """Resolve a SenML pack (RFC 8428 section 4.6) into readings; returns (readings, ignored)."""
    if len(records) > limits.max_records:
        _raise_one("too_many_records", f"{len(records)} records; at most {limits.max_records} per request")

    readings: list[Reading] = []
    ignored = 0
    base = _SenmlBase()
    for index, record in enumerate(records):
        if type(record) is not dict:
            problems.add("invalid_record", f"each SenML record must be an object, not {_json_type(record)}", index)
            continue
        for key in record:
            if key.endswith("_"):
                problems.add("unsupported_field", f"must-understand field {key[:40]!r} is not supported", index)
        base.update(record, index, problems)

        value_keys = [key for key in ("v", "vs", "vb", "vd") if key in record]
        has_sum = "s" in record
        if not value_keys and not has_sum:
            if "n" in record or "t" in record or "u" in record:
                name = record.get("n")
                problems.add(
                    "missing_value",
                    "record has no value (v, vs, vb or vd) and no sum (s)",
                    index,
                    base.name + name if type(name) is str else None,
                )
            continue  # a record that only sets base fields yields nothing

        name, metric = _senml_name(record, base.name, index, problems)
        if len(value_keys) > 1:
            problems.add(
                "multiple_values", f"record has more than one value field ({', '.join(value_keys)})", index, metric
            )
            continue
        ts = _senml_time(record, base.time, index, metric, received_at_ms, limits, problems)
        unit = _senml_unit(record, base.unit, index, metric, problems)
        if has_sum:
            _number_field(record, "s", "invalid_value", "sum", index, metric, problems)
        if not value_keys:
            ignored += 1  # sum only
            continue
        if value_keys[0] == "vd":
            _string_field(record, "vd", "invalid_value", "data value", index, metric, problems)
            ignored += 1  # data values are accepted but not stored
            continue
        value = _senml_value(record, value_keys[0], base.value, index, metric, problems)
        if value is None:
            continue
        found = _value_problem(value, limits.max_string_bytes)
        if found is not None:
            problems.add(found[0], found[1], index, metric)
            continue
        if ts is not None:
            readings.append(Reading(name, unit, ts, value))
    return readings, ignored


def _senml_name(record: dict[str, Any], base_name: str, index: int, problems: _Problems) -> tuple[str, str | None]:
    """The record's metric name (bn + n) and the name its problems carry (None when it has none)."""
    n = _string_field(record, "n", "invalid_metric_name", "name", index, None, problems)
    name = base_name + (n or "")
    metric = name[:MAX_METRIC_CHARS] if name else None
    if not name:
        problems.add("invalid_metric_name", "record has no name (neither bn nor n)", index)
    else:
        why = _metric_problem(name)
        if why is not None:
            problems.add("invalid_metric_name", why, index, metric)
    return name, metric


def _senml_time(
    record: dict[str, Any],
    base_time: int | float,
    index: int,
    metric: str | None,
    received_at_ms: int,
    limits: Limits,
    problems: _Problems,
) -> int | None:
    """The record's time in ms (bt + t, relative to now when small), checked against the accepted range."""
    t = _number_field(record, "t", "invalid_timestamp", "time", index, metric, problems)
    ts = _senml_ms(base_time, t if t is not None else 0, received_at_ms)
    if ts is None:
        problems.add("invalid_timestamp", "time is out of range", index, metric)
    else:
        _check_range(ts, index, metric, received_at_ms, limits, problems)
    return ts


def _senml_unit(
    record: dict[str, Any], base_unit: str | None, index: int, metric: str | None, problems: _Problems
) -> str:
    """The record's unit (u, else bu, else none)."""
    unit: str | None = _string_field(record, "u", "invalid_unit", "unit", index, metric, problems)
    if unit is None:
        unit = base_unit or ""
    why = _unit_problem(unit)
    if why is not None:
        problems.add("invalid_unit", why, index, metric)
    return unit


def _senml_value(
    record: dict[str, Any],
    key: str,
    base_value: int | float | None,
    index: int,
    metric: str | None,
    problems: _Problems,
) -> Value | None:
    """The record's v (plus bv), vs or vb; None when it is not valid (the problem is recorded)."""
    if key == "v":
        v = _number_field(record, "v", "invalid_value", "numeric value", index, metric, problems)
        if v is None:
            return None
        try:
            return v if base_value is None else base_value + v
        except OverflowError:
            problems.add("number_out_of_range", "bv + v is out of range", index, metric)
            return None
    if key == "vs":
        return _string_field(record, "vs", "invalid_value", "string value", index, metric, problems)
    vb = record["vb"]
    if type(vb) is bool:
        return vb
    problems.add("invalid_value", f"vb (boolean value) must be true or false, not {_json_type(vb)}", index, metric)
    return None


# --------------------------------------------------------------------------- SenML XML


def _senml_xml_records(text: str) -> list[dict[str, Any]]:
    try:
        root = SafeElementTree.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise _malformed(
            "xml_forbidden",
            "the XML uses a DTD, entities or external references, which are not allowed",
            type(e).__name__,
        ) from None
    except ParseError as e:
        raise _malformed("invalid_xml", "the body is not well-formed XML", str(e)[:200]) from None
    if not isinstance(root, Element) or root.tag != _SENML_ROOT:
        raise _malformed("invalid_xml", f'the root element must be <sensml xmlns="{_SENML_NS[1:-1]}">')
    records: list[dict[str, Any]] = []
    for child in root:
        if child.tag != _SENML_RECORD:
            raise _malformed("invalid_xml", f"unexpected element {str(child.tag)[:80]!r} in <sensml>")
        records.append(_xml_record(child.attrib.items()))
    return records


def _xml_record(attributes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """XML attribute text -> the JSON field types; text that does not convert stays a str,
    so the shared resolver reports it as the field's type problem."""
    record: dict[str, Any] = {}
    for key, raw in attributes:
        text = raw.strip()
        converted: Any = raw
        if key in _XML_NUMBER_FIELDS:
            if _XML_INT.fullmatch(text):
                converted = int(text) if len(text) < 4000 else float(text)
            elif _XML_FLOAT.fullmatch(text):
                converted = float(text)
            elif text in _XML_NON_FINITE:
                converted = _XML_NON_FINITE[text]
        elif key in _XML_INT_FIELDS:
            if _XML_INT.fullmatch(text) and len(text) < 20:
                converted = int(text)
        elif key in _XML_BOOL_FIELDS:
            converted = _XML_BOOLS.get(text, raw)
        record[key] = converted
    return record
