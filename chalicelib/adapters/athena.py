"""Athena queries over a boto3 `athena` client (passed in): start, poll the state, read the rows.

Never waits: `start` returns the execution id at once and `state` is one GetQueryExecution,
so the job polls from its next schedule tick instead of sleeping in Lambda. The local stack
passes `devstack.athena.DuckDBAthena`, which has the same three calls.
"""

from __future__ import annotations

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

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES


class AthenaQueries:
    """Start queries in a workgroup with an output location, check them, read their results."""

    def __init__(self, client: Any, workgroup: str, output_location: str, database: str = "default") -> None:
        self._client = client
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
        )

    def rows(self, execution_id: str) -> list[dict[str, str | None]]:
        """A SELECT's rows as {column: text or None}, reading every page of GetQueryResults."""
        out: list[dict[str, str | None]] = []
        columns: list[str] | None = None
        kwargs: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": 1000}
        while True:
            page = self._client.get_query_results(**kwargs)
            result = page["ResultSet"]
            if columns is None:
                columns = [c["Name"] for c in result["ResultSetMetadata"]["ColumnInfo"]]
                data = result["Rows"][1:]  # the first row of the first page repeats the header
            else:
                data = result["Rows"]
            for row in data:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                out.append(dict(zip(columns, values, strict=True)))
            token = page.get("NextToken")
            if not token:
                return out
            kwargs["NextToken"] = token
