"""The WAMP router's state and the device commands in DynamoDB: one table, `RealtimeModel`.

Keys (partition `p` / sort `s`), chosen so that every routing decision is one GetItem or one
Query and nothing ever Scans:

    conn#<conn>       session                    the WAMP session (JSON body); `n` = last INVOCATION id sent
    conn#<conn>       sub#<subscription id>      back-reference to the subscriber item: {"t", "m"}
    conn#<conn>       reg#<registration id>      back-reference to the registration: {"proc"}
    conn#<conn>       call#<invocation id>       a pending call this connection is the callee of
    conn#<conn>       out#<CALL request id>      back-reference to a pending call it is the caller of: {"key"}
    topic#<topic>     <conn>                     an exact subscriber: {"sid", "c", "t", "m"}
    pfx#<parent>      <last part> <conn>         a prefix subscriber of "<parent>.<last part>"
    proc#<procedure>  reg                        the registration; `o` = the callee's connection
    cmd#<device>      <created ms>#<nonce>       a command; `st` status, `r` outcome, `u` updated ms

- PUBLISH: one Query on `topic#<topic>` whatever the number of subscribers (PynamoDB pages past
  1 MB, about 10,000 subscribers). With prefix subscriptions on, one more Query per dotted level
  of the topic: level k reads `pfx#<first k components>` between the next component's first
  character and that component + "!"; " " sorts below every URI character, so each prefix of the
  component is in that range, and the few siblings read with them are filtered out here.
- CALL: GetItem `proc#`, UpdateItem (ADD) of the callee session's counter for the INVOCATION
  id, PutItem of the call (and of the caller's back-reference). YIELD / ERROR / timeout:
  DeleteItem with ReturnValues=ALL_OLD, so of racing answers exactly one takes the call.
- Disconnect: one Query on `conn#<conn>` finds everything the connection holds, then deletes.
- REGISTER: a conditional put (no item, or an expired one) decides `procedure_already_exists`.
- Commands: the id `<device id>~<created ms>~<nonce>` names the item's key ("~" never occurs
  in device ids), so get and mark are one GetItem / UpdateItem, and `queued_commands` is one
  Query over the device's commands in creation order, filtered on status. Marks are
  conditional: queued -> invoked, queued|invoked -> done|failed|timeout, so a command completes once.

TTL (`x`): connection items, subscribers and registrations live 2 h 15 min (API Gateway closes
WebSocket connections after 2 hours); pending calls until their deadline + 5 min; commands for
`command_retention_days`. TTL deletion lags, so reads ignore items already past `x`.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException, UpdateError

from chalicelib.adapters.retry import error_code
from chalicelib.clock import now_ms
from chalicelib.domain.wamp.protocol import MAX_PREFIX_COMPONENTS
from chalicelib.domain.wamp.store import (
    CHALLENGING,
    ESTABLISHED,
    Identity,
    PendingCall,
    Registration,
    Session,
    Subscription,
    call_key,
    split_call_key,
)
from chalicelib.errors import StorageUnavailableError
from chalicelib.models import RealtimeModel

CONDITION_FAILED = "ConditionalCheckFailedException"
CONNECTION_TTL = timedelta(hours=2, minutes=15)  # API Gateway's 2 h connection limit, and slack
CALL_SLACK = timedelta(minutes=5)
SESSION = "session"
QUEUED, INVOKED, DONE, FAILED, TIMED_OUT = "queued", "invoked", "done", "failed", "timeout"
COMMAND_STATUSES = frozenset({QUEUED, INVOKED, DONE, FAILED, TIMED_OUT})
_COMMAND_ID = re.compile(r"^([^~]+)~(\d{13})~([0-9a-f]{12})$")

P = ParamSpec("P")
R = TypeVar("R")


def _storage(fn: Callable[P, R]) -> Callable[P, R]:
    """PynamoDB failures become StorageUnavailableError (the domain's word for them)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PynamoDBException as e:
            raise StorageUnavailableError(f"the realtime table failed: {error_code(e) or type(e).__name__}") from e

    return wrapper


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def _conn(connection_id: str) -> str:
    return f"conn#{connection_id}"


def _subscriber_key(topic: str, match: str, connection_id: str) -> tuple[str, str]:
    if match == "exact":
        return f"topic#{topic}", connection_id
    parent, _, last = topic.rpartition(".")
    return f"pfx#{parent}", f"{last} {connection_id}"


def _proc(procedure: str) -> str:
    return f"proc#{procedure}"


class RealtimeStore:
    """RouterStore on DynamoDB, plus the command records the HTTP API and the router share."""

    def __init__(
        self,
        model: type[RealtimeModel] = RealtimeModel,
        *,
        clock_ms: Callable[[], int] = now_ms,
        command_retention_days: int = 7,
    ) -> None:
        self._model = model
        self._clock = clock_ms
        self._command_retention = timedelta(days=command_retention_days)

    # -- helpers ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock() / 1000, UTC)

    def _live(self, item: RealtimeModel) -> bool:
        return item.expires_at is None or item.expires_at > self._now()

    def _get(self, partition: str, sort_key: str) -> RealtimeModel | None:
        try:
            item = self._model.get(partition, sort_key, consistent_read=True)
        except DoesNotExist:
            return None
        return item if self._live(item) else None

    def _put(self, partition: str, sort_key: str, body: Any, expires_at: datetime, **attrs: Any) -> None:
        self._model(partition, sort_key, body=_dumps(body), expires_at=expires_at, **attrs).save()

    def _delete_all(self, items: Iterable[RealtimeModel]) -> None:
        with self._model.batch_write() as batch:
            for item in items:
                batch.delete(item)

    def _absent_or_expired(self) -> Any:
        model = self._model
        return model.partition.does_not_exist() | (model.expires_at < self._now())

    # -- sessions -----------------------------------------------------------------------------

    @_storage
    def get_session(self, connection_id: str) -> Session | None:
        item = self._get(_conn(connection_id), SESSION)
        if item is None or item.body is None:
            return None
        doc = json.loads(item.body)
        identity = None
        if doc.get("role") is not None:
            identity = Identity(doc["role"], doc.get("device"), doc["authid"])
        state = ESTABLISHED if doc["state"] == ESTABLISHED else CHALLENGING
        return Session(connection_id, state, int(doc.get("sid", 0)), doc.get("req_authid"), identity)

    @_storage
    def put_session(self, session: Session) -> None:
        doc: dict[str, Any] = {
            "state": session.state,
            "sid": session.session_id,
            "req_authid": session.requested_authid,
        }
        if session.identity is not None:
            identity = session.identity
            doc.update(role=identity.role, device=identity.device_id, authid=identity.authid)
        self._put(_conn(session.connection_id), SESSION, doc, self._now() + CONNECTION_TTL, counter=0)

    @_storage
    def next_request_id(self, connection_id: str) -> int | None:
        model = self._model
        item = model(_conn(connection_id), SESSION)
        try:
            item.update(
                actions=[model.counter.add(1)],
                condition=model.partition.exists() & (model.expires_at > self._now()),
            )
        except UpdateError as e:
            if error_code(e) == CONDITION_FAILED:
                return None
            raise
        return int(item.counter or 0)

    # -- broker -------------------------------------------------------------------------------

    @_storage
    def add_subscription(self, subscription: Subscription) -> int:
        conn, sid = subscription.connection_id, subscription.subscription_id
        partition, sort_key = _subscriber_key(subscription.topic, subscription.match, conn)
        expires = self._now() + CONNECTION_TTL
        doc = {"sid": sid, "c": conn, "t": subscription.topic, "m": subscription.match}
        item = self._model(partition, sort_key, body=_dumps(doc), expires_at=expires)
        try:
            item.save(condition=self._absent_or_expired())
        except PutError as e:
            if error_code(e) != CONDITION_FAILED:
                raise
            existing = self._get(partition, sort_key)
            if existing is not None and existing.body is not None:
                return int(json.loads(existing.body)["sid"])
            item.save()  # it expired or went away in between
        self._put(_conn(conn), f"sub#{sid}", {"t": subscription.topic, "m": subscription.match}, expires)
        return sid

    @_storage
    def remove_subscription(self, connection_id: str, subscription_id: int) -> bool:
        ref = self._get(_conn(connection_id), f"sub#{subscription_id}")
        if ref is None or ref.body is None:
            return False
        doc = json.loads(ref.body)
        self._delete_all([self._model(*_subscriber_key(doc["t"], doc["m"], connection_id)), ref])
        return True

    @_storage
    def subscribers(self, topic: str, *, include_prefix: bool = False) -> list[Subscription]:
        model = self._model
        found = [
            self._subscription(item) for item in model.query(f"topic#{topic}", consistent_read=True) if self._live(item)
        ]
        if include_prefix:
            parts = topic.split(".")
            for level in range(min(len(parts), MAX_PREFIX_COMPONENTS)):
                parent, component = ".".join(parts[:level]), parts[level]
                condition = model.sort_key.between(component[0], component + "!")
                for item in model.query(f"pfx#{parent}", condition, consistent_read=True):
                    sub = self._subscription(item)
                    if self._live(item) and sub.matches(topic):
                        found.append(sub)
        return found

    @staticmethod
    def _subscription(item: RealtimeModel) -> Subscription:
        doc = json.loads(item.body or "{}")
        match: Literal["exact", "prefix"] = "prefix" if doc.get("m") == "prefix" else "exact"
        return Subscription(doc["c"], int(doc["sid"]), doc["t"], match)

    # -- dealer -------------------------------------------------------------------------------

    @_storage
    def add_registration(self, registration: Registration) -> bool:
        conn, rid = registration.connection_id, registration.registration_id
        expires = self._now() + CONNECTION_TTL
        item = self._model(
            _proc(registration.procedure), "reg", body=_dumps({"rid": rid}), expires_at=expires, owner=conn
        )
        try:
            item.save(condition=self._absent_or_expired())
        except PutError as e:
            if error_code(e) == CONDITION_FAILED:
                return False
            raise
        self._put(_conn(conn), f"reg#{rid}", {"proc": registration.procedure}, expires)
        return True

    @_storage
    def remove_registration(self, connection_id: str, registration_id: int) -> bool:
        ref = self._get(_conn(connection_id), f"reg#{registration_id}")
        if ref is None or ref.body is None:
            return False
        self._delete_registration(json.loads(ref.body)["proc"], connection_id)
        ref.delete()
        return True

    def _delete_registration(self, procedure: str, connection_id: str) -> None:
        """Delete a registration if this connection still holds it."""
        model = self._model
        try:
            model(_proc(procedure), "reg").delete(condition=model.owner == connection_id)
        except DeleteError as e:
            if error_code(e) != CONDITION_FAILED:
                raise

    @_storage
    def registration(self, procedure: str) -> Registration | None:
        item = self._get(_proc(procedure), "reg")
        if item is None or item.owner is None or item.body is None:
            return None
        return Registration(item.owner, int(json.loads(item.body)["rid"]), procedure)

    @_storage
    def put_call(self, call: PendingCall) -> None:
        expires = datetime.fromtimestamp(call.deadline_ms / 1000, UTC) + CALL_SLACK
        doc = {
            "callee": call.callee_connection,
            "inv": call.invocation_id,
            "caller": call.caller_connection,
            "req": call.caller_request_id,
            "cmd": call.command_id,
            "deadline": call.deadline_ms,
            "proc": call.procedure,
        }
        self._put(_conn(call.callee_connection), f"call#{call.invocation_id}", doc, expires)
        if call.caller_connection is not None:
            self._put(_conn(call.caller_connection), f"out#{call.caller_request_id}", {"key": call.key}, expires)

    @staticmethod
    def _call(body: str | None) -> PendingCall:
        doc = json.loads(body or "{}")
        return PendingCall(
            key=call_key(doc["callee"], int(doc["inv"])),
            callee_connection=doc["callee"],
            invocation_id=int(doc["inv"]),
            caller_connection=doc.get("caller"),
            caller_request_id=doc.get("req"),
            command_id=doc.get("cmd"),
            deadline_ms=int(doc["deadline"]),
            procedure=doc["proc"],
        )

    @_storage
    def get_call(self, key: str) -> PendingCall | None:
        parts = split_call_key(key)
        if parts is None:
            return None
        item = self._get(_conn(parts[0]), f"call#{parts[1]}")
        return None if item is None else self._call(item.body)

    @_storage
    def take_call(self, key: str) -> PendingCall | None:
        parts = split_call_key(key)
        if parts is None:
            return None
        answer = self._model._get_connection().delete_item(_conn(parts[0]), f"call#{parts[1]}", return_values="ALL_OLD")
        attributes = (answer or {}).get("Attributes")
        if not attributes:
            return None
        call = self._call(self._model.from_raw_data(attributes).body)
        if call.caller_connection is not None:
            self._model(_conn(call.caller_connection), f"out#{call.caller_request_id}").delete()
        return call

    @_storage
    def take_call_by_caller(self, caller_connection: str, request_id: int) -> PendingCall | None:
        ref = self._get(_conn(caller_connection), f"out#{request_id}")
        if ref is None or ref.body is None:
            return None
        call = self.take_call(json.loads(ref.body)["key"])
        if call is None:
            ref.delete()  # stale: the call was answered
        return call

    @_storage
    def drop_connection(self, connection_id: str) -> list[PendingCall]:
        model = self._model
        taken: list[PendingCall] = []
        doomed: list[RealtimeModel] = []
        for item in model.query(_conn(connection_id), consistent_read=True):
            kind = item.sort_key.partition("#")[0]
            doc = json.loads(item.body) if item.body else {}
            if kind == "sub":
                doomed.append(model(*_subscriber_key(doc["t"], doc["m"], connection_id)))
            elif kind == "reg":
                self._delete_registration(doc["proc"], connection_id)
            elif kind == "call":
                call = self.take_call(call_key(connection_id, int(item.sort_key.partition("#")[2])))
                if call is not None:
                    taken.append(call)
                continue  # take_call deleted it
            elif kind == "out":
                self.take_call(doc["key"])  # the callee's answer will find nothing
            doomed.append(item)
        self._delete_all(doomed)
        return taken

    # -- the WebSocket API's management endpoint -----------------------------------------------

    @_storage
    def endpoint(self) -> str | None:
        """The @connections endpoint recorded by the connect handler (for sends outside it)."""
        item = self._get("config", "endpoint")
        return None if item is None else str(json.loads(item.body)["url"])

    @_storage
    def remember_endpoint(self, url: str) -> None:
        self._put(
            "config", "endpoint", {"url": url}, datetime.fromtimestamp(self._clock() / 1000, UTC) + timedelta(days=365)
        )

    # -- commands -----------------------------------------------------------------------------

    @_storage
    def create_command(
        self, device_id: str, procedure: str, args: list[Any], kwargs: dict[str, Any], timeout_ms: int
    ) -> dict[str, Any]:
        """A queued command for a device's procedure; returns its record (see get_command)."""
        now = self._clock()
        nonce = secrets.token_hex(6)
        doc = {
            "device_id": device_id,
            "procedure": procedure,
            "args": args,
            "kwargs": kwargs,
            "timeout_ms": timeout_ms,
            "created_ms": now,
        }
        item = self._model(
            f"cmd#{device_id}",
            f"{now:013d}#{nonce}",
            body=_dumps(doc),
            status=QUEUED,
            updated_at=now,
            expires_at=datetime.fromtimestamp(now / 1000, UTC) + self._command_retention,
        )
        item.save(condition=self._model.partition.does_not_exist())
        return self._command(item)

    @_storage
    def get_command(self, command_id: str) -> dict[str, Any] | None:
        key = _command_key(command_id)
        if key is None:
            return None
        item = self._get(*key)
        return None if item is None else self._command(item)

    @_storage
    def queued_commands(self, device_id: str, limit: int) -> list[dict[str, Any]]:
        """A device's queued commands, oldest first."""
        model = self._model
        items = model.query(
            f"cmd#{device_id}", filter_condition=model.status == QUEUED, limit=limit, consistent_read=True
        )
        return [self._command(item) for item in items if self._live(item)]

    @_storage
    def mark_command(self, command_id: str, status: str, result: Any = None, error: Any = None) -> bool:
        """Move a command on: queued -> invoked; queued|invoked -> done|failed|timeout. False if
        the command is unknown or already past that point (so it completes once)."""
        if status not in COMMAND_STATUSES or status == QUEUED:
            raise ValueError(f"cannot mark a command {status!r}")
        key = _command_key(command_id)
        if key is None:
            return False
        model = self._model
        actions: list[Any] = [model.status.set(status), model.updated_at.set(self._clock())]
        if result is not None or error is not None:
            outcome = {"result": result} if error is None else {"error": error}
            actions.append(model.outcome.set(_dumps(outcome)))
        allowed = model.status == QUEUED if status == INVOKED else model.status.is_in(QUEUED, INVOKED)
        try:
            model(*key).update(actions=actions, condition=allowed)
        except UpdateError as e:
            if error_code(e) == CONDITION_FAILED:
                return False
            raise
        return True

    @staticmethod
    def _command(item: RealtimeModel) -> dict[str, Any]:
        doc = json.loads(item.body or "{}")
        outcome = json.loads(item.outcome) if item.outcome else {}
        created = int(doc["created_ms"])
        nonce = item.sort_key.partition("#")[2]
        return {
            "id": f"{doc['device_id']}~{created:013d}~{nonce}",
            "device_id": doc["device_id"],
            "procedure": doc["procedure"],
            "args": doc.get("args", []),
            "kwargs": doc.get("kwargs", {}),
            "timeout_ms": doc.get("timeout_ms"),
            "status": item.status,
            "created_ms": created,
            "updated_ms": int(item.updated_at) if item.updated_at is not None else created,
            "result": outcome.get("result"),
            "error": outcome.get("error"),
        }


def _command_key(command_id: str) -> tuple[str, str] | None:
    found = _COMMAND_ID.match(command_id)
    if found is None:
        return None
    device_id, created, nonce = found.groups()
    return f"cmd#{device_id}", f"{created}#{nonce}"
