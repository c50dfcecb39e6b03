"""Alert rules and their evaluation: pure code, no storage, no transport.

A rule watches one metric of the devices in its scope (one device, a device type, or
all) and raises an alert when its condition has held long enough; the alert clears
when the clear condition holds (hysteresis), by default the negation of the condition.
An `offline` rule raises when a device has been silent for a while; a schedule
evaluates it.

Evaluation is forward-only in time per (rule, device): the state remembers the newest
reading time it evaluated, and a reading at or before it (a late or duplicate reading)
is ignored. A late reading therefore cannot re-open or re-decide the past; a batch is
sorted by time before it is evaluated, so order within a batch does not matter. There
is at most one active alert per (rule, device): while one is active, the condition
holding again raises nothing.

Alert ids are derived from (rule, device, time of the raise), so evaluating the same
readings from the same state always yields the same alerts and notifications.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from chalicelib.domain.alert_shapes import ALERT_ID_PATTERN as ALERT_ID_PATTERN
from chalicelib.domain.alert_shapes import ALERT_STATES as ALERT_STATES
from chalicelib.domain.alert_shapes import (
    DEFAULT_KIND,
    DEFAULT_SEVERITY,
    DEFAULT_TOPIC,
    RULE_INPUT,
    RULE_PATCH,
    op_family,
)
from chalicelib.domain.alert_shapes import RULE_ID_PATTERN as RULE_ID_PATTERN
from chalicelib.domain.alert_shapes import SEVERITIES as SEVERITIES
from chalicelib.domain.readings import Reading, Value
from chalicelib.domain.rules import json_object, unknown_fields
from chalicelib.errors import ValidationError

# A rule's JSON (its limits, patterns and shapes) is declared in alert_shapes, which the routes read
# when the app loads; the names re-exported above are read from here by the alerts' lazy imports.
SEVERITY_RANK = {"critical": 4, "major": 3, "minor": 2, "warning": 1}
NEGATION = {
    ">": "<=",
    ">=": "<",
    "<": ">=",
    "<=": ">",
    "==": "!=",
    "!=": "==",
    "equals": "not_equals",
    "not_equals": "equals",
    "contains": "not_contains",
    "not_contains": "contains",
}
WRITABLE_FIELDS = frozenset(RULE_INPUT.members)


# --- rules ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """`value <op> threshold`: numbers (> >= < <= == !=), strings (equals, contains and their
    negations) or booleans (is)."""

    op: str
    value: Value

    @property
    def family(self) -> str:
        return op_family(self.op)

    def applies_to(self, value: Value) -> bool:
        """Whether a reading's value is of the kind this condition compares (else it is ignored)."""
        if self.family == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.family == "string":
            return isinstance(value, str)
        return isinstance(value, bool)

    def holds(self, value: Value) -> bool:
        if not self.applies_to(value):
            return False
        op, threshold = self.op, self.value
        if self.family == "number":
            v, t = float(value), float(threshold)
            return {">": v > t, ">=": v >= t, "<": v < t, "<=": v <= t, "==": v == t, "!=": v != t}[op]
        if self.family == "string":
            text, needle = str(value), str(threshold)
            return {
                "equals": text == needle,
                "not_equals": text != needle,
                "contains": needle in text,
                "not_contains": needle not in text,
            }[op]
        return value is threshold

    def negated(self) -> Condition:
        if self.op == "is":
            return Condition("is", not self.value)
        return Condition(NEGATION[self.op], self.value)

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "value": self.value}

    def describe(self) -> str:
        return f"{self.op} {json.dumps(self.value)}"


@dataclass(frozen=True)
class Scope:
    """Which devices a rule watches: one device, every device of a type, or all."""

    kind: Literal["device", "type", "all"]
    value: str | None = None

    def matches(self, device_id: str, device_type: str | None) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "device":
            return self.value == device_id
        return device_type is not None and self.value == device_type

    def as_dict(self) -> dict[str, Any]:
        return {"all": True} if self.kind == "all" else {self.kind: self.value}


