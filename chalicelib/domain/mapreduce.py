"""Map/reduce jobs over the archive, written once as pure functions.

Three jobs, each a `map` (one archive line -> key/value pairs) and a `reduce` (one
key and all its values -> at most one row):

- ``rollup``: the hourly Partial (domain.rollups) per (device, metric, unit): every reading in
  count/first/last, numbers in numbers/min/max/sum/mean.
- ``index``: an inverted index of string readings, word -> postings per (device, metric).
- ``dedupe``: the archive with one line per reading identity (the newest version).

They run in two ways that must give the same rows: `run_local` (inside a Lambda) and
the Hadoop Streaming commands of `chalicelib.jobs.streaming` (EMR, or a shell pipe).
Keys are strings without tabs, newlines or control characters, so `key<TAB>json(value)`
lines sorted bytewise (``LC_ALL=C sort``, Hadoop's own sort) bring equal keys together
and keys in the order `run_local` returns them.

De-duplication. A reading's identity is (device_id, metric, unit, ts). When the archive
holds an identity more than once, the version with the greatest `_version` wins:
greatest received_at (missing counts as oldest), then type (bool < number < string),
then value, then its JSON text. The same order is written in SQL (`infra.analytics_sql`), so
DuckDB agrees. Dedupe happens before anything else: a numeric reading superseded by a
string one is not in the rollup, and a string superseded by a number is not indexed.

- The rollup key holds the hour, and an identity's ts fixes its hour, so every version of
  an identity meets in one reducer: the rollup is exact in one pass.
- The index key is a word, and a superseded version may hold words the winner lacks, so
  an exact index needs the dedupe pass first (`run_local` does it; on EMR chain the
  ``dedupe`` and ``index`` steps). ``index`` alone still counts identical duplicates once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeGuard

from chalicelib.domain.rollups import ROLLUP_GRACE_MS, Partial, SeriesHour, partial_of

ROLLUP, INDEX, DEDUPE = "rollup", "index", "dedupe"
MAX_WORD_LENGTH = 64
MAX_KEYS = 1_000_000
HOUR_MS = 3_600_000

Value: TypeAlias = bool | int | float | str
Row: TypeAlias = dict[str, Any]
MapFn: TypeAlias = Callable[[Mapping[str, object]], Iterator[tuple[str, object]]]
ReduceFn: TypeAlias = Callable[[str, Iterable[object]], Row | None]

_WORD = re.compile(r"[a-z0-9]+")
_FIELDS = ("device_id", "metric", "unit", "ts", "value", "received_at")


class ArchiveLineError(ValueError):
    """An archive line (or a map output value) that is not what the archive writes."""


class TooManyKeysError(RuntimeError):
    """`run_local` met more distinct keys than it was allowed to hold in memory."""


@dataclass(frozen=True, slots=True)
class ArchivedReading:
    """One archive line, checked."""

    device_id: str
    metric: str
    unit: str
    ts: int
    value: Value
    received_at: int | None

    def line(self) -> Row:
        """The archive line, fields in the archiver's order."""
        return {
            "device_id": self.device_id,
            "metric": self.metric,
            "unit": self.unit,
            "ts": self.ts,
            "value": self.value,
            "received_at": self.received_at,
        }


