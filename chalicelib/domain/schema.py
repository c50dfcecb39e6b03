"""Declared shapes of JSON values: one declaration gives both the check and the OpenAPI schema.

A request body is declared once, from the domain's constants (`Obj` of `Member`s of `Str`,
`Int`, ...). `Obj.validate` checks a body against it and names every bad member with the
member's own words (a `Problem` with its `field`), and `doc()` is the OpenAPI 3.0 schema that
the document shows, so the document can never accept what the validation refuses. A response's
shape is declared the same way; the tests check the answers against the document.

Only what a check here enforces is written into a schema, and every check is written into it:
that is what keeps the two equal. Pure Python, no imports beyond the standard library: the
ingest function loads it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from chalicelib.errors import Problem, ValidationError

JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class Schema:
    """A JSON value's shape: `accepts` checks one, `doc` is its OpenAPI schema."""

    description: str = field(default="", kw_only=True)
    nullable: bool = field(default=False, kw_only=True)

    def accepts(self, value: object) -> bool:
        """Whether `value` has this shape (None only if nullable)."""
        return (value is None and self.nullable) or (value is not None and self._accepts(value))

    def _accepts(self, value: object) -> bool:
        return True

    def doc(self) -> JsonSchema:
        """The OpenAPI 3.0 schema object."""
        schema = self._doc()
        if self.description:
            schema["description"] = self.description
        if self.nullable:
            schema["nullable"] = True
            if "enum" in schema:  # OpenAPI 3.0.3: a nullable enum lists null among its values
                schema["enum"].append(None)
        return schema

    def _doc(self) -> JsonSchema:
        return {}

    def named(self) -> Iterator[Named]:
        """The named schemas this one refers to (the document's components), deepest first."""
        return iter(())


def _is_number(value: object) -> bool:
    # An int is finite however large (math.isfinite would overflow converting a huge one to float).
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


@dataclass(frozen=True)
class Anything(Schema):
    """Any JSON value, null included (its schema, `{}`, allows null too)."""

    def accepts(self, value: object) -> bool:
        return True


@dataclass(frozen=True)
class Str(Schema):
    """A string: a length (in characters), a regular expression it matches, or one of `enum`."""

    min_length: int = 0
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    enum: tuple[str, ...] = ()
    default: str | None = None

    def _accepts(self, value: object) -> bool:
        if not isinstance(value, str) or len(value) < self.min_length:
            return False
        if self.max_length is not None and len(value) > self.max_length:
            return False
        if self.enum and value not in self.enum:
            return False
        return self.pattern is None or self.pattern.search(value) is not None

    def _doc(self) -> JsonSchema:
        schema: JsonSchema = {"type": "string"}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern is not None:
            schema["pattern"] = self.pattern.pattern
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Num(Schema):
    """A finite number (`integer`: without a fraction), within bounds (`above`: exclusive)."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    integer: bool = False
    default: float | None = None

    def _accepts(self, value: object) -> bool:
        if not _is_number(value):
            return False
        number = cast(float, value)  # compared as is, not converted: an int may exceed every float
        if self.integer and not isinstance(value, int):
            return False
        return not (
            (self.minimum is not None and number < self.minimum)
            or (self.maximum is not None and number > self.maximum)
            or (self.above is not None and number <= self.above)
            or (self.below is not None and number >= self.below)
        )

    def _doc(self) -> JsonSchema:
        schema: JsonSchema = {"type": "integer" if self.integer else "number"}
        for key, bound in (("minimum", self.minimum), ("maximum", self.maximum)):
            if bound is not None:
                schema[key] = bound
        # OpenAPI 3.0 (JSON Schema draft 4): an exclusive bound is a flag beside the bound.
        if self.above is not None:
            schema.update(minimum=self.above, exclusiveMinimum=True)
        if self.below is not None:
            schema.update(maximum=self.below, exclusiveMaximum=True)
        if self.default is not None:
            schema["default"] = self.default
        return schema


def Int(minimum: float | None = None, maximum: float | None = None, **kw: Any) -> Num:  # noqa: N802
    """An integer within bounds."""
    return Num(minimum, maximum, integer=True, **kw)


@dataclass(frozen=True)
class Bool(Schema):
    """true or false (or only those in `enum`)."""

    enum: tuple[bool, ...] = ()
    default: bool | None = None

    def _accepts(self, value: object) -> bool:
        return isinstance(value, bool) and (not self.enum or value in self.enum)

    def _doc(self) -> JsonSchema:
        schema: JsonSchema = {"type": "boolean"}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Arr(Schema):
    """An array of `items`, at most `max_items` long."""

    items: Schema = field(default_factory=Anything)
    max_items: int | None = None

    def _accepts(self, value: object) -> bool:
        if not isinstance(value, list) or (self.max_items is not None and len(value) > self.max_items):
            return False
        return all(self.items.accepts(item) for item in value)

    def _doc(self) -> JsonSchema:
        schema: JsonSchema = {"type": "array", "items": self.items.doc()}
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema

    def named(self) -> Iterator[Named]:
        return self.items.named()


@dataclass(frozen=True)
class _Options(Schema):
    """A value checked against other schemas, `options`; the document lists them under `_keyword`.

    OneOf and AnyOf add no fields, so they are plain subclasses of this dataclass."""

    options: tuple[Schema, ...] = ()
    _keyword: ClassVar[str]

    def _doc(self) -> JsonSchema:
        return {self._keyword: [option.doc() for option in self.options]}

    def named(self) -> Iterator[Named]:
        for option in self.options:
            yield from option.named()


class OneOf(_Options):
    """Exactly one of `options` (they are declared so that at most one can match)."""

    _keyword = "oneOf"

    def _accepts(self, value: object) -> bool:
        return sum(option.accepts(value) for option in self.options) == 1

    def doc(self) -> JsonSchema:
        schema = super().doc()
        if schema.pop("nullable", False):  # OpenAPI 3.0.3: nullable only counts beside a type, so null is an option
            schema["oneOf"].append({"type": "object", "nullable": True, "enum": [None]})
        return schema


class AnyOf(_Options):
    """At least one of `options` (for options that may overlap, where OneOf would refuse a value both match)."""

    _keyword = "anyOf"

    def _accepts(self, value: object) -> bool:
        return any(option.accepts(value) for option in self.options)


@dataclass(frozen=True)
class Member:
    """One member of an object: its shape, and what a bad value's problem says (`problem`)."""

    schema: Schema
    problem: str = ""
    required: bool = False

    def message(self, name: str) -> str:
        return self.problem or f"{name} is not valid"