@dataclass(frozen=True)
class Duration:
    """How long the condition must hold: N seconds, N consecutive readings, or neither (at once)."""

    seconds: int | None = None
    readings: int | None = None

    def satisfied(self, since_ms: int, now_ms: int, count: int) -> bool:
        if self.seconds is not None:
            return now_ms - since_ms >= self.seconds * 1000
        if self.readings is not None:
            return count >= self.readings
        return True

    def as_dict(self) -> dict[str, Any] | None:
        if self.seconds is not None:
            return {"seconds": self.seconds}
        if self.readings is not None:
            return {"readings": self.readings}
        return None


@dataclass(frozen=True)
class Notify:
    emails: tuple[str, ...] = ()
    topic: str | None = DEFAULT_TOPIC

    def as_dict(self) -> dict[str, Any]:
        return {"emails": list(self.emails), "topic": self.topic}


@dataclass(frozen=True)
class Rule:
    """A validated alert rule (see validate_rule for the JSON it comes from)."""

    rule_id: str
    name: str
    scope: Scope
    kind: Literal["threshold", "offline"] = "threshold"
    metric: str | None = None
    unit: str | None = None
    condition: Condition | None = None
    duration: Duration = field(default_factory=Duration)
    clear: Condition | None = None  # None: the negation of `condition`
    severity: str = DEFAULT_SEVERITY
    notify: Notify = field(default_factory=Notify)
    enabled: bool = True
    offline_seconds: int | None = None
    created_at: int = 0
    updated_at: int = 0

    @property
    def clear_condition(self) -> Condition:
        if self.clear is not None:
            return self.clear
        assert self.condition is not None, "offline rules have no clear condition"
        return self.condition.negated()

    def watches(self, reading: Reading) -> bool:
        return reading.metric == self.metric and (self.unit is None or reading.unit == self.unit)

    def describe(self) -> str:
        """One line saying what the rule checks, for messages."""
        if self.kind == "offline":
            return f"no reading for {self.offline_seconds} s"
        assert self.condition is not None
        unit = f" [{self.unit}]" if self.unit else ""
        text = f"{self.metric}{unit} {self.condition.describe()}"
        if self.duration.seconds is not None:
            text += f" for {self.duration.seconds} s"
        elif self.duration.readings is not None:
            text += f" for {self.duration.readings} consecutive readings"
        return text

    def editable(self) -> dict[str, Any]:
        """The writable fields as the API takes them (what a PATCH is merged into)."""
        doc: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "scope": self.scope.as_dict(),
            "severity": self.severity,
            "notify": self.notify.as_dict(),
            "enabled": self.enabled,
        }
        if self.kind == "offline":
            doc["offline"] = {"seconds": self.offline_seconds}
            return doc
        assert self.condition is not None
        doc.update({"metric": self.metric, "condition": self.condition.as_dict()})
        if self.unit is not None:
            doc["unit"] = self.unit
        if self.duration.as_dict() is not None:
            doc["duration"] = self.duration.as_dict()
        if self.clear is not None:
            doc["clear"] = self.clear.as_dict()
        return doc

    def as_dict(self) -> dict[str, Any]:
        """The API's view: every field, null where not set (clear null: the negated condition)."""
        offline = self.kind == "offline"
        return {
            "id": self.rule_id,
            "name": self.name,
            "kind": self.kind,
            "scope": self.scope.as_dict(),
            "metric": self.metric,
            "unit": self.unit,
            "condition": self.condition.as_dict() if self.condition else None,
            "duration": self.duration.as_dict(),
            "clear": self.clear.as_dict() if self.clear else None,
            "effective_clear": None if offline else self.clear_condition.as_dict(),
            "severity": self.severity,
            "notify": self.notify.as_dict(),
            "enabled": self.enabled,
            "offline": {"seconds": self.offline_seconds} if offline else None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @staticmethod
    def from_dict(doc: Mapping[str, Any]) -> Rule:
        """A rule from its stored as_dict() form (validated again: storage is not trusted blindly)."""
        editable = {k: v for k, v in doc.items() if k in WRITABLE_FIELDS and v is not None}
        return validate_rule(
            editable, rule_id=str(doc["id"]), created_at=int(doc["created_at"]), updated_at=int(doc["updated_at"])
        )


def new_rule_id() -> str:
    return "rule-" + uuid.uuid4().hex[:20]


def validate_rule(body: object, *, rule_id: str, created_at: int, updated_at: int) -> Rule:
    """A rule from the API's JSON (a stored rule, or a PATCH merged by patch_rule); raise ValidationError."""
    return rule_of(RULE_INPUT.validate(body, "the rule"), rule_id=rule_id, created_at=created_at, updated_at=updated_at)


def rule_of(body: Mapping[str, Any], *, rule_id: str, created_at: int, updated_at: int) -> Rule:
    """The rule a body that RULE_INPUT accepts describes (POST /v1/rules: the route validated it)."""
    kind = body.get("kind", DEFAULT_KIND)
    common: dict[str, Any] = {
        "rule_id": rule_id,
        "name": str(body["name"]).strip(),
        "scope": _scope_of(body["scope"]),
        "kind": kind,
        "severity": body.get("severity", DEFAULT_SEVERITY),
        "notify": _notify_of(body.get("notify")),
        "enabled": body.get("enabled", True),
        "created_at": created_at,
        "updated_at": updated_at,
    }
    if kind == "offline":
        return Rule(**common, offline_seconds=body["offline"]["seconds"])
    clear = body.get("clear")
    return Rule(
        **common,
        metric=body["metric"],
        unit=body.get("unit"),
        condition=_condition_of(body["condition"]),
        duration=_duration_of(body.get("duration")),
        clear=None if clear is None else _condition_of(clear),
    )


def _condition_of(raw: Mapping[str, Any]) -> Condition:
    return Condition(str(raw["op"]), raw["value"])


def _scope_of(raw: Mapping[str, Any]) -> Scope:
    if "device" in raw:
        return Scope("device", raw["device"])
    return Scope("type", raw["type"]) if "type" in raw else Scope("all")


def _duration_of(raw: Mapping[str, int] | None) -> Duration:
    # The defaults (0 seconds, 1 reading: at once) are stored as no duration.
    if raw is None:
        return Duration()
    if "seconds" in raw:
        return Duration(seconds=raw["seconds"] or None)
    return Duration(readings=raw["readings"] if raw["readings"] > 1 else None)


def _notify_of(raw: Mapping[str, Any] | None) -> Notify:
    if raw is None:
        return Notify()
    emails = tuple(dict.fromkeys(str(e) for e in raw.get("emails", [])))
    return Notify(emails, raw.get("topic", DEFAULT_TOPIC))


def patch_rule(rule: Rule, body: object, now_ms: int) -> Rule:
    """Merge a PATCH body into a rule: given fields replace, null resets a field to its default.

    The merged rule is validated as a whole (RULE_INPUT), so every problem of the result is named.
    """
    body = json_object(body)
    unknown = unknown_fields(body, RULE_PATCH.members, RULE_PATCH.unknown)
    if unknown:
        raise ValidationError(f"{len(unknown)} problems in the rule", unknown)
    merged = rule.editable()
    for key, value in body.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return validate_rule(merged, rule_id=rule.rule_id, created_at=rule.created_at, updated_at=now_ms)


# --- evaluation -----------------------------------------------------------------------------------------------------


def reading_dict(reading: Reading) -> dict[str, Any]:
    return {"metric": reading.metric, "unit": reading.unit, "ts": reading.ts_ms, "value": reading.value}


def reading_of(doc: Mapping[str, Any]) -> Reading:
    return Reading(str(doc["metric"]), str(doc["unit"]), int(doc["ts"]), doc["value"])


@dataclass(frozen=True)
class RuleState:
    """What evaluation remembers per (rule, device) between invocations.

    `version` is the stored item's version, for the optimistic (conditional) write.
    """

    rule_id: str
    device_id: str
    last_ts: int | None = None  # newest reading time evaluated: older or equal ones are ignored
    pending_since: int | None = None  # first reading of the current run where the condition holds
    pending_count: int = 0
    pending_first: Reading | None = None
    active_alert: str | None = None
    active_since: int | None = None
    last_seen: int | None = None  # offline rules: the newest receive time known
    version: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_ts": self.last_ts,
            "pending_since": self.pending_since,
            "pending_count": self.pending_count,
            "pending_first": reading_dict(self.pending_first) if self.pending_first else None,
            "active_alert": self.active_alert,
            "active_since": self.active_since,
            "last_seen": self.last_seen,
        }

    @staticmethod
    def from_dict(rule_id: str, device_id: str, doc: Mapping[str, Any], version: int) -> RuleState:
        first = doc.get("pending_first")
        return RuleState(
            rule_id=rule_id,
            device_id=device_id,
            last_ts=doc.get("last_ts"),
            pending_since=doc.get("pending_since"),
            pending_count=int(doc.get("pending_count") or 0),
            pending_first=reading_of(first) if first else None,
            active_alert=doc.get("active_alert"),
            active_since=doc.get("active_since"),
            last_seen=doc.get("last_seen"),
            version=version,
        )

    def same_content(self, other: RuleState) -> bool:
        """Equal but for the version: nothing to write."""
        return replace(self, version=0) == replace(other, version=0)


