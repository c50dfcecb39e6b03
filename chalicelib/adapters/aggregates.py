"""Job outputs the API serves: hourly rollups (RollupStore) and the inverted index, in DynamoDB."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.exceptions import DeleteError, PynamoDBException

from chalicelib.adapters.retry import DEFAULT_POLICY, RetryPolicy, put_items
from chalicelib.domain.rollup_codec import decode_devices, decode_series, encode_devices, encode_series
from chalicelib.domain.rollups import HOUR_MS, Partial, SeriesHour
from chalicelib.errors import StorageUnavailableError
from chalicelib.models import AggregateModel

T = TypeVar("T")

ROLLUP_PREFIX = "rollup#"
WORD_PREFIX = "word#"


def rollup_item(row: dict[str, Any]) -> AggregateModel:
    """The daily job's former item, one per series-hour (kept to price it against RollupStore)."""
    return AggregateModel(
        f"{ROLLUP_PREFIX}{row['device_id']}",
        f"{row['metric']}#{row['hour']}#{row['unit']}",
        row=json.dumps(row, separators=(",", ":")),
    )


def index_items(row: dict[str, Any], day: str) -> list[AggregateModel]:
    """One item per posting of a word, per day (a re-run of the day overwrites them)."""
    return [
        AggregateModel(
            f"{WORD_PREFIX}{row['word']}",
            f"{posting['device_id']}#{posting['metric']}#{day}",
            row=json.dumps(posting, separators=(",", ":")),
        )
        for posting in row["postings"]
    ]


class AggregateStore:
    """The inverted index: writes its postings (idempotent keys) and answers /v1/search with a Query."""

    def __init__(self, model: type[AggregateModel] = AggregateModel, *, retries: RetryPolicy = DEFAULT_POLICY) -> None:
        self._model = model
        self._retries = retries

    def put(self, items: Iterable[AggregateModel]) -> int:
        serialized = [item.serialize() for item in items]
        put_items(self._model, serialized, self._retries)
        return len(serialized)

    def _query(self, partition: str, condition: Any = None) -> list[dict[str, Any]]:
        def attempt() -> list[dict[str, Any]]:
            return [json.loads(item.row) for item in self._model.query(partition, condition)]

        try:
            return self._retries.budget().call("Query on aggregates", attempt)
        except PynamoDBException as e:
            raise StorageUnavailableError("the aggregates table could not be read") from e

    def postings(self, word: str) -> list[dict[str, Any]]:
        """Every (device, metric) whose string values held the word, summed over days."""
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for posting in self._query(f"{WORD_PREFIX}{word}"):
            key = (posting["device_id"], posting["metric"])
            seen = merged.get(key)
            if seen is None:
                merged[key] = dict(posting)
            else:
                seen["count"] += posting["count"]
                seen["first_ts"] = min(seen["first_ts"], posting["first_ts"])
                seen["last_ts"] = max(seen["last_ts"], posting["last_ts"])
        return sorted(merged.values(), key=lambda p: (-p["count"], p["device_id"], p["metric"]))


# --- hourly rollups: day items, cross-device hour pages, the day manifest, the watermark --------

DAY_PREFIX = "rollday#"
PAGE_PREFIX = "rollpage#"
MANIFEST_SORT = "manifest"
WATERMARK_KEY = ("rollup#watermark", "watermark")
DIRTY_PARTITION = "rolldirty"
# A page under 1 KB costs one write unit and holds several devices' hour, so a device-hour
# costs a fraction of a write unit; 24 of them still read in a few read units. 800 bytes of
# blob leave room for the key and for pages above the mean.
PAGE_TARGET_BYTES = 800
PAGE_SPLIT_BYTES = 350_000  # under DynamoDB's 400 KB item limit, with room for the key
PAGE_TTL_S = 30 * 86_400  # pages outlive their day's compaction by far; day items keep the data
DAY_MS = 24 * HOUR_MS


def day_of(hour_ms: int) -> str:
    """The UTC day (YYYY-MM-DD) of a time."""
    return datetime.fromtimestamp(hour_ms / 1000, UTC).strftime("%Y-%m-%d")


def day_start_ms(day: str) -> int:
    """Midnight UTC of a YYYY-MM-DD day, in ms."""
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def shard_of(device_id: str, shards: int) -> int:
    """The stable page shard of a device (crc32: the same in every process and language)."""
    return zlib.crc32(device_id.encode()) % shards