def dumps(doc: object) -> str:
    """Compact JSON: no tabs or newlines outside strings, and none inside (they are escaped)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _is_int(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """True for int and float values; bool is not a number here."""
    return isinstance(value, float) or _is_int(value)


def _is_value(value: object) -> TypeGuard[Value]:
    # json.loads accepts NaN and Infinity; the archive never holds them, and they break ordering
    return isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value))


def parse_line(line: Mapping[str, object]) -> ArchivedReading:
    """An archive line as a reading; ArchiveLineError if a field is missing or mistyped."""
    try:
        device_id, metric, unit, ts, value = (line[f] for f in _FIELDS[:5])
    except KeyError as e:
        raise ArchiveLineError(f"archive line without {e.args[0]!r}: {str(dict(line))[:200]}") from e
    received_at = line.get("received_at")
    if not (isinstance(device_id, str) and isinstance(metric, str) and isinstance(unit, str)):
        raise ArchiveLineError(f"device_id, metric and unit must be strings: {str(dict(line))[:200]}")
    if not _is_int(ts) or not (received_at is None or _is_int(received_at)):
        raise ArchiveLineError(f"ts and received_at must be integers: {str(dict(line))[:200]}")
    if not _is_value(value):
        raise ArchiveLineError(f"value must be a finite number, boolean or string: {str(dict(line))[:200]}")
    return ArchivedReading(device_id, metric, unit, ts, value, received_at)


def version_key(received_at: object, value: Value) -> tuple[Any, ...]:
    """The order of versions of one identity: the greatest wins (see the module docstring).

    Every reader that resolves duplicates (the jobs, the aggregation query) uses this order.
    """
    newness = received_at if _is_int(received_at) else -1
    kind = 0 if isinstance(value, bool) else 2 if isinstance(value, str) else 1
    return (newness, kind, value, dumps(value))


def hour_of(ts_ms: int) -> str:
    """UTC hour bucket of a time: "YYYY-MM-DDTHH"."""
    return datetime.fromtimestamp(ts_ms // HOUR_MS * 3600, UTC).strftime("%Y-%m-%dT%H")


def words(text: str) -> list[str]:
    """Distinct lowercase alphanumeric tokens of a string, sorted; longer than 64: skipped."""
    return sorted({w for w in _WORD.findall(text.lower()) if len(w) <= MAX_WORD_LENGTH})


def _key(*fields: object) -> str:
    return dumps(list(fields))


def _unkey(key: str, size: int) -> list[Any]:
    fields = json.loads(key)
    if not (isinstance(fields, list) and len(fields) == size):
        raise ArchiveLineError(f"not a key of this job: {key[:200]}")
    return fields


# rollup ---------------------------------------------------------------------------------


def rollup_map(line: Mapping[str, object]) -> Iterator[tuple[str, object]]:
    """(device, metric, unit, hour) -> [ts, received_at, value], values of every type.

    Strings travel whole: they decide versions against each other and are an hour's
    `first` or `last`.
    """
    r = parse_line(line)
    yield _key(r.device_id, r.metric, r.unit, hour_of(r.ts)), [r.ts, r.received_at, r.value]


def _rollup_value(v: object) -> tuple[int, int | None, Value]:
    if isinstance(v, list | tuple) and len(v) == 3:
        ts, received_at, value = v
        if _is_int(ts) and (received_at is None or _is_int(received_at)) and _is_value(value):
            return ts, received_at, value
    raise ArchiveLineError(f"not a rollup map value: {str(v)[:200]}")


def rollup_row(device_id: str, metric: str, unit: str, hour: str, p: Partial) -> Row:
    """The rollup row of one series-hour's Partial (the job's output, the rollups API's item)."""
    return {
        "device_id": device_id,
        "metric": metric,
        "unit": unit,
        "hour": hour,
        "count": p.count,
        "numbers": p.numbers,
        "min": p.min,
        "max": p.max,
        "sum": p.sum,
        "mean": p.mean,
        "first": p.first,
        "first_ts": p.first_ts,
        "last": p.last,
        "last_ts": p.last_ts,
    }


def partial_of_row(row: Mapping[str, Any]) -> Partial:
    """The Partial a rollup row carries (the inverse of `rollup_row`)."""
    return Partial(
        count=row["count"],
        first_ts=row["first_ts"],
        first=row["first"],
        last_ts=row["last_ts"],
        last=row["last"],
        numbers=row["numbers"],
        min=row["min"],
        max=row["max"],
        sum=float(row["sum"]),
    )


def partials_by_device(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[SeriesHour, Partial]]:
    """ROLLUP rows (from run_local or the SQL) as RollupStore.put_hour takes them:
    device -> (metric, unit, hour start) -> Partial."""
    out: dict[str, dict[SeriesHour, Partial]] = {}
    for row in rows:
        key = (row["metric"], row["unit"], hour_start_ms(row["hour"]))
        out.setdefault(row["device_id"], {})[key] = partial_of_row(row)
    return out


def hour_start_ms(hour: str) -> int:
    """Start of a "YYYY-MM-DDTHH" hour, in ms (the inverse of `hour_of`)."""
    return int(datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC).timestamp()) * 1000


def rollup_reduce(key: str, values: Iterable[object]) -> Row | None:
    """One hour of one series: the Partial (domain.rollups.partial_of) of its resolved versions.

    Every type counts in count/first/last; numbers alone in numbers/min/max/sum/mean (null
    when the hour holds none).
    """
    device_id, metric, unit, hour = _unkey(key, 4)
    newest: dict[int, tuple[tuple[Any, ...], Value]] = {}
    for v in values:
        ts, received_at, value = _rollup_value(v)
        version = version_key(received_at, value)
        seen = newest.get(ts)
        if seen is None or version > seen[0]:
            newest[ts] = (version, value)
    p = partial_of((ts, value) for ts, (_, value) in newest.items())
    return None if p is None else rollup_row(device_id, metric, unit, hour, p)


# inverted index -------------------------------------------------------------------------


def index_map(line: Mapping[str, object]) -> Iterator[tuple[str, object]]:
    """word -> [device_id, metric, unit, ts], once per distinct word of a string reading."""
    r = parse_line(line)
    if isinstance(r.value, str):
        for word in words(r.value):
            yield word, [r.device_id, r.metric, r.unit, r.ts]


def _index_value(v: object) -> tuple[str, str, str, int]:
    if isinstance(v, list | tuple) and len(v) == 4:
        device_id, metric, unit, ts = v
        if isinstance(device_id, str) and isinstance(metric, str) and isinstance(unit, str) and _is_int(ts):
            return device_id, metric, unit, ts
    raise ArchiveLineError(f"not an index map value: {str(v)[:200]}")


