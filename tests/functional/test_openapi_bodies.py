"""The request bodies' schemas in the served document are the validation's, and never stricter than the parser.

Each validated body is declared once (`domain.schema`): the route validates with the declaration
and the document shows its `doc()`. These properties draw JSON values from the declared shapes
(valid members from their patterns, bounds and enums, then wrong types, unknown members and any
JSON at all) and check that the declaration's `accepts` and an OpenAPI 3.0 validator of the
served document's schema answer alike. The telemetry bodies are parsed by hand; for them the
document must accept every payload the parser stores.

`x-propertyNames` (an object's key rule: OpenAPI 3.0 has no propertyNames) is checked here as
propertyNames, so the key rules are held to the validation too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import validators
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from app import app
from chalicelib.api.commands import POST_COMMAND_RESULT
from chalicelib.api.routing import spec_of
from chalicelib.domain import schema as shapes
from chalicelib.domain.parsing import parse_payload
from chalicelib.domain.payload_shapes import PLAIN, RECORD, SENML_PACK, SENML_RECORD, TELEMETRY_JSON
from chalicelib.domain.readings import Limits
from chalicelib.domain.rules import METRIC_PATTERN
from chalicelib.errors import IotCloudError
from tests.functional.helpers import T0, body_of

DOCUMENT_URI = "urn:iotcloud:openapi"
VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "senml"
SENML_JSON = "application/senml+json"
JSON_MEDIA = "application/json"
# The vocabulary's own shapes: for these, `accepts` is exactly what `doc()` says. A subclass may add
# a check the document states only in words (StorableNumber's magnitude, Utf8Str, RuleBody's kinds).
EXACT = (shapes.Str, shapes.Num, shapes.Bool, shapes.Arr, shapes.OneOf, shapes.AnyOf, shapes.Obj, shapes.Named,
         shapes.Anything)  # fmt: skip


def _property_names(validator: Any, names: Any, instance: Any, _schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "object"):
        for key in instance:
            yield from validator.descend(key, names)


Validator = validators.extend(OAS30Validator, {"x-propertyNames": _property_names})


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from chalice.test import Client

    with Client(app) as client:
        answer = client.http.get("/v1/openapi.json")
    assert answer.status_code == 200
    return body_of(answer)  # type: ignore[no-any-return]


def body_validator(document: dict[str, Any], path: str, method: str, media: str) -> Any:
    """A validator of the documented request body, its $refs resolved against the served document."""
    parts = ("paths", path, method.lower(), "requestBody", "content", media, "schema")
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)
    registry = Registry().with_resource(DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT4))
    return Validator({"$ref": f"{DOCUMENT_URI}#/{pointer}"}, registry=registry)


def checked_bodies() -> list[tuple[str, str, str, shapes.Schema]]:
    """(path, method, media, schema) of each body checked against its declaration before the view uses it."""
    found = []
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            spec = spec_of(entry.view_function)
            op = spec.op if spec is not None else None
            if op is None or op.body is None:
                continue
            # POST .../result is checked by its view (after the command is found) with the same declaration.
            if op.body.validated or op is POST_COMMAND_RESULT:
                found += [(path, method, media, schema) for media, schema in op.body.content.items()]
    return found


BODIES = checked_bodies()


def exact(schema: shapes.Schema) -> bool:
    """Whether every shape in `schema` is the vocabulary's own (so `accepts` is its document, both ways)."""
    if type(schema) not in EXACT:
        return False
    children: list[shapes.Schema] = []
    if isinstance(schema, shapes.Named):
        children = [schema.schema]
    elif isinstance(schema, shapes.Arr):
        children = [schema.items]
    elif isinstance(schema, shapes.OneOf | shapes.AnyOf):
        children = list(schema.options)
    elif isinstance(schema, shapes.Obj):
        children = [m.schema for m in schema.members.values()] + [s for s in (schema.values, schema.keys) if s]
    return all(exact(child) for child in children)


# --------------------------------------------------------------------------- values from a declaration

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
ANY_JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def _strings(schema: shapes.Str) -> st.SearchStrategy[str]:
    """Strings of the declared shape, the same with one character too many, and any string."""
    if schema.enum:
        return st.sampled_from(schema.enum) | st.text(max_size=8)
    if schema.pattern is not None:
        valid = st.from_regex(schema.pattern, fullmatch=True)
    else:
        valid = st.text(min_size=schema.min_length, max_size=min(schema.max_length or 20, 40))
    edges = [
        st.text(min_size=n, max_size=n, alphabet="ab")
        for n in (schema.min_length - 1, schema.max_length, (schema.max_length or -2) + 1)
        if n is not None and 0 <= n <= 2000
    ]
    near_misses = st.builds(_insert, valid, st.integers(min_value=0), st.sampled_from(" .#_-~:/\n\x00é"))
    return st.one_of(valid, near_misses, st.text(max_size=8), *edges)


