"""The device registry and device state in DynamoDB (PynamoDB)."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, PutError, PynamoDBException, UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib.adapters.retry import DEFAULT_POLICY, RetryPolicy, error_code
from chalicelib.domain.chunks import hour_bucket
from chalicelib.domain.devices import Device, DeviceChanges
from chalicelib.domain.readings import Reading
from chalicelib.domain.state import FoldedState
from chalicelib.errors import DeviceExistsError, DeviceNotFoundError, StorageUnavailableError
from chalicelib.models import DEVICE_KIND, DeviceModel

CONDITION_FAILED = "ConditionalCheckFailedException"
# Every device's first request of an hour writes the active-hour index; spreading the key
# over shards keeps the top of the hour under DynamoDB's 1,000 writes/s per partition key.
ACTIVE_SHARDS = 64  # 1 M devices at one request a minute: ~260 WCU/s a key at the top of the hour (headroom 3.8)


def active_key(device_id: str, ts_ms: int) -> str:
    """The active-hour index key of a device at a time: YYYYMMDDHH#<shard>."""
    return f"{hour_bucket(ts_ms)}#{zlib.crc32(device_id.encode()) % ACTIVE_SHARDS:02d}"


STATE_RETRIES = 5  # conditional-write conflicts, not throttling (that is adapters.retry's)

T = TypeVar("T")


@dataclass(frozen=True)
class Credential:
    """What a token hash resolves to."""

    device_id: str
    token_hash: str
    disabled: bool


@dataclass(frozen=True)
class DeviceState:
    """A device's state as the pages show it: latest readings in (metric, unit) order, last_seen."""

    device_id: str
    last_seen: int | None
    latest: list[Reading]


def _to_device(item: DeviceModel) -> Device:
    return Device(
        device_id=item.device_id,
        name=item.name,
        device_type=item.device_type,
        attributes=item.attributes.as_dict() if item.attributes else {},
        disabled=bool(item.disabled),
        created_at=int(item.created_at),
        updated_at=int(item.updated_at) if item.updated_at is not None else 0,
        # Absent from the list index, which does not project it.
        last_seen=int(item.last_seen) if item.last_seen is not None else None,
    )


def _state_key(metric: str, unit: str) -> str:
    # A document-path-safe key: metric names never hold "~"; units may hold anything.
    return f"{metric}~{unit.encode().hex()}"


def _parse_state_key(key: str) -> tuple[str, str]:
    metric, _, unit_hex = key.rpartition("~")
    return metric, bytes.fromhex(unit_hex).decode()


def _state_entry(reading: Reading) -> dict[str, Any]:
    """A reading as a state map entry. DynamoDB numbers span magnitudes 1e-130 to 1e126 only;
    a (finite, valid) float outside that range is kept as text under "f"."""
    value = reading.value
    if type(value) is float and value != 0 and not 1e-130 <= abs(value) < 1e126:
        return {"t": reading.ts_ms, "f": repr(value)}
    return {"t": reading.ts_ms, "v": value}


def _parse_entry(key: str, entry: dict[str, Any]) -> Reading:
    metric, unit = _parse_state_key(key)
    value = float(entry["f"]) if "f" in entry else entry["v"]
    return Reading(metric, unit, int(entry["t"]), value)


def _to_folded(item: DeviceModel) -> FoldedState:
    stored = item.state.as_dict() if item.state else {}
    latest = {(r.metric, r.unit): r for r in (_parse_entry(k, e) for k, e in stored.items())}
    return FoldedState(
        device_id=item.device_id,
        created_at=int(item.created_at),
        latest=latest,
        last_seen=int(item.last_seen) if item.last_seen is not None else None,
        folded_at=int(item.folded_at) if item.folded_at is not None else None,
        state_ts=int(item.state_ts) if item.state_ts is not None else None,
    )


def _unavailable(e: PynamoDBException) -> StorageUnavailableError:
    return StorageUnavailableError(f"the devices table failed: {error_code(e) or type(e).__name__}")