def index_reduce(key: str, values: Iterable[object]) -> Row | None:
    """A word's postings per (device_id, metric): readings holding it, first and last ts.

    A reading counts once (identical duplicate lines included); postings are sorted.
    """
    readings = {_index_value(v) for v in values}
    if not readings:
        return None
    spans: dict[tuple[str, str], list[int]] = {}
    for device_id, metric, _unit, ts in readings:
        span = spans.get((device_id, metric))
        if span is None:
            spans[(device_id, metric)] = [1, ts, ts]
        else:
            span[0] += 1
            span[1] = min(span[1], ts)
            span[2] = max(span[2], ts)
    postings = [
        {"device_id": d, "metric": m, "count": c, "first_ts": first, "last_ts": last}
        for (d, m), (c, first, last) in sorted(spans.items())
    ]
    return {
        "word": key,
        "postings": postings,
        "count": len(readings),
        "first_ts": min(first for _, first, _ in spans.values()),
        "last_ts": max(last for _, _, last in spans.values()),
    }


# dedupe ---------------------------------------------------------------------------------


def dedupe_map(line: Mapping[str, object]) -> Iterator[tuple[str, object]]:
    """(device_id, metric, unit, ts) -> the line."""
    r = parse_line(line)
    yield _key(r.device_id, r.metric, r.unit, r.ts), r.line()


def dedupe_reduce(key: str, values: Iterable[object]) -> Row | None:
    """The newest version of one identity, as an archive line."""
    best: ArchivedReading | None = None
    for v in values:
        if not isinstance(v, Mapping):
            raise ArchiveLineError(f"not a dedupe map value: {str(v)[:200]}")
        r = parse_line(v)
        if best is None or version_key(r.received_at, r.value) > version_key(best.received_at, best.value):
            best = r
    return None if best is None else best.line()


def dedupe(lines: Iterable[Mapping[str, object]]) -> Iterator[Row]:
    """The newest version of each identity, in identity order (memory: one per identity)."""
    newest: dict[tuple[str, str, str, int], ArchivedReading] = {}
    for line in lines:
        r = parse_line(line)
        identity = (r.device_id, r.metric, r.unit, r.ts)
        seen = newest.get(identity)
        if seen is None or version_key(r.received_at, r.value) > version_key(seen.received_at, seen.value):
            newest[identity] = r
    for identity in sorted(newest):
        yield newest.pop(identity).line()


# running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A map/reduce job: what `run_local` and the streaming commands run."""

    map: MapFn
    reduce: ReduceFn
    dedupe_first: bool = False  # run_local resolves versions before mapping


JOBS: dict[str, Job] = {
    ROLLUP: Job(rollup_map, rollup_reduce),
    INDEX: Job(index_map, index_reduce, dedupe_first=True),
    DEDUPE: Job(dedupe_map, dedupe_reduce),
}


def run_local(job: str, lines: Iterable[Mapping[str, object]], max_keys: int = MAX_KEYS) -> list[Row]:
    """Run a job in process over a stream of archive lines; rows in key order.

    Values are grouped per key in memory, so memory grows with the map output (for the
    rollup: one small triple per reading); more than `max_keys` distinct keys raises
    TooManyKeysError rather than exhausting the Lambda's memory. The index first resolves
    versions (`dedupe`), which holds one entry per distinct reading.
    """
    spec = JOBS[job]
    source: Iterable[Mapping[str, object]] = dedupe(lines) if spec.dedupe_first else lines
    groups: dict[str, list[object]] = {}
    for line in source:
        for key, value in spec.map(line):
            bucket = groups.get(key)
            if bucket is None:
                if len(groups) >= max_keys:
                    raise TooManyKeysError(f"{job}: more than {max_keys} keys")
                bucket = groups[key] = []
            bucket.append(value)
    rows = []
    for key in sorted(groups):
        row = spec.reduce(key, groups.pop(key))
        if row is not None:
            rows.append(row)
    return rows


# late readings --------------------------------------------------------------------------


def late_marks(
    lines: Iterable[Mapping[str, object]], now_ms: int, grace_ms: int = ROLLUP_GRACE_MS
) -> set[tuple[int, str]]:
    """(hour start, device) of archive lines written into an hour already due for its rollup.

    An hour is rolled once its end + grace has passed; a line archived after that moment
    is not in the rollup, so its device-hour must be re-rolled.
    """
    marks: set[tuple[int, str]] = set()
    for line in lines:
        ts, device = line.get("ts"), line.get("device_id")
        if _is_int(ts) and isinstance(device, str):
            hour = ts - ts % HOUR_MS
            if hour + HOUR_MS + grace_ms <= now_ms:
                marks.add((hour, device))
    return marks