def _insert(text: str, at: int, char: str) -> str:
    at %= len(text) + 1
    return text[:at] + char + text[at:]


def _numbers(schema: shapes.Num) -> st.SearchStrategy[float]:
    low = next((b for b in (schema.minimum, schema.above) if b is not None), None)
    high = next((b for b in (schema.maximum, schema.below) if b is not None), None)
    bounds = [b for b in (low, high) if b is not None]
    edges = [st.sampled_from([b + d for b in bounds for d in (-1, -0.5, 0, 0.5, 1)])] if bounds else []
    ints = st.integers(
        min_value=None if low is None else math.floor(low), max_value=None if high is None else math.ceil(high)
    )
    floats = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    return st.one_of(ints, floats, *edges, st.sampled_from([0, -0.0, 1e-200, 2**64, 1.0]))


@dataclass(frozen=True)
class Drawer:
    """Draws JSON values biased to a declaration: valid ones, near misses and (when `wild`) any JSON.

    `members`: a strategy for the members of that name, wherever they are (telemetry's times).
    """

    wild: bool = True
    members: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)

    def values(self, schema: shapes.Schema) -> st.SearchStrategy[Any]:
        shaped = self._shaped(schema)
        if schema.nullable:
            shaped = st.one_of(st.none(), shaped)
        return st.one_of(shaped, ANY_JSON) if self.wild else shaped

    def _shaped(self, schema: shapes.Schema) -> st.SearchStrategy[Any]:  # noqa: PLR0911 (one case per shape)
        if isinstance(schema, shapes.Named):
            return self.values(schema.schema)
        if isinstance(schema, shapes.Str):
            return _strings(schema)
        if isinstance(schema, shapes.Num):
            return _numbers(schema)
        if isinstance(schema, shapes.Bool):
            return st.booleans()
        if isinstance(schema, shapes.Arr):
            return st.lists(self.values(schema.items), max_size=min(schema.max_items or 4, 4))
        if isinstance(schema, shapes.OneOf | shapes.AnyOf):
            return st.one_of(*(self.values(option) for option in schema.options))
        if isinstance(schema, shapes.Obj):
            return self._objects(schema)
        return ANY_JSON

    def _objects(self, schema: shapes.Obj) -> st.SearchStrategy[dict[str, Any]]:
        def member(name: str, m: shapes.Member) -> st.SearchStrategy[Any]:
            drawn = self.members[name] if name in self.members else self.values(m.schema)
            return st.one_of(st.none(), drawn) if schema.null_is_absent else drawn

        required = {name: member(name, m) for name, m in schema.members.items() if m.required}
        optional = {name: member(name, m) for name, m in schema.members.items() if not m.required}
        declared = st.fixed_dictionaries(required, optional=optional)
        keys = _strings(schema.keys) if schema.keys is not None else st.text(max_size=8)
        extra_values = self.values(schema.values) if schema.values is not None else ANY_JSON
        extra = st.dictionaries(keys, extra_values, max_size=3) if self.wild or schema.values else st.just({})
        return st.builds(lambda known, more: {**more, **known}, declared, extra | st.just({}))


