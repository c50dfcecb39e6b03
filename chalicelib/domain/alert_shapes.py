"""The JSON of an alert rule, declared once: the limits, names and patterns, and the shapes built from them.

`RULE_INPUT` is what POST /v1/rules takes and what `alerts.validate_rule` checks (the route
validates with it, the OpenAPI document shows it); `RULE_PATCH` is a PATCH's body, whose
fields replace the rule's before the result is validated as a whole. The parts (`CONDITION`,
`SCOPE`, `DURATION`, `NOTIFY`, `OFFLINE`) also describe the rules the API answers with.

Kept apart from `alerts` (evaluation, alerts, notifications) so that the routes can declare
their operations when the app loads while the alerts modules load with their routes only.
Pure Python: no storage, no transport.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from email.utils import getaddresses
from typing import Any, Final

from chalicelib.domain.devices import ID_PATTERN, TYPE_PATTERN
from chalicelib.domain.rules import MAX_STRING_BYTES, MAX_UNIT_CHARS, METRIC_PATTERN, UNIT_PATTERN
from chalicelib.domain.schema import Arr, Bool, Int, JsonSchema, Member, Num, Obj, OneOf, Str, nullable
from chalicelib.errors import Problem

SEVERITIES: Final = ("critical", "major", "minor", "warning")
ALERT_STATES: Final = ("active", "cleared")
DEFAULT_SEVERITY: Final = "major"
DEFAULT_TOPIC: Final = "iotcloud.alerts"
KINDS: Final = ("threshold", "offline")
DEFAULT_KIND: Final = "threshold"
NUMERIC_OPS: Final = (">", ">=", "<", "<=", "==", "!=")
STRING_OPS: Final = ("equals", "not_equals", "contains", "not_contains")
BOOLEAN_OPS: Final = ("is",)
MAX_NAME: Final = 128
MAX_EMAILS: Final = 10
MIN_EMAIL_CHARS: Final = 3
MAX_EMAIL_CHARS: Final = 254  # RFC 5321's longest forward path, less its angle brackets
MAX_TOPIC_CHARS: Final = 255
MAX_CONDITION_NUMBER: Final = 1e126  # DynamoDB's largest magnitude (exclusive)
MAX_DURATION_SECONDS: Final = 7 * 86_400
MAX_DURATION_READINGS: Final = 10_000
MIN_OFFLINE_SECONDS: Final = 60  # the offline schedule runs every minute: shorter silences are not resolvable
MAX_OFFLINE_SECONDS: Final = 30 * 86_400
TOPIC_PATTERN: Final = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
RULE_ID_PATTERN: Final = re.compile(r"^rule-[0-9a-f]{20}$")
ALERT_ID_PATTERN: Final = re.compile(r"^\d{13}-[0-9a-f]{16}$")
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# A name: no control character, and 1 to MAX_NAME characters once the spaces around it are
# trimmed (it is stored trimmed). The lookahead refuses a control character anywhere, so `$`
# cannot match before a final newline.
_SPACE, _VISIBLE, _ANY = r"[^\S\x00-\x1f\x7f]", r"[^\s\x00-\x1f\x7f]", r"[^\x00-\x1f\x7f]"
NAME_PATTERN: Final = re.compile(
    rf"^(?![\s\S]*[\x00-\x1f\x7f]){_SPACE}*{_VISIBLE}(?:{_ANY}{{0,{MAX_NAME - 2}}}{_VISIBLE})?{_SPACE}*$"
)
UNWRITABLE: Final = "unknown or read-only field"  # what an unknown_field problem of a rule body says


def op_family(op: str) -> str:
    """What an operator compares: "number", "string" or "boolean"."""
    if op in NUMERIC_OPS:
        return "number"
    return "string" if op in STRING_OPS else "boolean"


# The Str and Obj subclasses below add no fields, so they need no @dataclass of their own (each
# costs the app's start about half a millisecond).


class Utf8Str(Str):
    """A string of at most MAX_STRING_BYTES in UTF-8 (so at most as many characters, as the document says)."""

    def _accepts(self, value: object) -> bool:
        if not super()._accepts(value):
            return False
        try:
            return len(str(value).encode()) <= MAX_STRING_BYTES
        except UnicodeEncodeError:  # a lone surrogate: not Unicode text
            return False


class EmailAddress(Str):
    """One mailbox (a display name may come with it): an address with a dotted domain, no control characters."""

    def _accepts(self, value: object) -> bool:
        if not super()._accepts(value) or CONTROL.search(str(value)):
            return False
        pairs = getaddresses([str(value)])
        if len(pairs) != 1:
            return False
        address = pairs[0][1]
        local, at, domain = address.rpartition("@")
        return bool(at and local and "." in domain and not domain.startswith(".") and " " not in address)

    def _doc(self) -> dict[str, Any]:
        return {**super()._doc(), "format": "email"}


_AT_MOST_BYTES = f"at most {MAX_STRING_BYTES} bytes in UTF-8"


def _condition(ops: tuple[str, ...], value: Str | Num | Bool) -> Obj:
    return Obj(members={"op": Member(Str(enum=ops), required=True), "value": Member(value, required=True)})


CONDITION = OneOf(
    options=(
        _condition(NUMERIC_OPS, Num(above=-MAX_CONDITION_NUMBER, below=MAX_CONDITION_NUMBER)),
        _condition(STRING_OPS, Utf8Str(max_length=MAX_STRING_BYTES, description=_AT_MOST_BYTES)),
        _condition(BOOLEAN_OPS, Bool()),
    ),
    description=f"numbers: {' '.join(NUMERIC_OPS)}; strings: {', '.join(STRING_OPS)}; booleans: "
    f"{', '.join(BOOLEAN_OPS)}",
)
SCOPE = Obj(
    members={
        "device": Member(Str(pattern=ID_PATTERN)),
        "type": Member(Str(pattern=TYPE_PATTERN)),
        "all": Member(Bool(enum=(True,))),
    },
    min_members=1,
    max_members=1,
    description='one device {"device": id}, a device type {"type": t}, or every device {"all": true}',
)
DURATION = Obj(
    members={
        "seconds": Member(Int(0, MAX_DURATION_SECONDS)),
        "readings": Member(Int(1, MAX_DURATION_READINGS)),
    },
    min_members=1,
    max_members=1,
    description="how long the condition must hold before the alert is raised (default: at once)",
)
NOTIFY = Obj(
    members={
        "emails": Member(Arr(EmailAddress(MIN_EMAIL_CHARS, MAX_EMAIL_CHARS), max_items=MAX_EMAILS)),
        "topic": Member(
            nullable(
                Str(
                    max_length=MAX_TOPIC_CHARS,
                    pattern=TOPIC_PATTERN,
                    description=f"WAMP topic (default {DEFAULT_TOPIC})",
                )
            )
        ),
    }
)
OFFLINE = Obj(members={"seconds": Member(Int(MIN_OFFLINE_SECONDS, MAX_OFFLINE_SECONDS), required=True)})


def _condition_problem(where: str) -> str:
    return (
        f'{where}: {{"op", "value"}}: {", ".join(NUMERIC_OPS)} compare with a finite number, '
        f"{', '.join(STRING_OPS)} with a string of {_AT_MOST_BYTES}, {', '.join(BOOLEAN_OPS)} with true or false"
    )


_METRIC_PROBLEM = "metric: a SenML metric name"
_OFFLINE_PROBLEM = f'offline: {{"seconds": {MIN_OFFLINE_SECONDS}..{MAX_OFFLINE_SECONDS}}}'
THRESHOLD_FIELDS: Final = ("metric", "unit", "condition", "duration", "clear")  # what an offline rule must not have


class RuleBody(Obj):
    """A rule's JSON: every member's shape, then what depends on the kind, which a schema cannot say.

    A threshold rule needs a metric and a condition, and a clear condition that compares the same
    kind of value; an offline rule needs `offline` and none of a threshold rule's fields. A field
    of the other kind is refused as such, whatever its value.
    """

    def problems(self, value: Mapping[str, object]) -> list[Problem]:
        found = super().problems(value)
        if value.get("kind", DEFAULT_KIND) == "offline":
            misplaced = {key: f"{key}: not used by offline rules" for key in THRESHOLD_FIELDS if key in value}
            missing = {} if "offline" in value else {"offline": _OFFLINE_PROBLEM}
        else:
            misplaced = {"offline": "offline: only for offline rules"} if "offline" in value else {}
            missing = {"metric": _METRIC_PROBLEM} if "metric" not in value else {}
            if "condition" not in value:
                missing["condition"] = "condition: required"
        found = [problem for problem in found if problem.field not in misplaced]
        found += [Problem("invalid_field", text, field=key) for key, text in {**misplaced, **missing}.items()]
        if not {"condition", "clear"} & {problem.field for problem in found} and _families_differ(value):
            found.append(
                Problem("invalid_field", "clear: must compare the same kind of value as condition", field="clear")
            )
        return found

    def _doc(self) -> JsonSchema:
        """One schema per kind, from the same members: what `problems` checks but the clear's family."""
        members = dict(self.members)
        threshold = {key: member for key, member in members.items() if key != "offline"}
        threshold["kind"] = replace(members["kind"], schema=Str(enum=(DEFAULT_KIND,), default=DEFAULT_KIND))
        for key in ("metric", "condition"):
            threshold[key] = replace(threshold[key], required=True)
        offline = {key: member for key, member in members.items() if key not in THRESHOLD_FIELDS}
        offline["kind"] = Member(Str(enum=("offline",)), required=True)
        offline["offline"] = replace(members["offline"], required=True)
        return OneOf(options=tuple(Obj(members=kind) for kind in (threshold, offline)))._doc()