@dataclass(frozen=True)
class Obj(Schema):
    """An object of declared `members`; others are refused unless `values` declares their shape.

    `values`: the shape of undeclared members (a map of names to values), with `keys` the
    shape of their names and `max_members` how many there may be at most.
    """

    members: Mapping[str, Member] = field(default_factory=dict)
    values: Schema | None = None
    keys: Str | None = None
    min_members: int = 0
    max_members: int | None = None
    unknown: str = "unknown field"  # what an unknown member's problem says before its name
    null_is_absent: bool = False  # a declared member given as null counts as not given

    def problems(self, value: Mapping[str, object]) -> list[Problem]:
        """Every problem of an object body: unknown members, then bad or missing declared ones."""
        problems: list[Problem] = []
        count = len(value)
        if count < self.min_members or (self.max_members is not None and count > self.max_members):
            bounds = f"{self.min_members} to {self.max_members}" if self.max_members is not None else self.min_members
            problems.append(Problem("invalid_body", f"{bounds} members"))
        for key, item in value.items():
            if key in self.members:
                continue
            if self.values is None:
                problems.append(Problem("unknown_field", f"{self.unknown} {key!r}", field=str(key)))
            elif not (self.keys is None or self.keys.accepts(key)) or not self.values.accepts(item):
                problems.append(Problem("invalid_field", f"{key!r} is not valid here", field=str(key)))
        for name, member in self.members.items():
            given = name in value and not (self.null_is_absent and value[name] is None)
            if (given and not member.schema.accepts(value[name])) or (member.required and not given):
                problems.append(Problem("invalid_field", member.message(name), field=name))
        return problems

    def _accepts(self, value: object) -> bool:
        return isinstance(value, dict) and not self.problems(value)

    def validate(self, body: object, what: str = "the body") -> dict[str, Any]:
        """`body` if it has this shape; else ValidationError listing every problem."""
        if not isinstance(body, dict):
            raise ValidationError("the body must be a JSON object", [Problem("invalid_body", "expected an object")])
        if problems := self.problems(body):
            raise ValidationError(f"{len(problems)} problems in {what}", problems)
        return body

    def _doc(self) -> JsonSchema:
        schema: JsonSchema = {"type": "object"}
        if required := [name for name, member in self.members.items() if member.required]:
            schema["required"] = required
        if self.members:
            schema["properties"] = {name: self._member_doc(member) for name, member in self.members.items()}
        schema["additionalProperties"] = self.values.doc() if self.values is not None else False
        if self.keys is not None:
            schema["x-propertyNames"] = self.keys.doc()  # OpenAPI 3.0 has no propertyNames: said, not checked
        if self.min_members:
            schema["minProperties"] = self.min_members
        if self.max_members is not None:
            schema["maxProperties"] = self.max_members
        return schema

    def _member_doc(self, member: Member) -> JsonSchema:
        doc = member.schema.doc()
        if self.null_is_absent and not member.required and "$ref" not in doc:
            doc["nullable"] = True
        return doc

    def named(self) -> Iterator[Named]:
        for member in self.members.values():
            yield from member.schema.named()
        if self.values is not None:
            yield from self.values.named()


@dataclass(frozen=True)
class Named(Schema):
    """A schema the document shows once, under components/schemas/`name`, and refers to."""

    name: str = ""
    schema: Schema = field(default_factory=Anything)

    def _accepts(self, value: object) -> bool:
        return self.schema.accepts(value)

    def doc(self) -> JsonSchema:
        return {"$ref": f"#/components/schemas/{self.name}"}

    def named(self) -> Iterator[Named]:
        yield from self.schema.named()
        yield self


def nullable(schema: Schema) -> Schema:
    """`schema`, or null."""
    from dataclasses import replace

    return replace(schema, nullable=True)


def required(**schemas: Schema) -> dict[str, Member]:
    """Members that are always there (an answer's keys, a body's must-haves), by name."""
    return {name: Member(schema, required=True) for name, schema in schemas.items()}


def optional(**schemas: Schema) -> dict[str, Member]:
    """Members that may be left out, by name."""
    return {name: Member(schema) for name, schema in schemas.items()}


def record(**schemas: Schema) -> Obj:
    """An object of these members, each always there (an answer that writes null rather than leave one out)."""
    return Obj(members=required(**schemas))
