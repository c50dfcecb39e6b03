"""Job outputs the API serves: hourly rollups and the inverted index, in DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.retry import DEFAULT_POLICY, RetryPolicy, put_items
from chalicelib.errors import StorageUnavailableError
from chalicelib.models import AggregateModel

ROLLUP_PREFIX = "rollup#"
WORD_PREFIX = "word#"


def rollup_item(row: dict[str, Any]) -> AggregateModel:
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
    """Writes job rows (idempotent keys) and answers the API's two questions with Queries."""

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

    def rollups(self, device_id: str, metric: str | None, from_hour: str, to_hour: str) -> list[dict[str, Any]]:
        """Hourly rollups of a device (one metric, or all), hours from_hour..to_hour inclusive."""
        partition = f"{ROLLUP_PREFIX}{device_id}"
        if metric is not None:
            sort = self._model.sort_key.between(f"{metric}#{from_hour}", f"{metric}#{to_hour}#~")
            rows = self._query(partition, sort)
        else:
            rows = [r for r in self._query(partition) if from_hour <= r["hour"] <= to_hour]
        return sorted(rows, key=lambda r: (r["hour"], r["metric"], r["unit"]))

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
