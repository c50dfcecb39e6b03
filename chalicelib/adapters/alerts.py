"""Alert rules, rule state, alerts and the notification outbox in one DynamoDB table (PynamoDB).

Items (partition `p`, sort `s`; see models.AlertModel):

    rules            rules / <rule id>           j = rule JSON, v = version,
                                                 a1 = rules#device#<id> | rules#type#<t> | rules#all, b1 = rule id
    rule state       state#<device> / <rule id>  j = state JSON, v = version (conditional writes)
    alerts           alerts / <alert id>         j = what the raise fixed; st, ct, cb (clear), ak, at (ack);
                                                 a1 = alerts#device#<device>, b1 = alert id
                                                 a2 = alerts#state#<state>,   b2 = <severity rank>#<alert id>
                                                 a3 = alerts#severity#<sev>,  b3 = alert id
    outbox           outbox / <notification id>  j = the notification; n attempts, du due, ls lease, er error
    given up         outbox#failed / <id>        the same, kept for inspection (never silently dropped)

Alert ids start with the raise time, so every alert listing is newest first by sort key.
Every decision is one Query or GetItem; nothing here Scans. A state change, its alerts and
its notifications are one TransactWriteItems, conditional on the state's version, so two
concurrent invocations cannot both raise, and a notification exists exactly when its
alert change does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.retry import error_code
from chalicelib.domain.alerts import (
    SEVERITY_RANK,
    Alert,
    AlertWrites,
    Cleared,
    Notification,
    Rule,
    RuleState,
    Scope,
    reading_dict,
    reading_of,
)
from chalicelib.errors import AlertNotFoundError, InvalidParameterError, RuleNotFoundError, StorageUnavailableError
from chalicelib.models import AlertModel, DeviceModel

CONDITION_FAILED = "ConditionalCheckFailedException"
RULES = "rules"
ALERTS = "alerts"
OUTBOX = "outbox"
OUTBOX_FAILED = "outbox#failed"
STATE_PREFIX = "state#"
MAX_TRANSACT_ITEMS = 100
BATCH_GET_MAX = 100
RULE_UPDATE_RETRIES = 5


class StateConflictError(Exception):
    """A rule state changed since it was read (another invocation got there first): re-read and retry."""


def _unavailable(e: Exception, what: str) -> StorageUnavailableError:
    return StorageUnavailableError(f"the alerts table failed ({what}): {error_code(e) or type(e).__name__}")


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def scope_partition(scope: Scope) -> str:
    """The lookup-index partition holding the rules of a scope."""
    return "rules#all" if scope.kind == "all" else f"rules#{scope.kind}#{scope.value}"


@dataclass(frozen=True)
class Commit:
    """One (rule, device) state change with everything it causes, written atomically."""

    rule: Rule
    before: RuleState
    after: RuleState
    writes: AlertWrites
    notifications: tuple[Notification, ...]

    def item_count(self) -> int:
        return 1 + len(self.writes.created) + len(self.writes.cleared) + len(self.notifications)


@dataclass(frozen=True)
class AlertFilter:
    state: str | None = None
    severity: str | None = None
    device_id: str | None = None
    acknowledged: bool | None = None

    def signature(self) -> str:
        return f"{self.state}|{self.severity}|{self.device_id}|{self.acknowledged}"


@dataclass(frozen=True)
class OutboxItem:
    notification: Notification
    attempts: int
    due_at: int
    lease_until: int | None
    last_error: str | None


@dataclass(frozen=True)
class DeviceActivity:
    device_id: str
    device_type: str
    last_seen: int | None
    created_at: int
    disabled: bool


def _encode_cursor(signature: str, key: dict[str, dict[str, Any]] | None) -> str | None:
    if not key:
        return None
    doc = {"q": signature, "k": {name: value["S"] for name, value in key.items()}}
    return base64.urlsafe_b64encode(_dumps(doc).encode()).decode().rstrip("=")


_CURSOR_KEYS = frozenset({"p", "s", "a1", "b1", "a2", "b2", "a3", "b3"})


def _decode_cursor(text: str, signature: str) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads(base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode()))
        key = doc["k"]
        valid = (
            doc["q"] == signature
            and isinstance(key, dict)
            and set(key) <= _CURSOR_KEYS
            and {"p", "s"} <= set(key)
            and all(isinstance(v, str) and 0 < len(v) <= 300 for v in key.values())
        )
        if not valid:
            raise ValueError("not a cursor of this query")
        return {name: {"S": value} for name, value in key.items()}
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidParameterError("cursor is not one this API issued for these filters") from e


class AlertStore:
    """Rules, states, alerts and the outbox, in the domain's terms."""

    def __init__(self, model: type[AlertModel] = AlertModel, devices: type[DeviceModel] = DeviceModel) -> None:
        self._model = model
        self._devices = devices

    def _connection(self) -> Connection:
        """The model's own connection (and botocore client), for transactions."""
        return self._model._get_connection().connection

    # --- rules ------------------------------------------------------------------------------------------------------

    def _rule_item(self, rule: Rule, version: int) -> AlertModel:
        return self._model(
            RULES,
            rule.rule_id,
            doc=_dumps(rule.as_dict()),
            version=version,
            lookup=scope_partition(rule.scope),
            lookup_sort=rule.rule_id,
        )

    def create_rule(self, rule: Rule) -> Rule:
        try:
            self._rule_item(rule, 1).save(condition=self._model.partition.does_not_exist())
        except PynamoDBException as e:
            raise _unavailable(e, "create rule") from e
        return rule

    def _load_rule(self, rule_id: str) -> tuple[Rule, int]:
        try:
            item = self._model.get(RULES, rule_id, consistent_read=True)
        except DoesNotExist as e:
            raise RuleNotFoundError(f"no rule {rule_id!r}") from e
        except PynamoDBException as e:
            raise _unavailable(e, "get rule") from e
        return Rule.from_dict(json.loads(item.doc or "{}")), int(item.version or 0)

    def get_rule(self, rule_id: str) -> Rule:
        return self._load_rule(rule_id)[0]

    def update_rule(self, rule_id: str, change: Callable[[Rule], Rule]) -> Rule:
        """Read, change, write back if nobody wrote in between (else re-read and change again)."""
        for _ in range(RULE_UPDATE_RETRIES):
            rule, version = self._load_rule(rule_id)
            updated = change(rule)
            try:
                self._rule_item(updated, version + 1).save(condition=self._model.version == version)
                return updated
            except PynamoDBException as e:
                if error_code(e) != CONDITION_FAILED:
                    raise _unavailable(e, "update rule") from e
        raise StorageUnavailableError("the rule is being changed concurrently; retry")

    def delete_rule(self, rule_id: str) -> None:
        """Delete a rule. Its states stay (harmless, never read again); its alerts stay as history."""
        try:
            self._model(RULES, rule_id).delete(condition=self._model.partition.exists())
        except PynamoDBException as e:
            if error_code(e) == CONDITION_FAILED:
                raise RuleNotFoundError(f"no rule {rule_id!r}") from e
            raise _unavailable(e, "delete rule") from e

    def list_rules(self, limit: int, start_after: str | None) -> tuple[list[Rule], str | None]:
        """A page of rules in id order, and the last id if more remain."""
        last_key = {"p": {"S": RULES}, "s": {"S": start_after}} if start_after else None
        try:
            results = self._model.query(RULES, limit=limit, page_size=limit, last_evaluated_key=last_key)
            rules = [Rule.from_dict(json.loads(item.doc or "{}")) for item in results]
            more = results.last_evaluated_key is not None
        except PynamoDBException as e:
            raise _unavailable(e, "list rules") from e
        return rules, (rules[-1].rule_id if more and rules else None)

    def has_rules(self) -> bool:
        """Whether any rule exists (one Query of at most one item)."""
        try:
            return any(True for _ in self._model.query(RULES, limit=1, attributes_to_get=["p"]))
        except PynamoDBException as e:
            raise _unavailable(e, "list rules") from e

    def all_rules(self) -> Iterator[Rule]:
        """Every rule (jobs only: pages through the rules partition)."""
        try:
            for item in self._model.query(RULES, page_size=500):
                yield Rule.from_dict(json.loads(item.doc or "{}"))
        except PynamoDBException as e:
            raise _unavailable(e, "list rules") from e

    def rules_in_scope(self, scope: Scope) -> list[Rule]:
        """The rules of one scope partition (one Query of the lookup index, eventually consistent)."""
        try:
            items = self._model.lookup_index.query(scope_partition(scope))
            return [Rule.from_dict(json.loads(item.doc or "{}")) for item in items]
        except PynamoDBException as e:
            raise _unavailable(e, "rules of a scope") from e

    # --- rule state -------------------------------------------------------------------------------------------------

    def _to_state(self, item: AlertModel) -> RuleState:
        device_id = item.partition.removeprefix(STATE_PREFIX)
        return RuleState.from_dict(item.sort_key, device_id, json.loads(item.doc or "{}"), int(item.version or 0))

    def states_of(self, device_id: str) -> dict[str, RuleState]:
        """Every rule's state for a device (one strongly consistent Query)."""
        try:
            items = self._model.query(f"{STATE_PREFIX}{device_id}", consistent_read=True)
            return {item.sort_key: self._to_state(item) for item in items}
        except PynamoDBException as e:
            raise _unavailable(e, "read states") from e

    def state(self, rule_id: str, device_id: str) -> RuleState:
        try:
            return self._to_state(self._model.get(f"{STATE_PREFIX}{device_id}", rule_id, consistent_read=True))
        except DoesNotExist:
            return RuleState(rule_id, device_id)
        except PynamoDBException as e:
            raise _unavailable(e, "read state") from e

    def states_many(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RuleState]:
        """States of (rule id, device id) pairs, BatchGetItem 100 at a time; missing ones are fresh."""
        wanted = list(dict.fromkeys(pairs))
        out = {pair: RuleState(*pair) for pair in wanted}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys = [(f"{STATE_PREFIX}{device}", rule) for rule, device in wanted[start : start + BATCH_GET_MAX]]
            try:
                for item in self._model.batch_get(keys, consistent_read=True):
                    state = self._to_state(item)
                    out[(state.rule_id, state.device_id)] = state
            except PynamoDBException as e:
                raise _unavailable(e, "read states") from e
        return out

    def commit(self, commit: Commit) -> RuleState:
        """Write a state change, its alerts and its outbox items in one transaction.

        Conditional on the state's version: raises StateConflictError when another
        invocation changed the state since it was read. Returns the state as stored.
        """
        model = self._model
        before, after = commit.before, replace(commit.after, version=commit.before.version + 1)
        state_item = model(
            f"{STATE_PREFIX}{after.device_id}", after.rule_id, doc=_dumps(after.as_dict()), version=after.version
        )
        guard: Condition = model.version == before.version if before.version else model.partition.does_not_exist()
        connection = self._connection()
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.save(state_item, condition=guard)
                for alert in commit.writes.created:
                    transaction.save(self._alert_item(alert))
                for cleared in commit.writes.cleared:
                    transaction.update(
                        model(ALERTS, cleared.alert_id),
                        actions=self._clear_actions(cleared),
                        condition=model.partition.exists(),
                    )
                for notification in commit.notifications:
                    transaction.save(self._outbox_item(notification))
        except TransactWriteError as e:
            reasons = getattr(e, "cancellation_reasons", None) or []
            if any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons):
                raise StateConflictError(f"state of {after.rule_id} on {after.device_id} changed") from e
            raise _unavailable(e, "commit") from e
        except PynamoDBException as e:
            raise _unavailable(e, "commit") from e
        return after

    # --- alerts -----------------------------------------------------------------------------------------------------

    def _alert_item(self, alert: Alert) -> AlertModel:
        return self._model(
            ALERTS,
            alert.alert_id,
            doc=_dumps(alert.raise_doc()),
            alert_state=alert.state,
            severity=alert.severity,
            cleared_at=alert.cleared_at,
            cleared_by=_dumps([reading_dict(r) for r in alert.cleared_by]) if alert.cleared_by else None,
            acknowledged=alert.acknowledged,
            acknowledged_at=alert.acknowledged_at,
            lookup=f"alerts#device#{alert.device_id}",
            lookup_sort=alert.alert_id,
            by_state=f"alerts#state#{alert.state}",
            by_state_sort=f"{SEVERITY_RANK[alert.severity]}#{alert.alert_id}",
            by_severity=f"alerts#severity#{alert.severity}",
            by_severity_sort=alert.alert_id,
        )

    def _clear_actions(self, cleared: Cleared) -> list[Any]:
        model = self._model
        actions: list[Any] = [
            model.alert_state.set("cleared"),
            model.cleared_at.set(cleared.ts_ms),
            model.by_state.set("alerts#state#cleared"),
        ]
        if cleared.readings:
            actions.append(model.cleared_by.set(_dumps([reading_dict(r) for r in cleared.readings])))
        return actions

    def _to_alert(self, item: AlertModel) -> Alert:
        cleared_by = json.loads(item.cleared_by) if item.cleared_by else []
        return Alert.from_raise_doc(
            json.loads(item.doc or "{}"),
            state="cleared" if item.alert_state == "cleared" else "active",
            cleared_at=int(item.cleared_at) if item.cleared_at is not None else None,
            cleared_by=tuple(reading_of(r) for r in cleared_by),
            acknowledged=bool(item.acknowledged),
            acknowledged_at=int(item.acknowledged_at) if item.acknowledged_at is not None else None,
        )

    def get_alert(self, alert_id: str) -> Alert:
        try:
            return self._to_alert(self._model.get(ALERTS, alert_id, consistent_read=True))
        except DoesNotExist as e:
            raise AlertNotFoundError(f"no alert {alert_id!r}") from e
        except PynamoDBException as e:
            raise _unavailable(e, "get alert") from e

    def list_alerts(self, filters: AlertFilter, limit: int, cursor: str | None) -> tuple[list[Alert], str | None]:
        """A page of alerts, newest first (with `state` and no device: most severe first).

        One Query: by device (lookup index) when a device is given, else by state (state
        index, severity as a key prefix), else by severity (severity index), else the
        alerts partition. Filters the chosen key cannot express are filter expressions,
        so a page may hold fewer than `limit` alerts while `next_cursor` says more remain.
        """
        model = self._model
        signature = filters.signature()
        start = _decode_cursor(cursor, signature) if cursor else None
        residual: list[Condition] = []
        query: Callable[..., Any]
        range_condition: Condition | None = None
        if filters.device_id is not None:
            query, partition = model.lookup_index.query, f"alerts#device#{filters.device_id}"
            if filters.state is not None:
                residual.append(model.alert_state == filters.state)
            if filters.severity is not None:
                residual.append(model.severity == filters.severity)
        elif filters.state is not None:
            query, partition = model.state_index.query, f"alerts#state#{filters.state}"
            if filters.severity is not None:
                range_condition = model.by_state_sort.startswith(f"{SEVERITY_RANK[filters.severity]}#")
        elif filters.severity is not None:
            query, partition = model.severity_index.query, f"alerts#severity#{filters.severity}"
        else:
            query, partition = model.query, ALERTS
        if filters.acknowledged is not None:
            residual.append(model.acknowledged == filters.acknowledged)
        filter_condition: Condition | None = None
        for condition in residual:
            filter_condition = condition if filter_condition is None else filter_condition & condition
        try:
            results = query(
                partition,
                range_condition,
                filter_condition,
                scan_index_forward=False,
                limit=limit,
                page_size=limit if filter_condition is None else min(4 * limit, 500),
                last_evaluated_key=start,
            )
            alerts = [self._to_alert(item) for item in results]
            next_key = results.last_evaluated_key
        except PynamoDBException as e:
            raise _unavailable(e, "list alerts") from e
        return alerts, _encode_cursor(signature, next_key)

    def acknowledge(self, alert_id: str, now_ms: int) -> Alert:
        """Acknowledge an alert (once: acknowledging again keeps the first time)."""
        model = self._model
        item = model(ALERTS, alert_id)
        try:
            item.update(
                actions=[model.acknowledged.set(True), model.acknowledged_at.set(now_ms)],
                condition=model.partition.exists() & (model.acknowledged != True),  # noqa: E712
            )
            return self._to_alert(item)
        except UpdateError as e:
            if error_code(e) != CONDITION_FAILED:
                raise _unavailable(e, "acknowledge") from e
        return self.get_alert(alert_id)  # already acknowledged, or AlertNotFoundError

    # --- outbox -----------------------------------------------------------------------------------------------------

    def _outbox_item(self, n: Notification, partition: str = OUTBOX, **extra: Any) -> AlertModel:
        doc = {"channel": n.channel, "created_at": n.created_at, "payload": n.payload}
        return self._model(partition, n.notification_id, doc=_dumps(doc), attempts=0, due_at=n.created_at, **extra)

    def _to_outbox(self, item: AlertModel) -> OutboxItem:
        doc = json.loads(item.doc or "{}")
        notification = Notification(item.sort_key, doc["channel"], int(doc["created_at"]), doc["payload"])
        return OutboxItem(
            notification,
            int(item.attempts or 0),
            int(item.due_at or 0),
            int(item.lease_until) if item.lease_until is not None else None,
            item.last_error,
        )

    def _outbox(self, partition: str, limit: int) -> list[OutboxItem]:
        try:
            items = self._model.query(partition, consistent_read=True, limit=limit, page_size=limit)
            return [self._to_outbox(item) for item in items]
        except PynamoDBException as e:
            raise _unavailable(e, "read outbox") from e

    def pending_notifications(self, limit: int = 500) -> list[OutboxItem]:
        """Notifications not yet delivered (due or not), oldest first."""
        return self._outbox(OUTBOX, limit)

    def failed_notifications(self, limit: int = 500) -> list[OutboxItem]:
        """Notifications given up after too many attempts."""
        return self._outbox(OUTBOX_FAILED, limit)

    def claim(self, item: OutboxItem, now_ms: int, lease_ms: int) -> bool:
        """Take a notification for delivery until now + lease_ms; False when another invocation holds it."""
        model = self._model
        free = model.lease_until.does_not_exist() | (model.lease_until <= now_ms)
        try:
            model(OUTBOX, item.notification.notification_id).update(
                actions=[model.lease_until.set(now_ms + lease_ms)], condition=model.partition.exists() & free
            )
            return True
        except UpdateError as e:
            if error_code(e) == CONDITION_FAILED:
                return False
            raise _unavailable(e, "claim notification") from e

    def delivered(self, item: OutboxItem) -> None:
        try:
            self._model(OUTBOX, item.notification.notification_id).delete()
        except PynamoDBException as e:
            raise _unavailable(e, "delete notification") from e

    def retry_later(self, item: OutboxItem, error: str, due_at: int) -> None:
        model = self._model
        try:
            model(OUTBOX, item.notification.notification_id).update(
                actions=[
                    model.attempts.add(1),
                    model.due_at.set(due_at),
                    model.last_error.set(error[:500]),
                    model.lease_until.remove(),
                ],
                condition=model.partition.exists(),
            )
        except PynamoDBException as e:
            raise _unavailable(e, "reschedule notification") from e

    def give_up(self, item: OutboxItem, error: str) -> None:
        """Move a notification to the failed partition (one transaction: it is never in neither)."""
        model = self._model
        failed = self._outbox_item(item.notification, OUTBOX_FAILED, last_error=error[:500])
        failed.attempts = item.attempts + 1
        connection = self._connection()
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.delete(model(OUTBOX, item.notification.notification_id))
                transaction.save(failed)
        except PynamoDBException as e:
            raise _unavailable(e, "give up notification") from e

    # --- devices (read only) ----------------------------------------------------------------------------------------

    def device_activity(self, device_ids: Sequence[str]) -> dict[str, DeviceActivity]:
        """last_seen (and type, created_at, disabled) of devices: BatchGetItem, 100 keys a call.

        The devices list index does not project last_seen (it changes on every request,
        and projecting it would cost an index write per request), so the offline check
        reads the items themselves, projected to what it needs. Deleted devices are absent.
        """
        wanted = list(dict.fromkeys(device_ids))
        out: dict[str, DeviceActivity] = {}
        names = ["device_id", "device_type", "last_seen", "created_at", "disabled"]
        for start in range(0, len(wanted), BATCH_GET_MAX):
            try:
                for item in self._devices.batch_get(wanted[start : start + BATCH_GET_MAX], attributes_to_get=names):
                    out[item.device_id] = DeviceActivity(
                        item.device_id,
                        item.device_type,
                        int(item.last_seen) if item.last_seen is not None else None,
                        int(item.created_at),
                        bool(item.disabled),
                    )
            except PynamoDBException as e:
                raise _unavailable(e, "read devices") from e
        return out
