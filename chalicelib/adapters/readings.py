"""The readings store: chunk items in DynamoDB through PynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.retry import DEFAULT_POLICY, RetryPolicy, put_items
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
        retention_days: int = 30,
        retries: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._model = model
        self._retention = timedelta(days=retention_days)
        self._retries = retries

    def item(self, device_id: str, chunk: Chunk, received_at_ms: int) -> ReadingChunkModel:
        """The item a chunk is stored as (with its retention TTL)."""
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

        Throttling and UnprocessedItems are retried within the request's retry budget
        (adapters.retry); chunk keys are idempotent, so re-sending an item is harmless.
        """
        items = [self.item(device_id, c, received_at_ms).serialize() for c in chunks]
        put_items(self._model, items, self._retries)

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
        def attempt() -> tuple[list[StoredChunk], bool]:
            results = self._model.query(
                device_id,
                self._model.sort_key.between(low_key, high_key),
                limit=max_items,
                page_size=max_items,
            )
            found = [StoredChunk(c.sort_key, c.data, int(c.received_at)) for c in results]
            return found, results.last_evaluated_key is not None

        try:
            return self._retries.budget().call("Query on readings", attempt)
        except PynamoDBException as e:
            raise StorageUnavailableError("the readings table could not be read") from e

    def tail(self, device_id: str, from_bucket: str, consistent: bool = False) -> list[StoredChunk]:
        """Every chunk of a device from an hour bucket on (the unfolded tail, domain.state): one Query
        (more pages only past 1 MB). Consistent for a fold, eventually consistent for a read."""

        def attempt() -> list[StoredChunk]:
            results = self._model.query(device_id, self._model.sort_key >= from_bucket, consistent_read=consistent)
            return [StoredChunk(c.sort_key, c.data, int(c.received_at)) for c in results]

        try:
            return self._retries.budget().call("Query on readings", attempt)
        except PynamoDBException as e:
            raise StorageUnavailableError("the readings table could not be read") from e

    def iter_all(self, device_id: str) -> Iterator[StoredChunk]:
        """Every chunk of a device (tests and tools; reads the whole partition first)."""

        def attempt() -> list[StoredChunk]:
            return [StoredChunk(c.sort_key, c.data, int(c.received_at)) for c in self._model.query(device_id)]

        yield from self._retries.budget().call("Query on readings", attempt)