@dataclass(frozen=True)
class Raised:
    """An alert was raised; `readings` are the first reading of the run and the one completing it."""

    alert_id: str
    rule_id: str
    device_id: str
    ts_ms: int
    readings: tuple[Reading, ...] = ()
    last_seen: int | None = None  # offline rules


@dataclass(frozen=True)
class Cleared:
    alert_id: str
    rule_id: str
    device_id: str
    ts_ms: int
    readings: tuple[Reading, ...] = ()
    last_seen: int | None = None


Event: TypeAlias = Raised | Cleared


def alert_id_for(rule_id: str, device_id: str, ts_ms: int) -> str:
    """`<raise time, 13 digits>-<16 hex>`: sorts by time, and the same raise always gets the same id."""
    digest = hashlib.sha256(f"{rule_id}\n{device_id}\n{ts_ms}".encode()).hexdigest()[:16]
    return f"{ts_ms:013d}-{digest}"


def _idle(state: RuleState) -> RuleState:
    return replace(state, pending_since=None, pending_count=0, pending_first=None)


def evaluate(rule: Rule, state: RuleState, readings: Iterable[Reading]) -> tuple[RuleState, list[Event]]:
    """Run a threshold rule over a device's new readings; return the new state and what happened.

    Readings of other metrics (or units, when the rule names one), of a kind the condition
    does not compare, or at or before `state.last_ts` are ignored. The readings are sorted by
    time first; equal times keep their order and only the first is evaluated.
    """
    if rule.kind != "threshold" or not rule.enabled or rule.condition is None:
        return state, []
    condition, clear = rule.condition, rule.clear_condition
    events: list[Event] = []
    for reading in sorted((r for r in readings if rule.watches(r)), key=lambda r: r.ts_ms):
        if state.last_ts is not None and reading.ts_ms <= state.last_ts:
            continue
        state = replace(state, last_ts=reading.ts_ms)
        if not condition.applies_to(reading.value):
            continue
        if state.active_alert is not None:
            if clear.holds(reading.value):
                events.append(Cleared(state.active_alert, rule.rule_id, state.device_id, reading.ts_ms, (reading,)))
                state = _idle(replace(state, active_alert=None, active_since=None))
            continue
        if not condition.holds(reading.value):
            state = _idle(state)
            continue
        if state.pending_since is None:
            state = replace(state, pending_since=reading.ts_ms, pending_count=1, pending_first=reading)
        else:
            state = replace(state, pending_count=state.pending_count + 1)
        assert state.pending_since is not None
        if rule.duration.satisfied(state.pending_since, reading.ts_ms, state.pending_count):
            alert_id = alert_id_for(rule.rule_id, state.device_id, reading.ts_ms)
            first = state.pending_first or reading
            raised_by = (first, reading) if first != reading else (reading,)
            events.append(Raised(alert_id, rule.rule_id, state.device_id, reading.ts_ms, raised_by))
            state = _idle(replace(state, active_alert=alert_id, active_since=reading.ts_ms))
    return state, events


