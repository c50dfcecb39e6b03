"""Alert evaluation: the live stream handler's body, the offline schedule, notification delivery.

The stream handler gets the same DynamoDB stream records as the archiver and evaluates
only the readings new to each chunk item (so a retried request never counts twice). Per
device it reads the rules of the device, of its type and of everyone (lookup index; the
type from the devices table, cached for the invocation) and the device's rule states
(one Query), evaluates, and commits each changed (rule, device) state together with its
alerts and outbox notifications (adapters.alerts.AlertStore.commit). A commit that loses
a race re-reads the state and evaluates again: forward-only evaluation makes that safe,
and the same holds for a whole batch delivered twice.

Notifications are delivered after evaluation from the outbox; a failure is recorded on
the notification and retried by a later invocation or the offline schedule (every
minute), with backoff, and never fails the batch.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any, Protocol

from chalicelib.adapters.alerts import (
    MAX_TRANSACT_ITEMS,
    AlertStore,
    Commit,
    DeviceActivity,
    OutboxItem,
    StateConflictError,
)
from chalicelib.adapters.mail import Mailer
from chalicelib.clock import now_ms as clock_now
from chalicelib.domain.alerts import (
    Event,
    Raised,
    Rule,
    RuleState,
    Scope,
    alert_writes,
    evaluate,
    evaluate_offline,
    notifications_for,
)
from chalicelib.domain.archive import new_readings
from chalicelib.domain.devices import Device
from chalicelib.domain.mail import build_message
from chalicelib.domain.readings import Reading
from chalicelib.errors import DeviceNotFoundError, StorageUnavailableError
from chalicelib.jobs.archiver import change_of

logger = logging.getLogger("iotcloud.alerts")

Publish = Callable[[str, dict[str, Any]], None]
# (device id, now) -> the exact last_seen (domain.state.DeviceStates.last_seen).
ExactLastSeen = Callable[[str, int], int | None]
DEFAULT_SENDER = "iotcloud alerts <alerts@localhost.localdomain>"
MAX_CONFLICT_RETRIES = 5
MAX_DELIVERY_ATTEMPTS = 12  # with the backoff below: about 18 hours of trying
RETRY_BASE_MS = 60_000
RETRY_CAP_MS = 3_600_000
LEASE_MS = 120_000
DELIVERIES_PER_RUN = 100
OUTBOX_READ = 1000  # pending notifications looked at per run (not-yet-due ones must not hide due ones)
DELIVERY_BUDGET_S = 10.0  # stop starting deliveries after this long: the handler has other work and a timeout
DEVICE_PAGE = 1000


class DeviceLookup(Protocol):
    def get(self, device_id: str) -> Device: ...


class DeviceLister(Protocol):
    def list_page(self, limit: int, start_after: str | None) -> tuple[list[Device], str | None]: ...


class Devices(DeviceLookup, DeviceLister, Protocol):
    """What both alert jobs read of the devices (adapters.devices.DeviceRepository)."""


def no_publish(topic: str, kwargs: dict[str, Any]) -> None:
    """The WAMP publish until the router exists: nothing to publish to."""


@dataclass
class DeliverySummary:
    sent: int = 0
    retried: int = 0
    given_up: int = 0
    skipped: int = 0  # held by another invocation, or not due yet


@dataclass
class AlertsSummary:
    devices: int = 0
    readings: int = 0
    evaluations: int = 0  # (rule, device) pairs whose state changed
    raised: int = 0
    cleared: int = 0
    conflicts: int = 0
    delivery: DeliverySummary = field(default_factory=DeliverySummary)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in vars(self).items() if k != "delivery"}, "delivery": vars(self.delivery)}


Step = Callable[[RuleState, Sequence[Reading]], tuple[RuleState, list[Event]]]


def _commit_slices(
    store: AlertStore, rule: Rule, state: RuleState, readings: Sequence[Reading], step: Step, now_ms: int,
    summary: AlertsSummary,
) -> RuleState:  # fmt: skip
    """Evaluate and commit; a change too big for one transaction is split by time (halves)."""
    new_state, events = step(state, readings)
    if new_state.same_content(state):
        return state
    commit = Commit(rule, state, new_state, alert_writes(rule, events), tuple(notifications_for(rule, events, now_ms)))
    if commit.item_count() > MAX_TRANSACT_ITEMS and len(readings) > 1:
        ordered = sorted(readings, key=lambda r: r.ts_ms)
        half = len(ordered) // 2
        middle = _commit_slices(store, rule, state, ordered[:half], step, now_ms, summary)
        return _commit_slices(store, rule, middle, ordered[half:], step, now_ms, summary)
    stored = store.commit(commit)
    summary.evaluations += 1
    summary.raised += sum(isinstance(e, Raised) for e in events)
    summary.cleared += sum(not isinstance(e, Raised) for e in events)
    return stored


def _advance(
    store: AlertStore, rule: Rule, state: RuleState, readings: Sequence[Reading], step: Step, now_ms: int,
    summary: AlertsSummary,
) -> None:  # fmt: skip
    """Evaluate and commit one (rule, device), re-reading the state when another invocation won."""
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            _commit_slices(store, rule, state, readings, step, now_ms, summary)
            return
        except StateConflictError:
            summary.conflicts += 1
            state = store.state(rule.rule_id, state.device_id)
    raise StorageUnavailableError(f"rule {rule.rule_id} on {state.device_id}: state too contended")


class _RuleFinder:
    """The rules that apply to a device, with the invocation's caches (types, type and all scopes)."""

    def __init__(self, store: AlertStore, devices: DeviceLookup) -> None:
        self._store = store
        self._devices = devices
        self._types: dict[str, str | None] = {}
        self._scopes: dict[Scope, list[Rule]] = {}

    def _scope(self, scope: Scope) -> list[Rule]:
        if scope not in self._scopes:
            self._scopes[scope] = self._store.rules_in_scope(scope)
        return self._scopes[scope]

    def device_type(self, device_id: str) -> str | None:
        if device_id not in self._types:
            try:
                self._types[device_id] = self._devices.get(device_id).device_type
            except DeviceNotFoundError:
                self._types[device_id] = None  # deleted since: its device and all rules still apply
        return self._types[device_id]

    def rules_for(self, device_id: str) -> list[Rule]:
        device_type = self.device_type(device_id)
        found = list(self._store.rules_in_scope(Scope("device", device_id)))
        if device_type is not None:
            found += self._scope(Scope("type", device_type))
        found += self._scope(Scope("all"))
        unique = {r.rule_id: r for r in found if r.enabled and r.scope.matches(device_id, device_type)}
        return sorted(unique.values(), key=lambda r: r.rule_id)


