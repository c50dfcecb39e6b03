"""The readings store: chunk items in DynamoDB through PynamoDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.retry import put_items
from chalicelib.domain.chunks import Chunk
from chalicelib.errors import StorageUnavailableError
from chalicelib.models import ReadingChunkModel


@dataclass(frozen=True)
class StoredChunk:
    """A chunk item read back from the table."""

    sort_key: str
    data: bytes
    received_at: int

    @property
    def bucket(self) -> str:
        return self.sort_key.split("#", 1)[0]


class ReadingStore:
    """Writes chunks with retries; reads them back by hour range."""

    def __init__(
        self,
        model: type[ReadingChunkModel] = ReadingChunkModel,
        *,
        max_attempts: int = 6,
        retention_days: int = 30,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._model = model
        self._max_attempts = max_attempts
        self._retention = timedelta(days=retention_days)
        self._sleep = sleep

    def _item(self, device_id: str, chunk: Chunk, received_at_ms: int) -> ReadingChunkModel:
        newest = datetime.fromtimestamp(chunk.ts_max / 1000, UTC)
        return self._model(
            device_id,
            chunk.sort_key,
            data=chunk.data,
            reading_count=chunk.count,
            ts_min=chunk.ts_min,
            ts_max=chunk.ts_max,
            received_at=received_at_ms,
            expires_at=newest + self._retention,
        )

    def write(self, device_id: str, chunks: list[Chunk], received_at_ms: int) -> None:
        """Store every chunk, or raise StorageUnavailableError (never a silent partial write).

        Throttling and UnprocessedItems are retried with exponential backoff and full
        jitter; chunk keys are idempotent, so re-sending an item is harmless.
        """
        items = [self._item(device_id, c, received_at_ms).serialize() for c in chunks]
        put_items(self._model, items, max_attempts=self._max_attempts, sleep=self._sleep)

    def chunks(self, device_id: str, low_key: str, high_key: str, max_items: int) -> tuple[list[StoredChunk], bool]:
        """Chunks with low_key <= sort key <= high_key, in key order, at most about max_items.

        Returns the chunks and whether more remain. If more remain, either the chunks
        span two or more hours (only the last may be incomplete) or they are one whole
        hour: an hour larger than a page is read to its end. One Query in the common case.
        """
        if low_key > high_key:  # empty (a cursor past the window): DynamoDB refuses BETWEEN with low > high
            return [], False
        found, more = self._query(device_id, low_key, high_key, max_items)
        if more and found and found[0].bucket == found[-1].bucket:
            bucket = found[0].bucket
            found, _ = self._query(device_id, bucket, bucket + "~", None)
        return found, more

    def _query(
        self, device_id: str, low_key: str, high_key: str, max_items: int | None
    ) -> tuple[list[StoredChunk], bool]:
        try:
            results = self._model.query(
                device_id,
                self._model.sort_key.between(low_key, high_key),
                limit=max_items,
                page_size=max_items,
            )
            found = [StoredChunk(c.sort_key, c.data, int(c.received_at)) for c in results]
        except PynamoDBException as e:
            raise StorageUnavailableError("the readings table could not be read") from e
        return found, results.last_evaluated_key is not None

    def iter_all(self, device_id: str) -> Iterator[StoredChunk]:
        """Every chunk of a device (tests and tools; pages through the partition)."""
        for c in self._model.query(device_id):
            yield StoredChunk(c.sort_key, c.data, int(c.received_at))