def evaluate_offline(
    rule: Rule, state: RuleState, last_seen_ms: int | None, now_ms: int, *, reading: Reading | None = None
) -> tuple[RuleState, list[Event]]:
    """An offline rule at `now_ms`, given when the device was last heard from.

    Raises when the device has been silent for the rule's seconds or more, clears when it
    has been heard from since. `last_seen_ms` only moves forward (the state keeps the
    newest known); None with nothing known decides nothing. `reading`, when evaluation
    comes from the stream, is recorded as what cleared the alert.
    """
    if rule.kind != "offline" or not rule.enabled or rule.offline_seconds is None:
        return state, []
    known = [t for t in (last_seen_ms, state.last_seen) if t is not None]
    if not known:
        return state, []
    seen = max(known)
    state = replace(state, last_seen=seen)
    silent = now_ms - seen >= rule.offline_seconds * 1000
    if state.active_alert is None and silent:
        alert_id = alert_id_for(rule.rule_id, state.device_id, now_ms)
        raised = Raised(alert_id, rule.rule_id, state.device_id, now_ms, (), seen)
        return replace(state, active_alert=alert_id, active_since=now_ms), [raised]
    if state.active_alert is not None and not silent:
        readings = (reading,) if reading is not None else ()
        cleared = Cleared(state.active_alert, rule.rule_id, state.device_id, now_ms, readings, seen)
        return replace(state, active_alert=None, active_since=None), [cleared]
    return state, []