@dataclass(frozen=True)
class DeviceBatch:
    """What one readings-stream batch brought of one device."""

    readings: list[Reading]  # new to their chunk items (a retried request's are not new)
    received_at: int | None  # the newest request's received_at, retried ones included


def stream_batch(records: Iterable[dict[str, Any]]) -> dict[str, DeviceBatch]:
    """Decode one readings-stream batch (Lambda's record dicts) per device, in first-seen order.

    Shared by the alert evaluation and the live handler's state fold, so a batch is decoded once.
    """
    fresh: dict[str, list[Reading]] = defaultdict(list)
    received: dict[str, int] = {}
    for record in records:
        change = change_of(record)
        if change.new_received_at is None:
            continue  # a REMOVE (TTL): nothing was received
        fresh[change.device_id].extend(new_readings(change))
        received[change.device_id] = max(received.get(change.device_id, 0), change.new_received_at)
    return {device_id: DeviceBatch(readings, received.get(device_id)) for device_id, readings in fresh.items()}


def evaluate_stream_batch(
    records: Iterable[dict[str, Any]],
    *,
    store: AlertStore,
    devices: DeviceLookup,
    mailer: Mailer | None,
    publish: Publish = no_publish,
    mail_from: str = "",
    now_ms: int,
    deliver: bool = True,
) -> AlertsSummary:
    """Evaluate the rules over the new readings of one readings-stream batch (Lambda's record dicts)."""
    return evaluate_batch(
        stream_batch(records), store=store, devices=devices, mailer=mailer, publish=publish, mail_from=mail_from,
        now_ms=now_ms, deliver=deliver,
    )  # fmt: skip


def evaluate_batch(
    batch: dict[str, DeviceBatch],
    *,
    store: AlertStore,
    devices: DeviceLookup,
    mailer: Mailer | None,
    publish: Publish = no_publish,
    mail_from: str = "",
    now_ms: int,
    deliver: bool = True,
) -> AlertsSummary:
    """Evaluate the rules over the new readings of one decoded stream batch (stream_batch).

    Raises StorageUnavailableError when state cannot be stored, so the batch is retried
    (which is harmless: see the module docstring). Notification failures never raise.
    """
    summary = AlertsSummary()
    per_device = {device_id: b.readings for device_id, b in batch.items() if b.readings}
    finder = _RuleFinder(store, devices)
    any_rules = bool(per_device) and store.has_rules()  # one Query spares every per-device read when there are none
    for device_id, readings in per_device.items():
        summary.devices += 1
        summary.readings += len(readings)
        rules = finder.rules_for(device_id) if any_rules else []
        if not rules:
            continue
        states = store.states_of(device_id)
        newest = max(readings, key=lambda r: r.ts_ms)
        received = batch[device_id].received_at
        for rule in rules:
            state = states.get(rule.rule_id) or RuleState(rule.rule_id, device_id)
            if rule.kind == "threshold":
                _advance(store, rule, state, readings, _threshold_step(rule), now_ms, summary)
            elif state.active_alert is not None:
                # An offline alert clears as soon as the device is heard from; raising is the schedule's job.
                step = _offline_step(rule, received if received is not None else now_ms, now_ms, newest)
                _advance(store, rule, state, (), step, now_ms, summary)
    if deliver:
        summary.delivery = deliver_safely(store, mailer, publish, now_ms=now_ms, mail_from=mail_from)
    return summary