def shards_for(rows: Mapping[str, Mapping[SeriesHour, Partial]], hour_ms: int) -> int:
    """How many page shards a day gets, from its first rolled hour: pages near PAGE_TARGET_BYTES.

    A first guess from each device's own encoding, then corrected by the pages it gives
    (several devices in one blob compress better than each alone).
    """
    total = sum(len(encode_devices({d: series}, hour_ms)) for d, series in rows.items())
    guess = max(1, math.ceil(total / PAGE_TARGET_BYTES))
    if guess == 1:
        return 1
    groups: dict[int, dict[str, Mapping[SeriesHour, Partial]]] = {}
    for device, series in rows.items():
        groups.setdefault(shard_of(device, guess), {})[device] = series
    packed = sum(len(encode_devices(group, hour_ms)) for group in groups.values())
    return max(1, round(packed / PAGE_TARGET_BYTES))


@dataclass
class Manifest:
    """A day's page layout and progress: shard count, hours rolled, compacted or not."""

    shards: int
    hours: set[int] = field(default_factory=set)
    compacted: bool = False

    def row(self) -> str:
        return json.dumps({"shards": self.shards, "hours": sorted(self.hours), "compacted": self.compacted})

    @classmethod
    def of(cls, row: str) -> Manifest:
        data = json.loads(row)
        return cls(int(data["shards"]), set(data["hours"]), bool(data["compacted"]))