# --- alerts and notifications ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """An alert as the API shows it: active/cleared x acknowledged, with the readings behind it."""

    alert_id: str
    rule_id: str
    rule_name: str
    kind: str
    device_id: str
    severity: str
    metric: str | None
    condition: str
    raised_at: int
    raised_by: tuple[Reading, ...] = ()
    last_seen: int | None = None
    state: Literal["active", "cleared"] = "active"
    cleared_at: int | None = None
    cleared_by: tuple[Reading, ...] = ()
    acknowledged: bool = False
    acknowledged_at: int | None = None

    def raise_doc(self) -> dict[str, Any]:
        """What is fixed when the alert is raised (stored once; clear and ack are kept apart)."""
        return {
            "id": self.alert_id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "kind": self.kind,
            "device_id": self.device_id,
            "severity": self.severity,
            "metric": self.metric,
            "condition": self.condition,
            "raised_at": self.raised_at,
            "raised_by": [reading_dict(r) for r in self.raised_by],
            "last_seen": self.last_seen,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.raise_doc(),
            "state": self.state,
            "cleared_at": self.cleared_at,
            "cleared_by": [reading_dict(r) for r in self.cleared_by],
            "acknowledged": self.acknowledged,
            "acknowledged_at": self.acknowledged_at,
        }

    @staticmethod
    def from_raise_doc(doc: Mapping[str, Any], **rest: Any) -> Alert:
        return Alert(
            alert_id=str(doc["id"]),
            rule_id=str(doc["rule_id"]),
            rule_name=str(doc["rule_name"]),
            kind=str(doc["kind"]),
            device_id=str(doc["device_id"]),
            severity=str(doc["severity"]),
            metric=doc.get("metric"),
            condition=str(doc["condition"]),
            raised_at=int(doc["raised_at"]),
            raised_by=tuple(reading_of(r) for r in doc.get("raised_by", [])),
            last_seen=doc.get("last_seen"),
            **rest,
        )


def new_alert(rule: Rule, event: Raised) -> Alert:
    return Alert(
        alert_id=event.alert_id,
        rule_id=rule.rule_id,
        rule_name=rule.name,
        kind=rule.kind,
        device_id=event.device_id,
        severity=rule.severity,
        metric=rule.metric,
        condition=rule.describe(),
        raised_at=event.ts_ms,
        raised_by=event.readings,
        last_seen=event.last_seen,
    )