def _threshold_step(rule: Rule) -> Step:
    def step(state: RuleState, readings: Sequence[Reading]) -> tuple[RuleState, list[Event]]:
        return evaluate(rule, state, readings)

    return step


def _offline_step(rule: Rule, last_seen: int | None, now_ms: int, reading: Reading | None = None) -> Step:
    def step(state: RuleState, readings: Sequence[Reading]) -> tuple[RuleState, list[Event]]:
        return evaluate_offline(rule, state, last_seen, now_ms, reading=reading)

    return step


def _offline_targets(rules: list[Rule], devices: DeviceLister) -> dict[str, list[Rule]]:
    """device id -> the offline rules watching it. Type and all scopes page through the device list."""
    targets: dict[str, list[Rule]] = defaultdict(list)
    wide = [r for r in rules if r.scope.kind != "device"]
    for rule in rules:
        if rule.scope.kind == "device" and rule.scope.value is not None:
            targets[rule.scope.value].append(rule)
    if wide:
        cursor: str | None = None
        while True:
            page, cursor = devices.list_page(DEVICE_PAGE, cursor)
            for device in page:
                if device.disabled:
                    continue
                for rule in wide:
                    if rule.scope.matches(device.device_id, device.device_type):
                        targets[device.device_id].append(rule)
            if cursor is None:
                break
    return targets


def _would_raise(rule: Rule, state: RuleState, last_seen: int, now_ms: int) -> bool:
    _, events = evaluate_offline(rule, state, last_seen, now_ms)
    return any(isinstance(e, Raised) for e in events)


def run_offline_check(
    now_ms: int,
    *,
    store: AlertStore,
    devices: DeviceLister,
    mailer: Mailer | None,
    publish: Publish = no_publish,
    mail_from: str = "",
    deliver: bool = True,
    exact_last_seen: ExactLastSeen | None = None,
) -> AlertsSummary:
    """The schedule's body: evaluate every offline rule for every device it watches, then deliver.

    Devices come from the rule itself (device scope) or the devices list index (type and
    all: a paged Query; a job, not a request path). last_seen comes from the device items
    (BatchGetItem; the list index does not project it); a device never heard from counts
    from its registration. Disabled and deleted devices are skipped.

    The items' last_seen is the live stream's fold (domain.state): up to FOLD_INTERVAL_MS plus
    the stream's delay behind. So before raising, a silence is confirmed with `exact_last_seen`
    (one small Query of the device's unfolded chunks): a lagging fold never raises an alert.
    """
    summary = AlertsSummary()
    rules = [r for r in store.all_rules() if r.kind == "offline" and r.enabled]
    targets = _offline_targets(rules, devices) if rules else {}
    activity: dict[str, DeviceActivity] = store.device_activity(sorted(targets)) if targets else {}
    pairs = [(rule.rule_id, device_id) for device_id in activity for rule in targets[device_id]]
    states = store.states_many(pairs) if pairs else {}
    for device_id, seen in activity.items():
        if seen.disabled:
            continue
        summary.devices += 1
        last_seen = seen.last_seen if seen.last_seen is not None else seen.created_at
        confirmed = False
        for rule in targets[device_id]:
            state = states[(rule.rule_id, device_id)]
            if exact_last_seen is not None and not confirmed and _would_raise(rule, state, last_seen, now_ms):
                confirmed = True  # once per device: the exact answer holds for all its rules
                try:
                    exact = exact_last_seen(device_id, now_ms)
                except DeviceNotFoundError:
                    break  # deleted since the read: skipped, as the deleted are
                last_seen = max(last_seen, exact) if exact is not None else last_seen
            _advance(store, rule, state, (), _offline_step(rule, last_seen, now_ms), now_ms, summary)
    if deliver:
        summary.delivery = deliver_safely(store, mailer, publish, now_ms=now_ms, mail_from=mail_from)
    return summary


