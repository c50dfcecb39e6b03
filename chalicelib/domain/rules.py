"""The naming rules and limits every layer reads: parsing, request validation, the OpenAPI
document and the dashboard's templates. Change one here and all of them follow.

Metric names follow SenML (RFC 8428): a letter or digit, then letters, digits and `-:./_`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from chalicelib.errors import Problem, ValidationError

MAX_METRIC_CHARS: Final = 128
_METRIC_FIRST = "[A-Za-z0-9]"
_METRIC_REST = r"[A-Za-z0-9\-:./_]"
METRIC_CHARACTERS: Final = f"{_METRIC_FIRST}{_METRIC_REST}*"  # the characters, any length
# Characters and length in one: what a query parameter or a rule's metric must match.
METRIC_PATTERN: Final = re.compile(f"^{_METRIC_FIRST}{_METRIC_REST}{{0,{MAX_METRIC_CHARS - 1}}}$")

# What may follow a SenML base name: a record's metric is bn + n, so n continues a name.
METRIC_TAIL_CHARACTERS: Final = f"{_METRIC_REST}*"

MAX_UNIT_CHARS: Final = 32
UNIT_CHARACTERS: Final = rf"[!-~]{{1,{MAX_UNIT_CHARS}}}"  # printable ASCII, no space or control characters
UNIT_PATTERN: Final = re.compile(rf"^{UNIT_CHARACTERS}$")

MAX_STRING_BYTES: Final = 1024  # a string value, UTF-8 encoded

MAX_ID_CHARS: Final = 64  # a device id

# Telemetry's time and SenML rules, as the parser (domain/parsing, domain/timeparse) applies them,
# for the documented payload schemas (domain/payload_shapes).
MAX_TIME_CHARS: Final = 64  # an ISO 8601 time: longer strings are not read as times
SENML_VERSIONS: Final = (1, 10)  # the lowest and highest bver a SenML record may give
SENML_MUST_UNDERSTAND: Final = "_"  # a SenML field name ending so is one the parser must refuse

MAX_PAGE: Final = 10_000  # readings on one page of a telemetry query


# --- JSON request bodies (devices, rules, commands)


def json_object(body: object) -> dict[str, Any]:
    """`body` if it is a JSON object; otherwise ValidationError (`invalid_body`)."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", [Problem("invalid_body", "expected an object")])
    return body


def unknown_fields(body: Mapping[str, object], allowed: Collection[str], what: str = "unknown field") -> list[Problem]:
    """An `unknown_field` problem for each member of `body` outside `allowed`."""
    return [Problem("unknown_field", f"{what} {key!r}", field=str(key)) for key in body if key not in allowed]