def _families_differ(value: Mapping[str, Any]) -> bool:
    condition, clear = value.get("condition"), value.get("clear")
    return (
        isinstance(condition, dict) and isinstance(clear, dict) and op_family(condition["op"]) != op_family(clear["op"])
    )


_NAME = Member(
    Str(pattern=NAME_PATTERN, description="one line; the spaces around it are trimmed"),
    f"name: one line of 1-{MAX_NAME} characters",
)
_SCOPE = Member(SCOPE, 'scope: {"device": "<device id>"}, {"type": "<device type>"} or {"all": true}')
RULE_INPUT = RuleBody(
    members={
        "name": replace(_NAME, required=True),
        "kind": Member(Str(enum=KINDS, default=DEFAULT_KIND), f"kind: {' or '.join(KINDS)}"),
        "scope": replace(_SCOPE, required=True),
        "metric": Member(Str(pattern=METRIC_PATTERN, description="threshold rules"), _METRIC_PROBLEM),
        "unit": Member(
            nullable(Str(pattern=UNIT_PATTERN, description="only readings in this unit (default: any unit)")),
            f"unit: 1-{MAX_UNIT_CHARS} printable ASCII characters",
        ),
        "condition": Member(CONDITION, _condition_problem("condition")),
        "duration": Member(
            nullable(DURATION),
            f'duration: {{"seconds": 0..{MAX_DURATION_SECONDS}}} or {{"readings": 1..{MAX_DURATION_READINGS}}}',
        ),
        "clear": Member(
            nullable(replace(CONDITION, description="when an active alert clears (default: the negated condition)")),
            _condition_problem("clear"),
        ),
        "severity": Member(Str(enum=SEVERITIES, default=DEFAULT_SEVERITY), f"severity: one of {', '.join(SEVERITIES)}"),
        "notify": Member(
            nullable(NOTIFY),
            f'notify: {{"emails": up to {MAX_EMAILS} email addresses, "topic": a WAMP URI such as {DEFAULT_TOPIC}, '
            "or null}",
        ),
        "enabled": Member(Bool(default=True), "enabled: true or false"),
        "offline": Member(
            replace(OFFLINE, description="offline rules: raised when a device is silent that long"), _OFFLINE_PROBLEM
        ),
    },
    unknown=UNWRITABLE,
    description="threshold rules need metric and condition; offline rules need offline and none of "
    + ", ".join(THRESHOLD_FIELDS),
)
# A PATCH: given fields replace the rule's, null resets one to its default (a rule always has a
# name and a scope, so those two cannot be null). The result is validated as RULE_INPUT.
RULE_PATCH = Obj(
    members={
        key: member if key in ("name", "scope") else replace(member, schema=nullable(member.schema))
        for key, member in {**RULE_INPUT.members, "name": _NAME, "scope": _SCOPE}.items()
    },
    unknown=UNWRITABLE,
    description="given fields replace the rule's; null resets a field to its default",
)