class RollupStore:
    """Hourly Partials in the aggregates table (implements domain.rollups.RollupReader).

    Closed hours of a day not yet compacted live in cross-device hour pages
    (`rollpage#<day>#<shard>`, sort `HH` or `HH#k`); once the day's 24 hours are rolled the day is
    compacted into one item per device (`rollday#<device>`, sort `YYYY-MM-DD`), so a month of
    hourly rows is one Query. Every write is keyed by content position, so a retry rewrites the
    same items.
    """

    def __init__(self, model: type[AggregateModel] = AggregateModel, *, retries: RetryPolicy = DEFAULT_POLICY) -> None:
        self._model = model
        self._retries = retries
        self._compacted: dict[str, Manifest] = {}  # compacted manifests never change
        # A day's shard count is fixed by its first rolled hour: learnt from the watermark item (which
        # names the open day's), it spares readers the manifest's GetItem for that day.
        self._shards: dict[str, int] = {}
        self._written: dict[str, Manifest] = {}  # the manifests this process put, by day

    # -- low level --------------------------------------------------------------------------

    def _call(self, what: str, attempt: Callable[[], T]) -> T:
        try:
            return self._retries.budget().call(what, attempt)
        except PynamoDBException as e:
            raise StorageUnavailableError("the aggregates table could not be read") from e

    def _get(self, partition: str, sort: str, *, consistent: bool = False) -> AggregateModel | None:
        def attempt() -> AggregateModel | None:
            try:
                return self._model.get(partition, sort, consistent_read=consistent)
            except self._model.DoesNotExist:
                return None

        return self._call("GetItem on aggregates", attempt)

    def _query(self, partition: str, condition: Any = None) -> list[AggregateModel]:
        return self._call("Query on aggregates", lambda: list(self._model.query(partition, condition)))

    def _put(self, items: Iterable[AggregateModel]) -> int:
        serialized = [item.serialize() for item in items]
        put_items(self._model, serialized, self._retries)
        return len(serialized)

    # -- the watermark ------------------------------------------------------------------------

    def covered_until_ms(self, device_id: str | None = None) -> int:
        """Start of the first hour not rolled yet (0 before the first run); with `device_id`, no later
        than that device's first dirty hour (late readings not re-rolled yet: RollupReader)."""
        item = self._get(*WATERMARK_KEY)
        if item is None or not item.row:
            return 0
        row = json.loads(item.row)
        self._shards.update({str(day): int(n) for day, n in row.get("shards", {}).items()})
        until = int(row["until_ms"])
        if device_id is not None:
            first = self._call(
                "Query on aggregates",
                lambda: list(self._model.query(f"{DIRTY_PARTITION}#{device_id}", limit=1)),
            )
            if first:
                until = min(until, int(first[0].sort_key))
        return until

    def set_covered_until(self, until_ms: int) -> None:
        """Advance the watermark (the job, after an hour's pages and manifest are written), naming the
        shard count of the day of the last hour it covers while that day is open."""
        row: dict[str, Any] = {"until_ms": until_ms}
        day = day_of(until_ms - HOUR_MS)
        manifest = self._written.get(day) or self.manifest(day, consistent=True)
        if manifest is not None and not manifest.compacted:
            row["shards"] = {day: manifest.shards}
        self._put([self._model(*WATERMARK_KEY, row=json.dumps(row))])

    # -- manifests ----------------------------------------------------------------------------

    def manifest(self, day: str, *, consistent: bool = False) -> Manifest | None:
        """The day's manifest (cached once compacted), or None if no hour of it was rolled."""
        cached = self._compacted.get(day)
        if cached is not None:
            return cached
        item = self._get(f"{PAGE_PREFIX}{day}", MANIFEST_SORT, consistent=consistent)
        if item is None or not item.row:
            return None
        found = Manifest.of(item.row)
        if found.compacted:
            self._compacted[day] = found
        return found

    def manifest_item(self, day: str, manifest: Manifest) -> AggregateModel:
        """The day's manifest item."""
        return self._model(f"{PAGE_PREFIX}{day}", MANIFEST_SORT, row=manifest.row())

    # -- writes -------------------------------------------------------------------------------

    def page_items(
        self, day: str, hour_ms: int, shards: int, rows: Mapping[str, Mapping[SeriesHour, Partial]]
    ) -> list[AggregateModel]:
        """An hour's pages: devices grouped by shard, one blob each (split past PAGE_SPLIT_BYTES)."""
        groups: dict[int, dict[str, Mapping[SeriesHour, Partial]]] = {}
        for device, series in rows.items():
            if series:
                groups.setdefault(shard_of(device, shards), {})[device] = series
        hh = f"{(hour_ms - day_start_ms(day)) // HOUR_MS:02d}"
        expires = datetime.fromtimestamp((day_start_ms(day) + DAY_MS) / 1000 + PAGE_TTL_S, UTC)
        items = []
        for shard, devices in sorted(groups.items()):
            for k, blob in enumerate(_split_pages(devices, hour_ms)):
                sort = hh if k == 0 else f"{hh}#{k}"
                items.append(self._model(f"{PAGE_PREFIX}{day}#{shard}", sort, blob=blob, expires_at=expires))
        return items

    def day_item(self, device_id: str, day: str, series: Mapping[SeriesHour, Partial]) -> AggregateModel:
        """A device's day item: every series' hourly Partials of the day."""
        return self._model(f"{DAY_PREFIX}{device_id}", day, blob=encode_series(series, day_start_ms(day)))

    def put_hour(self, hour_ms: int, rows: Mapping[str, Mapping[SeriesHour, Partial]]) -> Manifest:
        """Store one whole closed hour of every device (device -> series-hour -> Partial).

        Idempotent: a retry writes the same pages and the same manifest. Returns the day's
        manifest (compacted or not: a day is compacted when its 24th hour is put).
        """
        day = day_of(hour_ms)
        manifest = self.manifest(day, consistent=True)
        if manifest is not None and manifest.compacted:
            # a re-run of an hour of a compacted day: replace each device's hour in its day item
            hour_set = {hour_ms}
            for device, series in rows.items():
                self.replace_hours(device, series, hour_set)
            return manifest
        if manifest is None:
            manifest = Manifest(shards_for(rows, hour_ms))
        self._put(self.page_items(day, hour_ms, manifest.shards, rows))
        manifest.hours.add((hour_ms - day_start_ms(day)) // HOUR_MS)
        self._put([self.manifest_item(day, manifest)])
        self._written[day] = manifest
        return manifest

    def compact(self, day: str) -> int:
        """Write each device's day item from the day's pages and mark the day compacted.

        Returns how many day items were written. Safe to repeat (same items).
        """
        manifest = self.manifest(day, consistent=True)
        if manifest is None or manifest.compacted:
            return 0
        written = sum(self._compact_shard(day, shard) for shard in range(manifest.shards))
        self._mark_compacted(day, manifest)
        return written

    def compact_from(self, day: str, first_shard: int, stop: Callable[[], bool]) -> int | None:
        """`compact` in steps, for days too big for one run: shards from `first_shard` on until
        `stop()` says (at least one a call); the next shard to do, or None once the day is compacted.

        A device's series all lie in its one shard, so each shard's day items are complete when
        written; readers keep reading the pages until the manifest says compacted.
        """
        manifest = self.manifest(day, consistent=True)
        if manifest is None or manifest.compacted:
            return None
        shard = first_shard
        while shard < manifest.shards:
            if shard > first_shard and stop():
                return shard
            self._compact_shard(day, shard)
            shard += 1
        self._mark_compacted(day, manifest)
        return None

    def _compact_shard(self, day: str, shard: int) -> int:
        devices: dict[str, dict[SeriesHour, Partial]] = {}
        for page in self._query(f"{PAGE_PREFIX}{day}#{shard}"):
            if page.blob is None:
                continue
            for device, series in decode_devices(page.blob).items():
                devices.setdefault(device, {}).update(series)
        return self._put(self.day_item(device, day, series) for device, series in sorted(devices.items()))

    def _mark_compacted(self, day: str, manifest: Manifest) -> None:
        manifest.compacted = True
        self._put([self.manifest_item(day, manifest)])
        self._compacted[day] = manifest

    def replace_hours(self, device_id: str, series: Mapping[SeriesHour, Partial], hours: set[int]) -> None:
        """Replace a device's Partials of the given hour starts (a re-roll): every series of those
        hours becomes what `series` holds for them (absent: removed). Compacted or not."""
        by_day: dict[str, set[int]] = {}
        for hour in hours:
            by_day.setdefault(day_of(hour), set()).add(hour)
        for day, day_hours in sorted(by_day.items()):
            fresh = {key: p for key, p in series.items() if key[2] in day_hours}
            manifest = self.manifest(day, consistent=True)
            if manifest is None:  # a day before the job's first run: pages of its own
                manifest = Manifest(1)
            if manifest.compacted:
                self._replace_in_day(device_id, day, fresh, day_hours)
            else:
                self._replace_in_pages(device_id, day, manifest, fresh, day_hours)

    def _replace_in_day(self, device_id: str, day: str, fresh: Mapping[SeriesHour, Partial], hours: set[int]) -> None:
        item = self._get(f"{DAY_PREFIX}{device_id}", day, consistent=True)
        kept = {} if item is None or item.blob is None else decode_series(item.blob)
        merged = {key: p for key, p in kept.items() if key[2] not in hours}
        merged.update(fresh)
        self._put([self.day_item(device_id, day, merged)])

    def _replace_in_pages(
        self, device_id: str, day: str, manifest: Manifest, fresh: Mapping[SeriesHour, Partial], hours: set[int]
    ) -> None:
        base = day_start_ms(day)
        partition = f"{PAGE_PREFIX}{day}#{shard_of(device_id, manifest.shards)}"
        for hour in sorted(hours):
            hh = (hour - base) // HOUR_MS
            pages = self._query(partition, self._model.sort_key.startswith(f"{hh:02d}"))
            rows: dict[str, Mapping[SeriesHour, Partial]] = {}
            for page in pages:
                if page.blob is not None:
                    rows.update(decode_devices(page.blob))
            mine = {key: p for key, p in fresh.items() if key[2] == hour}
            if mine:
                rows[device_id] = mine
            else:
                rows.pop(device_id, None)
            items = self.page_items(day, hour, manifest.shards, rows)
            stale = {p.sort_key for p in pages} - {i.sort_key for i in items}
            self._put(items)
            for sort in sorted(stale):  # fewer splits than before
                gone = self._model(partition, sort)
                self._call("DeleteItem on aggregates", gone.delete)
            if hh not in manifest.hours:
                # an hour the job has not rolled (or a day before its first run): a later full
                # roll of the hour rewrites these pages from the archive anyway
                manifest.hours.add(hh)
                self._put([self.manifest_item(day, manifest)])

    # -- reads --------------------------------------------------------------------------------

    def hours(
        self, device_id: str, metric: str | None, unit: str | None, from_hour_ms: int, to_hour_ms: int
    ) -> dict[SeriesHour, Partial]:
        """The device's Partials for hour starts in [from_hour_ms, to_hour_ms) (RollupReader)."""
        if to_hour_ms <= from_hour_ms:
            return {}

        def wanted(key: SeriesHour) -> bool:
            m, u, h = key
            return from_hour_ms <= h < to_hour_ms and (metric is None or m == metric) and (unit is None or u == unit)

        first_day, last_day = day_of(from_hour_ms), day_of(to_hour_ms - 1)
        out: dict[SeriesHour, Partial] = {}
        found: set[str] = set()
        for item in self._query(f"{DAY_PREFIX}{device_id}", self._model.sort_key.between(first_day, last_day)):
            found.add(item.sort_key)
            if item.blob is not None:
                out.update((k, p) for k, p in decode_series(item.blob).items() if wanted(k))
        day = day_start_ms(first_day)
        while day < to_hour_ms:
            name = day_of(day)
            if name not in found:
                shards = self._shards.get(name)
                if shards is None:  # (a compacted day with no item for the device: nothing to read)
                    manifest = self.manifest(name)
                    shards = manifest.shards if manifest is not None and not manifest.compacted else None
                if shards is not None:
                    lo = max(0, (from_hour_ms - day) // HOUR_MS)
                    hi = min(23, (to_hour_ms - 1 - day) // HOUR_MS)
                    partition = f"{PAGE_PREFIX}{name}#{shard_of(device_id, shards)}"
                    sort = self._model.sort_key.between(f"{lo:02d}", f"{hi:02d}#~")
                    for page in self._query(partition, sort):
                        if page.blob is not None:
                            series = decode_devices(page.blob).get(device_id, {})
                            out.update((k, p) for k, p in series.items() if wanted(k))
            day += DAY_MS
        return out

    # -- dirty marks (late readings for rolled hours) ------------------------------------------

    def mark_dirty(self, marks: Iterable[tuple[int, str]], version: str) -> int:
        """Record (hour start, device) pairs that need a re-roll; a newer mark overwrites an older.

        Each mark is two items: one in the job's list of every mark, one under the device (which the
        aggregation query reads, so a dirty hour comes from raw chunks until it is rolled again)."""
        row = json.dumps({"v": version})
        items = []
        for hour, device in sorted(set(marks)):
            items.append(self._model(DIRTY_PARTITION, f"{hour:013d}#{device}", row=row))
            items.append(self._model(f"{DIRTY_PARTITION}#{device}", f"{hour:013d}", row=row))
        return self._put(items) // 2

    def dirty(self) -> list[tuple[int, str, str]]:
        """Every pending mark: (hour start, device, version)."""
        out = []
        for item in self._query(DIRTY_PARTITION):
            hour, _, device = item.sort_key.partition("#")
            out.append((int(hour), device, json.loads(item.row or "{}").get("v", "")))
        return out

    def clear_dirty(self, hour_ms: int, device_id: str, version: str) -> bool:
        """Delete a mark only if it is still the version seen (a newer late batch keeps it): the
        device's item first (the hour is rolled again by now), then the job's."""
        row = json.dumps({"v": version})
        self._delete_if(self._model(f"{DIRTY_PARTITION}#{device_id}", f"{hour_ms:013d}"), row)
        return self._delete_if(self._model(DIRTY_PARTITION, f"{hour_ms:013d}#{device_id}"), row)

    def _delete_if(self, item: AggregateModel, row: str) -> bool:
        try:
            self._call("DeleteItem on aggregates", lambda: item.delete(condition=self._model.row == row))
        except StorageUnavailableError as e:
            if (
                isinstance(e.__cause__, DeleteError)
                and e.__cause__.cause_response_code == "ConditionalCheckFailedException"
            ):
                return False
            raise
        return True


def _split_pages(devices: Mapping[str, Mapping[SeriesHour, Partial]], hour_ms: int) -> list[bytes]:
    """One blob, or several (HH, HH#1, ...) when one would pass PAGE_SPLIT_BYTES."""
    blob = encode_devices(devices, hour_ms)
    if len(blob) <= PAGE_SPLIT_BYTES or len(devices) == 1:
        return [blob]
    names = sorted(devices)
    half = len(names) // 2
    return _split_pages({d: devices[d] for d in names[:half]}, hour_ms) + _split_pages(
        {d: devices[d] for d in names[half:]}, hour_ms
    )
