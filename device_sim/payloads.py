"""Encode records into the four wire formats, and build deliberately invalid bodies.

* ``json`` / ``thingsboard``: ``[{"ts": <epoch ms>, "values": {metric: value}}]``
  (no units; the server stores unit "").
* ``senml-json``: an RFC 8428 pack, one SenML record per reading, with absolute
  ``t`` in epoch seconds (ms precision), ``n`` the metric, ``u`` the unit if any and
  ``v`` / ``vs`` / ``vb`` by value type. No base fields are used.
* ``senml-xml``: the same records as ``<senml>`` elements inside
  ``<sensml xmlns="urn:ietf:params:xml:ns:senml">``.
"""

from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from device_sim.model import FORMATS, Record, Sample, Value

SENML_NS = "urn:ietf:params:xml:ns:senml"
CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "thingsboard": "application/json",
    "senml-json": "application/senml+json",
    "senml-xml": "application/senml+xml",
}
MALFORMED_KINDS: tuple[str, ...] = ("truncated", "non_finite", "bad_metric")
FAULT_METRIC = "sim_fault"


@dataclass(frozen=True, slots=True)
class Body:
    content_type: str
    content: bytes


def ms_to_seconds(ts_ms: int) -> float:
    """Epoch ms -> epoch seconds float; its shortest repr has at most 3 decimals."""
    return ts_ms / 1000


def json_items(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [{"ts": r.ts_ms, "values": {s.metric: s.value for s in r.samples}} for r in records]


def senml_records(records: Sequence[Record]) -> list[dict[str, Any]]:
    pack: list[dict[str, Any]] = []
    for record in records:
        t = ms_to_seconds(record.ts_ms)
        for sample in record.samples:
            entry: dict[str, Any] = {"n": sample.metric}
            if sample.unit:
                entry["u"] = sample.unit
            entry["t"] = t
            entry[senml_value_key(sample.value)] = sample.value
            pack.append(entry)
    return pack


def senml_value_key(value: Value) -> str:
    if isinstance(value, bool):
        return "vb"
    if isinstance(value, str):
        return "vs"
    return "v"


def _xml_attr(value: Value | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        return repr(value)
    return str(value)


def senml_xml(entries: Sequence[dict[str, Any]]) -> bytes:
    root = ET.Element("sensml", {"xmlns": SENML_NS})
    for entry in entries:
        ET.SubElement(root, "senml", {k: _xml_attr(v) for k, v in entry.items()})
    # ElementTree escapes &, <, >, " and control whitespace inside attribute values.
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


JSON_FORMATS = ("json", "thingsboard", "senml-json")  # the formats json.dumps writes


def encode(fmt: str, records: Sequence[Record]) -> Body:
    """Encode a batch of records as the request body for ``fmt``."""
    if fmt in JSON_FORMATS:
        return _json_body(fmt, records, allow_nan=False)
    if fmt == "senml-xml":
        return Body(CONTENT_TYPES[fmt], senml_xml(senml_records(records)))
    raise ValueError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def _encode_loose(fmt: str, records: Sequence[Record]) -> Body:
    """Like encode() but lets NaN through (json.dumps writes it as a bare ``NaN``)."""
    if fmt in JSON_FORMATS:
        return _json_body(fmt, records, allow_nan=True)
    return encode(fmt, records)


def _json_body(fmt: str, records: Sequence[Record], *, allow_nan: bool) -> Body:
    """A JSON format's body (json and thingsboard: plain items; senml-json: SenML records)."""
    doc = senml_records(records) if fmt == "senml-json" else json_items(records)
    text = json.dumps(doc, separators=(",", ":"), allow_nan=allow_nan)
    return Body(CONTENT_TYPES[fmt], text.encode("utf-8"))


def malformed(fmt: str, records: Sequence[Record], kind: str) -> Body:
    """A body the server must refuse (400 or 422).

    It never carries the batch's real readings in a parseable form, so even a server
    that wrongly accepted it would not change the stored data of real metrics:

    * ``truncated``: the real encoded body cut in half (syntax error -> 400);
    * ``non_finite``: one record with metric ``sim_fault`` = NaN (400 or 422);
    * ``bad_metric``: one record with an invalid metric name (422).
    """
    ts = records[0].ts_ms if records else 0
    if kind == "truncated":
        body = encode(fmt, records)
        cut = max(1, len(body.content) // 2)
        return Body(body.content_type, body.content[:cut])
    if kind == "non_finite":
        return _encode_loose(fmt, [Record(ts, (Sample(FAULT_METRIC, "", math.nan),))])
    if kind == "bad_metric":
        return encode(fmt, [Record(ts, (Sample("bad metric!", "", 1),))])
    raise ValueError(f"unknown malformed kind {kind!r}")


def pick_malformed_kind(rng: random.Random) -> str:
    return rng.choice(MALFORMED_KINDS)


def reading_count(records: Sequence[Record]) -> int:
    return sum(len(r.samples) for r in records)