class DeviceRepository:
    """CRUD on devices, token lookups, and forward-only state updates.

    Every DynamoDB call goes through `_call`: retried within the request's budget.
    """

    def __init__(self, model: type[DeviceModel] = DeviceModel, *, retries: RetryPolicy = DEFAULT_POLICY) -> None:
        self._model = model
        self._retries = retries

    def _call(self, what: str, attempt: Callable[[], T]) -> T:
        return self._retries.budget().call(f"{what} on devices", attempt)

    def _load(self, device_id: str, consistent: bool = True) -> DeviceModel:
        try:
            return self._call("GetItem", lambda: self._model.get(device_id, consistent_read=consistent))
        except DoesNotExist as e:
            raise DeviceNotFoundError(f"no device {device_id!r}") from e
        except PynamoDBException as e:
            raise _unavailable(e) from e

    def create(self, device_id: str, changes: DeviceChanges, token_hash: str, now_ms: int) -> Device:
        item = self._model(
            device_id,
            kind=DEVICE_KIND,
            name=changes.name or device_id,
            device_type=changes.device_type or "generic",
            attributes=changes.attributes or {},
            token_hash=token_hash,
            disabled=False,
            created_at=now_ms,
            updated_at=now_ms,
            state={},
        )
        try:
            self._call("PutItem", lambda: item.save(condition=self._model.device_id.does_not_exist()))
        except PutError as e:
            if error_code(e) == CONDITION_FAILED:
                raise DeviceExistsError(f"device {device_id!r} already exists") from e
            raise _unavailable(e) from e
        return _to_device(item)

    def get(self, device_id: str) -> Device:
        return _to_device(self._load(device_id, consistent=False))

    def list_page(self, limit: int, start_after: str | None) -> tuple[list[Device], str | None]:
        """A page of devices in id order from the list index, and the last id if more remain."""
        last_key = None
        if start_after is not None:
            last_key = {"kind": {"S": DEVICE_KIND}, "device_id": {"S": start_after}}

        def attempt() -> tuple[list[Device], bool]:
            results = self._model.list_index.query(
                DEVICE_KIND, limit=limit, page_size=limit, last_evaluated_key=last_key
            )
            return [_to_device(item) for item in results], results.last_evaluated_key is not None

        try:
            devices, more = self._call("Query", attempt)
        except PynamoDBException as e:
            raise _unavailable(e) from e
        return devices, (devices[-1].device_id if more and devices else None)

    def update(self, device_id: str, changes: DeviceChanges, now_ms: int) -> Device:
        model = self._model
        actions: list[Any] = [model.updated_at.set(now_ms)]
        if changes.name is not None:
            actions.append(model.name.set(changes.name))
        if changes.device_type is not None:
            actions.append(model.device_type.set(changes.device_type))
        if changes.attributes is not None:
            actions.append(model.attributes.set(changes.attributes))
        if changes.disabled is not None:
            actions.append(model.disabled.set(changes.disabled))
        item = model(device_id)
        try:
            self._call("UpdateItem", lambda: item.update(actions=actions, condition=model.device_id.exists()))
        except UpdateError as e:
            if error_code(e) == CONDITION_FAILED:
                raise DeviceNotFoundError(f"no device {device_id!r}") from e
            raise _unavailable(e) from e
        return _to_device(item)

    def set_token_hash(self, device_id: str, token_hash: str, now_ms: int) -> None:
        model = self._model
        try:
            self._call(
                "UpdateItem",
                lambda: model(device_id).update(
                    actions=[model.token_hash.set(token_hash), model.updated_at.set(now_ms)],
                    condition=model.device_id.exists(),
                ),
            )
        except UpdateError as e:
            if error_code(e) == CONDITION_FAILED:
                raise DeviceNotFoundError(f"no device {device_id!r}") from e
            raise _unavailable(e) from e

    def delete(self, device_id: str) -> None:
        model = self._model
        try:
            self._call("DeleteItem", lambda: model(device_id).delete(condition=model.device_id.exists()))
        except PynamoDBException as e:
            if error_code(e) == CONDITION_FAILED:
                raise DeviceNotFoundError(f"no device {device_id!r}") from e
            raise _unavailable(e) from e

    def find_by_token_hash(self, token_hash: str) -> Credential | None:
        """Resolve a token hash: GSI lookup, then a consistent read of the device.

        The index is eventually consistent, so the device item (strongly read) has the
        final word: a rotated-out token finds a device whose hash no longer matches.
        """
        try:
            hits = self._call("Query", lambda: list(self._model.token_index.query(token_hash, limit=2)))
        except PynamoDBException as e:
            raise _unavailable(e) from e
        for hit in hits:
            try:
                item = self._load(hit.device_id)
            except DeviceNotFoundError:
                continue
            return Credential(item.device_id, item.token_hash, bool(item.disabled))
        return None

    def find_credential(self, device_id: str, consistent: bool = False) -> Credential | None:
        """A device's token hash and disabled flag: one GetItem, None if there is no such device.

        Eventually consistent by default (half the read units of a consistent read); the
        projection saves transfer and parsing of the device's state, not read units.
        """
        model = self._model
        names = [model.device_id.attr_name, model.token_hash.attr_name, model.disabled.attr_name]
        try:
            item = self._call(
                "GetItem", lambda: model.get(device_id, consistent_read=consistent, attributes_to_get=names)
            )
        except DoesNotExist:
            return None
        except PynamoDBException as e:
            raise _unavailable(e) from e
        return Credential(item.device_id, item.token_hash, bool(item.disabled))

    def record_state(self, device_id: str, latest: dict[tuple[str, str], Reading], now_ms: int) -> None:
        """Move the device's latest values and last_seen (to `now_ms`, the request's received_at) forward,
        never back. The request path calls it only for a request with late readings (domain.ingest);
        the live stream folds the rest (domain.state), and neither touches the other's fold mark.

        The common case (readings newer than anything stored, last_seen older) is one conditional
        UpdateItem. Anything else falls back to read, merge, conditional write.
        """
        if not latest:
            return
        model = self._model
        oldest_new = min(r.ts_ms for r in latest.values())
        newest_new = max(r.ts_ms for r in latest.values())
        actions: list[Any] = [model.state[_state_key(m, u)].set(_state_entry(r)) for (m, u), r in latest.items()]
        actions += [
            model.last_seen.set(now_ms),
            model.active_hour.set(active_key(device_id, now_ms)),
            model.state_ts.set(newest_new),
        ]
        condition: Condition = (
            model.device_id.exists()
            & (model.state_ts.does_not_exist() | (model.state_ts <= oldest_new))
            & (model.last_seen.does_not_exist() | (model.last_seen <= now_ms))
        )
        try:
            self._call("UpdateItem", lambda: model(device_id).update(actions=actions, condition=condition))
            return
        except UpdateError as e:
            if error_code(e) != CONDITION_FAILED:
                raise _unavailable(e) from e
        self._merge_state(device_id, latest, now_ms)

    def _merge_state(self, device_id: str, latest: dict[tuple[str, str], Reading], now_ms: int) -> None:
        model = self._model
        for _ in range(STATE_RETRIES):
            item = self._load(device_id)
            stored = item.state.as_dict() if item.state else {}
            actions: list[Any] = []
            newest = int(item.state_ts) if item.state_ts is not None else None
            for (metric, unit), reading in latest.items():
                key = _state_key(metric, unit)
                current = stored.get(key)
                if current is None or int(current["t"]) <= reading.ts_ms:
                    actions.append(model.state[key].set(_state_entry(reading)))
                    newest = reading.ts_ms if newest is None else max(newest, reading.ts_ms)
            last_seen = max(int(item.last_seen or 0), now_ms)
            actions += [model.last_seen.set(last_seen), model.active_hour.set(active_key(device_id, last_seen))]
            if newest is not None:
                actions.append(model.state_ts.set(newest))
            guard = model.state_ts == item.state_ts if item.state_ts is not None else model.state_ts.does_not_exist()
            update = functools.partial(model(device_id).update, actions, model.device_id.exists() & guard)
            try:
                self._call("UpdateItem", update)
                return
            except UpdateError as e:
                if error_code(e) != CONDITION_FAILED:
                    raise _unavailable(e) from e
        raise StorageUnavailableError("device state is too contended; retry")

    def count_active(self, hour: str) -> int:
        """Devices whose last request fell in an hour bucket (YYYYMMDDHH): one Query per shard."""
        try:
            count = self._model.active_index.count
            keys = [f"{hour}#{s:02d}" for s in range(ACTIVE_SHARDS)]
            return sum(int(self._call("Query", functools.partial(count, key))) for key in keys)
        except PynamoDBException as e:
            raise _unavailable(e) from e

    def folded(self, device_id: str, consistent: bool = False) -> FoldedState:
        """The state the device item holds (folded by the live stream, or by a late request)."""
        return _to_folded(self._load(device_id, consistent=consistent))

    def save_fold(self, before: FoldedState, after: FoldedState) -> bool:
        """Write a fold: the series that changed, last_seen, the active-hour key, state_ts, the mark.

        One UpdateItem guarded by what `before` read (state_ts, last_seen, folded_at), so a
        concurrent fold or late request is never overwritten: False when the guard failed
        (read and merge again). Raises StorageUnavailableError (also when the device is gone).
        """
        model = self._model
        actions: list[Any] = [
            model.state[_state_key(m, u)].set(_state_entry(r))
            for (m, u), r in after.latest.items()
            if before.latest.get((m, u)) != r
        ]
        if after.last_seen is not None and after.last_seen != before.last_seen:
            actions.append(model.last_seen.set(after.last_seen))
            hour = active_key(before.device_id, after.last_seen)
            if before.last_seen is None or hour != active_key(before.device_id, before.last_seen):
                actions.append(model.active_hour.set(hour))
        if after.state_ts is not None and after.state_ts != before.state_ts:
            actions.append(model.state_ts.set(after.state_ts))
        if after.folded_at is not None and after.folded_at != before.folded_at:
            actions.append(model.folded_at.set(after.folded_at))
        if not actions:
            return True
        guard: Condition = model.device_id.exists()
        for attribute, value in (
            (model.state_ts, before.state_ts),
            (model.last_seen, before.last_seen),
            (model.folded_at, before.folded_at),
        ):
            guard &= attribute.does_not_exist() if value is None else attribute == value
        try:
            self._call("UpdateItem", lambda: model(before.device_id).update(actions=actions, condition=guard))
        except UpdateError as e:
            if error_code(e) == CONDITION_FAILED:
                return False
            raise _unavailable(e) from e
        return True

    def state(self, device_id: str) -> DeviceState:
        """The folded state (one eventually consistent GetItem): what the pages show.

        Behind the newest request by at most domain.state.FOLD_INTERVAL_MS plus the stream's
        delay; GET /v1/devices/{id}/state reads the exact state (domain.state.DeviceStates.exact).
        """
        folded = self.folded(device_id)
        return DeviceState(device_id, folded.last_seen, folded.readings())