def values_of(schema: shapes.Schema) -> st.SearchStrategy[Any]:
    """JSON values biased to `schema`: valid ones, near misses, and any JSON."""
    return Drawer().values(schema)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize(
    ("path", "method", "media", "declared"), BODIES, ids=[f"{m} {p} {media}" for p, m, media, _ in BODIES]
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_document_and_the_validation_agree_on_every_body(document, path, method, media, declared, data):
    validator = body_validator(document, path, method, media)
    body = data.draw(values_of(declared), label="body")
    documented = validator.is_valid(body)
    accepted = declared.accepts(body)
    if exact(declared):
        assert documented == accepted, (body, [e.message for e in validator.iter_errors(body)])
    else:  # the declaration's own checks go further than the document can say; never less far
        assert documented or not accepted, (body, [e.message for e in validator.iter_errors(body)])


def test_the_bodies_under_test_are_the_ones_declared():
    names = {(path, method) for path, method, _, _ in BODIES}
    assert {("/v1/devices", "POST"), ("/v1/devices/{device_id}/commands", "POST")} <= names
    assert ("/v1/commands/{command_id}/result", "POST") in names


# --------------------------------------------------------------------------- telemetry: never stricter


def parser_stores(body: Any, media: str, now: int) -> bool:
    """Whether the parser accepts `body` (as JSON of `media`) for storing."""
    try:
        parse_payload(json.dumps(body).encode(), media, now, Limits())
    except (IotCloudError, UnicodeEncodeError):
        return False
    return True


def accepted_corpus() -> list[tuple[str, Any]]:
    """Payloads the existing tests post successfully: RFC 8428's examples and every JSON shape."""
    senml = [json.loads(p.read_text()) for p in sorted(VECTORS.glob("ex*.gen.json")) if ".resolved." not in p.name]
    t = T0
    plain: list[Any] = [
        {"temp": 21.5, "door": "open", "on": True, "count": 3},
        {"ts": t, "temp": 1},
        {"ts": t / 1000, "temp": 1},
        {"ts": "2025-11-25T09:00:00Z", "temp": 1},
        {"ts": "2025-11-25T10:00:00.5+01:00", "temp": 1},
        {"ts": t, "values": {"temp": 21.5, "on": True, "label": "x"}},
        {"values": {"urn:dev:ow:1/temp_2.c": -40, "a" * 128: "é" * 512}},
        [{"ts": t, "values": {"t": 1}}, {"t": 2}, {}],
        [{"temp": 1}, {"ts": t + 1, "values": {"temp": 2}}],
        {"x" + str(i): i for i in range(100)},
    ]
    cases = [(SENML_JSON, pack) for pack in senml] + [(JSON_MEDIA, pack) for pack in senml]
    return cases + [(JSON_MEDIA, body) for body in plain]


CORPUS = accepted_corpus()


@pytest.mark.parametrize(("media", "body"), CORPUS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CORPUS)])
def test_every_payload_the_parser_stores_is_a_documented_body(document, media, body):
    assert parser_stores(body, media, RECEIVED)
    for path in ("/v1/telemetry", "/api/v1/{token}/telemetry"):
        errors = [e.message for e in body_validator(document, path, "POST", media).iter_errors(body)]
        assert errors == [], (path, body)


RECEIVED = T0 + 60_000
# Times the parser may store (receive time T0 + 1 min): epoch s and ms, ISO 8601 with a zone, SenML's.
_PAST_MS = st.integers(min_value=Limits().min_ts_ms - 1000, max_value=RECEIVED + 300_000)
TIMES = st.one_of(
    _PAST_MS,
    _PAST_MS.map(lambda ms: ms / 1000),
    _PAST_MS.map(lambda ms: ms // 1000),
    st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2025, 11, 25), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
)
TELEMETRY = Drawer(
    wild=False,
    members={"ts": TIMES, "bt": st.one_of(TIMES, st.floats(-1e6, 1e6)), "t": st.floats(-1e6, 1e6) | st.integers(-9, 9)},
)
_VALUE_FIELDS = ("v", "vs", "vb", "vd", "s")


def _one_value(record: dict[str, Any], name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in record.items() if k not in _VALUE_FIELDS}, "n": name, **value}


# SenML records with a name and one value field, the rest of their fields drawn (packs the parser often stores).
_SENML_VALUE = st.one_of(
    st.fixed_dictionaries({"v": st.floats(allow_nan=False, allow_infinity=False)}),
    st.fixed_dictionaries({"vs": st.text(max_size=8)}),
    st.fixed_dictionaries({"vb": st.booleans()}),
)
SENML_STORABLE = st.lists(
    st.builds(_one_value, TELEMETRY.values(SENML_RECORD), st.from_regex(METRIC_PATTERN, fullmatch=True), _SENML_VALUE),
    min_size=1,
    max_size=4,
)
BATCH = shapes.Arr(items=shapes.OneOf(options=(PLAIN, RECORD.schema)), max_items=4)  # drawn apart: more batches


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_drawn_payload_the_parser_stores_is_documented(document, data):
    media, declared = data.draw(
        st.sampled_from(
            [(JSON_MEDIA, TELEMETRY_JSON), (JSON_MEDIA, BATCH), (SENML_JSON, SENML_PACK), (SENML_JSON, None)]
        )
    )
    body = data.draw(SENML_STORABLE if declared is None else TELEMETRY.values(declared), label="body")
    if parser_stores(body, media, RECEIVED):
        assert body_validator(document, "/v1/telemetry", "POST", media).is_valid(body), body


def test_the_metric_name_rule_is_in_the_document(document):
    keys = document["components"]["schemas"]["Record"]["properties"]["values"]["x-propertyNames"]
    assert re.compile(keys["pattern"]).match("a" * 128) and not re.compile(keys["pattern"]).match("a" * 129)