@dataclass(frozen=True)
class AlertWrites:
    """What one commit does to alerts: new alerts (in their final state) and clears of older ones."""

    created: tuple[Alert, ...]
    cleared: tuple[Cleared, ...]


def alert_writes(rule: Rule, events: Sequence[Event]) -> AlertWrites:
    """Fold events into writes: an alert raised and cleared in the same batch is written once."""
    created: dict[str, Alert] = {}
    cleared: list[Cleared] = []
    for event in events:
        if isinstance(event, Raised):
            created[event.alert_id] = new_alert(rule, event)
        elif event.alert_id in created:
            created[event.alert_id] = replace(
                created[event.alert_id], state="cleared", cleared_at=event.ts_ms, cleared_by=event.readings
            )
        else:
            cleared.append(event)
    return AlertWrites(tuple(created.values()), tuple(cleared))


@dataclass(frozen=True)
class Notification:
    """One message to deliver: an email or a WAMP event. The id is stable, so a retry rewrites it."""

    notification_id: str
    channel: Literal["email", "wamp"]
    created_at: int
    payload: dict[str, Any]


def _utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_document(rule: Rule, event: Event) -> dict[str, Any]:
    """The JSON of an alert event, as published on the WAMP topic (and summarized in mail)."""
    return {
        "event": "raised" if isinstance(event, Raised) else "cleared",
        "alert_id": event.alert_id,
        "rule_id": rule.rule_id,
        "rule_name": rule.name,
        "kind": rule.kind,
        "device_id": event.device_id,
        "severity": rule.severity,
        "metric": rule.metric,
        "condition": rule.describe(),
        "ts": event.ts_ms,
        "readings": [reading_dict(r) for r in event.readings],
        "last_seen": event.last_seen,
    }


def email_text(rule: Rule, event: Event) -> tuple[str, str]:
    """Subject and plain-text body of an alert email."""
    raised = isinstance(event, Raised)
    what = "RAISED" if raised else "CLEARED"
    subject = f"[{rule.severity.upper()}] {what}: {rule.name} on {event.device_id}"
    lines = [
        f"Alert {event.alert_id} {what.lower()} at {_utc(event.ts_ms)}.",
        "",
        f"Rule:      {rule.name} ({rule.rule_id})",
        f"Device:    {event.device_id}",
        f"Severity:  {rule.severity}",
        f"Condition: {rule.describe()}",
    ]
    if not raised and rule.kind == "threshold":
        lines.append(f"Clears on: {rule.metric} {rule.clear_condition.describe()}")
    if event.last_seen is not None:
        lines.append(f"Last seen: {_utc(event.last_seen)}")
    if event.readings:
        lines += ["", "Readings:"]
        for r in event.readings:
            unit = f" {r.unit}" if r.unit else ""
            lines.append(f"  {_utc(r.ts_ms)}  {r.metric} = {json.dumps(r.value)}{unit}")
    lines += ["", "-- iotcloud alerts (automatic message)"]
    return subject, "\n".join(lines) + "\n"


def notifications_for(rule: Rule, events: Sequence[Event], now_ms: int) -> list[Notification]:
    """The emails and WAMP events a commit's events call for, per the rule's notify targets."""
    out: list[Notification] = []
    for event in events:
        name = "raised" if isinstance(event, Raised) else "cleared"
        base = f"{event.alert_id}.{name}"
        if rule.notify.emails:
            subject, text = email_text(rule, event)
            mail: dict[str, Any] = {"to": list(rule.notify.emails), "subject": subject, "text": text}
            out.append(Notification(f"{base}.email", "email", now_ms, mail))
        if rule.notify.topic:
            event_doc: dict[str, Any] = {"topic": rule.notify.topic, "kwargs": event_document(rule, event)}
            out.append(Notification(f"{base}.wamp", "wamp", now_ms, event_doc))
    return out