@dataclass(frozen=True)
class AlertJobs:
    """Both alert jobs with this stage's collaborators: the live stream's evaluation and the offline schedule."""

    store: AlertStore
    devices: Devices
    mailer: Mailer | None
    publish: Publish
    mail_from: str
    clock: Callable[[], int] = clock_now
    exact_last_seen: ExactLastSeen | None = None

    def evaluate(self, records: Iterable[dict[str, Any]]) -> AlertsSummary:
        """The evaluation of one readings-stream batch (evaluate_stream_batch)."""
        return self.evaluate_batch(stream_batch(records))

    def evaluate_batch(self, batch: dict[str, DeviceBatch]) -> AlertsSummary:
        """The live handler's evaluation of one decoded readings-stream batch (evaluate_batch)."""
        return evaluate_batch(
            batch, store=self.store, devices=self.devices, mailer=self.mailer, publish=self.publish,
            mail_from=self.mail_from, now_ms=self.clock(),
        )  # fmt: skip

    def offline(self) -> AlertsSummary:
        """The offline-rules schedule: silent devices, and notifications still to deliver (run_offline_check)."""
        return run_offline_check(
            self.clock(), store=self.store, devices=self.devices, mailer=self.mailer, publish=self.publish,
            mail_from=self.mail_from, exact_last_seen=self.exact_last_seen,
        )  # fmt: skip


# --- delivery --------------------------------------------------------------------------------------------------------


def retry_delay_ms(attempts: int) -> int:
    """Wait before the next attempt after `attempts` failed ones: 1, 2, 4 ... minutes, at most an hour."""
    return int(min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** max(0, attempts - 1)))


def _send(item: OutboxItem, mailer: Mailer | None, publish: Publish, mail_from: str) -> None:
    notification = item.notification
    payload = notification.payload
    if notification.channel == "wamp":
        publish(str(payload["topic"]), dict(payload["kwargs"]))
        return
    if mailer is None:
        raise RuntimeError("no mailer is configured (set SMTP_HOST, or MAIL_FROM for SES)")
    sender = mail_from or DEFAULT_SENDER
    domain = getaddresses([sender])[0][1].rpartition("@")[2] or "localhost"
    message = build_message(
        sender,
        list(payload["to"]),
        str(payload["subject"]),
        str(payload["text"]),
        date=datetime.fromtimestamp(notification.created_at / 1000, UTC),
        # Stable: a notification delivered twice (a lost answer) is one message to mail clients.
        message_id=f"<{notification.notification_id}@{domain}>",
    )
    mailer.send(message)


def deliver_notifications(
    store: AlertStore,
    mailer: Mailer | None,
    publish: Publish,
    *,
    now_ms: int,
    mail_from: str = "",
    limit: int = DELIVERIES_PER_RUN,
    budget_s: float = DELIVERY_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> DeliverySummary:
    """Deliver due notifications from the outbox (at least once), at most `limit` and for about `budget_s`.

    Each is claimed with a lease first (so two invocations do not both send it), sent,
    then deleted. A failure is recorded and retried later with backoff; after
    MAX_DELIVERY_ATTEMPTS it moves to the failed partition, never silently dropped.
    What is left over waits for the next invocation or the minute schedule.
    """
    summary = DeliverySummary()
    deadline = clock() + budget_s
    attempted = 0
    for item in store.pending_notifications(OUTBOX_READ):
        if item.due_at > now_ms or (item.lease_until is not None and item.lease_until > now_ms):
            summary.skipped += 1
            continue
        if attempted >= limit or clock() > deadline:
            break
        attempted += 1
        if not store.claim(item, now_ms, LEASE_MS):
            summary.skipped += 1
            continue
        try:
            _send(item, mailer, publish, mail_from)
        except Exception as e:  # any failure to notify is retried; it must not stop evaluation
            error = f"{type(e).__name__}: {e}"
            attempts = item.attempts + 1
            if attempts >= MAX_DELIVERY_ATTEMPTS:
                logger.error("giving up notification %s: %s", item.notification.notification_id, error)
                store.give_up(item, error)
                summary.given_up += 1
            else:
                logger.warning("notification %s failed (%d): %s", item.notification.notification_id, attempts, error)
                store.retry_later(item, error, now_ms + retry_delay_ms(attempts))
                summary.retried += 1
            continue
        store.delivered(item)
        summary.sent += 1
    return summary


def deliver_safely(
    store: AlertStore, mailer: Mailer | None, publish: Publish, *, now_ms: int, mail_from: str = ""
) -> DeliverySummary:
    """deliver_notifications, never raising: the outbox keeps what was not delivered for the next run."""
    try:
        return deliver_notifications(store, mailer, publish, now_ms=now_ms, mail_from=mail_from)
    except Exception:
        logger.exception("notification delivery failed; the outbox keeps the rest for the next run")
        return DeliverySummary()
