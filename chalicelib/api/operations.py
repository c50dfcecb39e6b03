"""What a route declares about itself for its callers: the operation of the OpenAPI document.

A route's `Op` (given to `routing.route(doc=...)`) names the operation, its path parameters, its
body and its answers. The route enforces the same declaration: it checks the path parameters
(an id that cannot exist is that resource's 404) and validates a JSON body against its schema
before the view runs, so the document (generated from the declaration by
`api.openapi_doc.document`) and the validation cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.schema import Named, Obj, Schema
from chalicelib.errors import IotCloudError

JsonSchema = dict[str, Any]
JSON = "application/json"


@dataclass(frozen=True)
class PathParam:
    """A path parameter: a value outside `pattern` cannot name anything, so it is `not_found` (404)."""

    name: str
    pattern: re.Pattern[str] | None = None
    not_found: Callable[[str], IotCloudError] | None = None
    description: str = ""

    def check(self, value: str) -> None:
        """Raise the resource's not-found error for a value that cannot exist."""
        if self.pattern is not None and not self.pattern.match(value) and self.not_found is not None:
            raise self.not_found(f"no {self.name.removesuffix('_id')} {value!r}")

    def openapi(self) -> JsonSchema:
        schema: JsonSchema = {"type": "string"}
        if self.pattern is not None:
            schema["pattern"] = self.pattern.pattern
        doc: JsonSchema = {"name": self.name, "in": "path", "required": True, "schema": schema}
        if self.description:
            doc["description"] = self.description
        return doc


@dataclass(frozen=True)
class Body:
    """A request body: its schema per media type.

    `validated`: the route parses the JSON and validates it against the (single, `Obj`) schema
    before the view runs, and hands the view the object as `body`. Otherwise the view parses
    the body itself (telemetry: SenML's rules are not a schema; its schemas are built from the
    same limits and patterns the parser reads).
    """

    content: Mapping[str, Schema]
    validated: bool = True
    what: str = "the body"  # how a validation error names the body ("3 problems in the device")

    @property
    def schema(self) -> Obj:
        (schema,) = self.content.values()
        inner = schema.schema if isinstance(schema, Named) else schema
        if not isinstance(inner, Obj):
            raise TypeError("a validated body is one JSON object schema")
        return inner


def json_body_of(schema: Schema, what: str = "the body") -> Body:
    """A validated JSON object body."""
    return Body({JSON: schema}, what=what)


@dataclass(frozen=True)
class Answer:
    """One documented answer: a description, and the body's schema per media type."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: tuple[str, ...] = ()  # response header names (documented as strings)


def ok(schema: Schema, description: str = "OK") -> Answer:
    """A JSON answer of `schema`."""
    return Answer(description, {JSON: schema})


Answers = Mapping[int, Answer | str]  # status -> answer; a str: an error answer with that description


@dataclass(frozen=True)
class Header:
    """A documented request header."""

    name: str
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Op:
    """An operation of the document: what the route's callers are told, and what it checks."""

    id: str
    summary: str
    answers: Answers = field(default_factory=dict)
    description: str = ""
    path: tuple[PathParam, ...] = ()
    body: Body | None = None
    headers: tuple[Header, ...] = ()
    tags: tuple[str, ...] = ()
    # The security requirements, when the auth mode's are not the caller's (the ThingsBoard path
    # takes the device token in the URL: no scheme, so `()`). None: those of the route's auth mode.
    security: tuple[Mapping[str, list[str]], ...] | None = None
