"""One rule, one source: the parser, the query parameters, alert rules and the document agree."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.parsing import parse_payload
from chalicelib.domain.readings import Limits
from chalicelib.domain.rules import MAX_METRIC_CHARS, METRIC_PATTERN
from chalicelib.errors import ValidationError

NAMES = ["t", "a" * MAX_METRIC_CHARS, "a" * (MAX_METRIC_CHARS + 1), "-x", "x y", "urn:dev:ow:1/temp_2.c", "", "é"]
T0 = 1_764_061_200_000


def parser_accepts(name: str) -> bool:
    body = json.dumps({"ts": T0, "values": {name: 1}}).encode()
    try:
        parse_payload(body, "application/json", T0, Limits())
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_the_parser_and_the_query_rule_agree_on_metric_names(name: str) -> None:
    assert parser_accepts(name) == bool(METRIC_PATTERN.match(name))


def _metric_schemas(node: object) -> list[dict[str, object]]:
    """Every schema the document gives a `metric` property (readings, rules)."""
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        metric = node.get("properties", {}).get("metric") if isinstance(node.get("properties"), dict) else None
        if isinstance(metric, dict):
            found.append(metric)
        for value in node.values():
            found += _metric_schemas(value)
    elif isinstance(node, list):
        for value in node:
            found += _metric_schemas(value)
    return found


def test_the_document_states_the_metric_length() -> None:
    from app import app
    from chalicelib.api.openapi_doc import document

    generated = document(app.routes)
    limits = [schema.get("maxLength") for schema in _metric_schemas(generated) if "maxLength" in schema]
    assert len(limits) >= 2 and set(limits) == {MAX_METRIC_CHARS}, limits
