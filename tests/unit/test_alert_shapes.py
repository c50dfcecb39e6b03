"""A rule's declared JSON (domain/alert_shapes): the documented schema refuses what validate_rule refuses."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator

from chalicelib.domain.alert_shapes import MAX_NAME, RULE_INPUT, RULE_PATCH
from chalicelib.domain.alerts import validate_rule
from chalicelib.domain.schema import Num, OneOf, Str, nullable
from chalicelib.errors import ValidationError

THRESHOLD = {"name": "n", "scope": {"all": True}, "metric": "temp", "condition": {"op": ">", "value": 1}}
OFFLINE = {"name": "n", "kind": "offline", "scope": {"all": True}, "offline": {"seconds": 600}}


def valid(body: Any) -> bool:
    try:
        validate_rule(body, rule_id="rule-" + "0" * 20, created_at=0, updated_at=0)
    except ValidationError:
        return False
    return True


def documented(body: Any) -> bool:
    return not list(OAS30Validator(RULE_INPUT.doc()).iter_errors(body))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"unit": None, "duration": None, "clear": None, "notify": None},
        {"name": " " * 5 + "x" * MAX_NAME + " "},  # stored trimmed
        {"name": "x" * (MAX_NAME + 1)},
        {"name": "a\n"},
        {"name": " \u00a0 "},
        {"condition": {"op": ">", "value": 10**400}},
        {"condition": {"op": "equals", "value": 1}},
        {"condition": {"op": "is", "value": True}, "clear": {"op": "is", "value": True}},
        {"condition": {"op": "contains", "value": "é" * 600}},  # 1200 bytes
        {"duration": {"seconds": 10**400}},
        {"duration": {"seconds": 0}},
        {"duration": {"seconds": 5, "readings": 2}},
        {"duration": {}},
        {"scope": {"device": "fz-1"}},
        {"scope": {"device": "fz-1", "all": True}},
        {"scope": {"all": False}},
        {"notify": {"emails": ["Ops <ops@example.com>"], "topic": None}},
        {"notify": {"emails": ["not an address"]}},
        {"notify": {"topic": "Not A URI"}},
        {"kind": "anomaly"},
        {"colour": "red"},
    ],
)
def test_the_schema_accepts_what_validate_rule_accepts(fields):
    body = {**THRESHOLD, **fields}
    assert RULE_INPUT.accepts(body) == valid(body)
    if valid(body):
        assert documented(body)


@pytest.mark.parametrize(
    "body",
    [
        {**THRESHOLD, "name": "x" * (MAX_NAME + 1)},
        {**THRESHOLD, "condition": {"op": ">", "value": "7"}},
        {**THRESHOLD, "condition": {"op": "~", "value": 1}},
        {**THRESHOLD, "duration": {"seconds": -1}},
        {**THRESHOLD, "scope": {}},
        {**THRESHOLD, "severity": "fatal"},
        {**THRESHOLD, "unit": ""},
        {**OFFLINE, "offline": {"seconds": 30}},
        {**THRESHOLD, "id": "rule-x"},
    ],
)
def test_the_document_refuses_a_field_validate_rule_refuses(body):
    assert not valid(body) and not documented(body)


def test_what_depends_on_the_kind_is_checked_after_the_schema_and_documented_per_kind():
    assert RULE_INPUT.accepts(OFFLINE) and valid(OFFLINE) and documented(OFFLINE) and documented(THRESHOLD)
    for body in (
        {**OFFLINE, "metric": "temp"},
        {**THRESHOLD, "offline": {"seconds": 600}},
        {"name": "n", "scope": {"all": True}},
    ):
        assert not documented(body) and not RULE_INPUT.accepts(body) and not valid(body)
    # The one kind rule the document cannot say: clear compares the same kind of value as condition.
    mixed = {**THRESHOLD, "clear": {"op": "equals", "value": "x"}}
    assert documented(mixed) and [p.field for p in RULE_INPUT.problems(mixed)] == ["clear"]


def test_a_patch_may_reset_fields_but_not_the_name_or_scope():
    patch = RULE_PATCH.doc()
    assert "required" not in patch and patch["additionalProperties"] is False
    nullable_fields = {name for name, member in patch["properties"].items() if member.get("nullable")}
    assert nullable_fields == set(RULE_INPUT.members) - {"name", "scope", "condition", "clear"}
    for name in ("condition", "clear"):  # a nullable oneOf: null is one of its options
        assert {"type": "object", "nullable": True, "enum": [None]} in patch["properties"][name]["oneOf"]
    validator = OAS30Validator(patch)
    assert not list(validator.iter_errors({"clear": None, "kind": None, "condition": None}))
    assert list(validator.iter_errors({"name": None})) and list(validator.iter_errors({"scope": None}))


def test_a_nullable_one_of_documents_null_as_an_option():
    schema = nullable(OneOf(options=(Str(), Num())))
    validator = OAS30Validator(schema.doc())
    for value in (None, "a", 1.5):
        assert schema.accepts(value) and not list(validator.iter_errors(value))
    assert not schema.accepts(True) and list(validator.iter_errors(True))
    choice = nullable(Str(enum=("a",)))  # a nullable enum lists null
    assert choice.doc()["enum"] == ["a", None] and not list(OAS30Validator(choice.doc()).iter_errors(None))


def test_integers_beyond_every_float_are_compared_not_converted():
    assert Num().accepts(10**400) and not Num(maximum=5).accepts(10**400) and not Num(minimum=0).accepts(-(10**400))
