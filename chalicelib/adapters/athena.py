"""Athena queries over a boto3 `athena` client (passed in): start, poll the state, read the rows.

Never waits: `start` returns the execution id at once and `state` is one GetQueryExecution,
so the job polls from its next schedule tick instead of sleeping in Lambda. Rows are streamed
from the result's CSV file in S3 (one GET), not from GetQueryResults (1,000 rows a call: an
hour of a million devices would be 5,000 calls). The local stack passes
`devstack.athena.DuckDBAthena`, which answers the same calls and writes the same CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
RUNNING_STATES = frozenset({"QUEUED", "RUNNING"})
DONE_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass(frozen=True)
class QueryState:
    """One execution's state; `reason` is Athena's StateChangeReason when it failed."""

    execution_id: str
    state: str
    reason: str = ""
    scanned_bytes: int = 0
    output_location: str = ""  # s3://bucket/prefix/<execution id>.csv

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES


class AthenaQueries:
    """Start queries in a workgroup with an output location, check them, read their results."""

    def __init__(self, client: Any, s3: Any, workgroup: str, output_location: str, database: str = "default") -> None:
        self._client = client
        self._s3 = s3
        self._workgroup = workgroup
        self._output = output_location
        self._database = database

    def start(self, sql: str, token: str | None = None) -> str:
        """Start a query; its execution id. `token` (ClientRequestToken, >= 32 chars) makes a retried start
        idempotent."""
        kwargs: dict[str, Any] = {
            "QueryString": sql,
            "WorkGroup": self._workgroup,
            "QueryExecutionContext": {"Database": self._database},
            "ResultConfiguration": {"OutputLocation": self._output},
        }
        if token:
            kwargs["ClientRequestToken"] = token
        return str(self._client.start_query_execution(**kwargs)["QueryExecutionId"])

    def state(self, execution_id: str) -> QueryState:
        """The execution's current state (one GetQueryExecution call)."""
        execution = self._client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        status = execution.get("Status", {})
        stats = execution.get("Statistics", {})
        return QueryState(
            execution_id=execution_id,
            state=str(status.get("State", "QUEUED")),
            reason=str(status.get("StateChangeReason", "")),
            scanned_bytes=int(stats.get("DataScannedInBytes", 0)),
            output_location=str(execution.get("ResultConfiguration", {}).get("OutputLocation", "")),
        )

    def rows(self, execution_id: str) -> Iterator[dict[str, str]]:
        """A SELECT's rows as {column: text}, streamed from its CSV result in S3.

        Athena's CSV quotes every value and leaves NULL empty, so a NULL reads as "" here: the
        decoders (domain.rollup_sql) read numbers and texts by the row's kind and counts.
        """
        location = self.state(execution_id).output_location
        bucket, _, key = location.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ValueError(f"query {execution_id} has no result file ({location!r})")
        body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        yield from csv.DictReader(io.TextIOWrapper(body, encoding="utf-8", newline=""))
