"""Athena for the local stack: the job's queries run in DuckDB over the mirrored archive.

moto's Athena accepts queries but does not execute them, so the local stack passes this
executor where AWS passes boto3's `athena` client. It has the three calls
`adapters.athena.AthenaQueries` makes (start_query_execution, get_query_execution,
get_query_results) with Athena's shapes, so the job's code path is the same; the SQL is
`domain.rollup_sql`'s DuckDB dialect, reading two relations:

- ``lines``: every archive line as one ``line`` column (gzip JSON Lines mirrored from S3
  with `devstack.reconcile.download_archive`), as Athena's TEXTFILE table;
- ``compact``: the Parquet compaction mirrored from ``compact/``.

A ``COPY ... TO 's3://<bucket>/<key>'`` (the local UNLOAD) writes the file locally and puts
it in the bucket. Queries run when started; `polls_before_done` keeps them RUNNING for that
many state checks (as Athena would), and `fail_next` makes the next queries fail (tests).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.domain import rollup_sql
from devstack.reconcile import download_archive

_EMPTY_TYPED = (
    "SELECT NULL::VARCHAR AS device_id, NULL::VARCHAR AS metric, NULL::VARCHAR AS unit, NULL::BIGINT AS ts, "
    "NULL::BIGINT AS received_at, NULL::INTEGER AS kind, NULL::DOUBLE AS number, NULL::VARCHAR AS text WHERE false"
)


@dataclass
class _Execution:
    state: str
    reason: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)
    polls_left: int = 0
    scanned: int = 0


def _text(value: Any) -> str | None:
    # Athena's results are text; booleans as true/false, NULL as a missing VarCharValue.
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DuckDBAthena:
    """An Athena client stand-in that executes the DuckDB dialect over a local mirror of the bucket."""

    def __init__(self, s3: Any, bucket: str, folder: Path, *, polls_before_done: int = 0) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._folder = folder
        self.polls_before_done = polls_before_done
        self.fail_next = 0
        self.started: list[str] = []
        self._executions: dict[str, _Execution] = {}
        self._ids = itertools.count(1)

    # the calls of boto3's athena client ----------------------------------------------

    def start_query_execution(self, QueryString: str, **_: Any) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        execution_id = f"duckdb-{next(self._ids):06d}"
        self.started.append(QueryString)
        self._executions[execution_id] = self._run(QueryString)
        return {"QueryExecutionId": execution_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803
        e = self._executions[QueryExecutionId]
        state = e.state
        if e.polls_left > 0:
            e.polls_left -= 1
            state = "RUNNING"
        status: dict[str, Any] = {"State": state}
        if e.reason and state == "FAILED":
            status["StateChangeReason"] = e.reason
        return {
            "QueryExecution": {
                "QueryExecutionId": QueryExecutionId,
                "Status": status,
                "Statistics": {"DataScannedInBytes": e.scanned},
            }
        }

    def get_query_results(
        self,
        QueryExecutionId: str,  # noqa: N803
        MaxResults: int = 1000,  # noqa: N803
        NextToken: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        e = self._executions[QueryExecutionId]
        if e.state != "SUCCEEDED" or e.polls_left > 0:
            raise RuntimeError(f"query {QueryExecutionId} has not succeeded")
        start = int(NextToken or 0)
        header = [] if start else [{"Data": [{"VarCharValue": c} for c in e.columns]}]
        size = MaxResults - len(header)
        chunk = e.rows[start : start + size]
        rows = header + [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in chunk]
        page: dict[str, Any] = {
            "ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": [{"Name": c} for c in e.columns]}}
        }
        if start + size < len(e.rows):
            page["NextToken"] = str(start + size)
        return page

    # running -------------------------------------------------------------------------

    def _database(self) -> Any:
        import duckdb

        db = duckdb.connect()
        files = [str(f) for f in download_archive(self._s3, self._bucket, self._folder, "archive/")]
        if files:
            db.execute(f"CREATE VIEW lines AS SELECT line FROM {rollup_sql.duckdb_lines_source(files)}")
        else:
            db.execute("CREATE VIEW lines AS SELECT NULL::VARCHAR AS line WHERE false")
        compact = [str(f) for f in download_archive(self._s3, self._bucket, self._folder, "compact/")]
        if compact:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in compact)
            columns = ", ".join(rollup_sql.TYPED_COLUMNS)
            db.execute(f"CREATE VIEW compact AS SELECT {columns} FROM read_parquet([{listed}])")
        else:
            db.execute(f"CREATE VIEW compact AS {_EMPTY_TYPED}")
        return db

    def _run(self, sql: str) -> _Execution:
        if self.fail_next > 0:
            self.fail_next -= 1
            return _Execution("FAILED", reason="injected failure (devstack.athena fail_next)")
        try:
            db = self._database()
            target = re.search(rf"TO 's3://{re.escape(self._bucket)}/([^']+)'", sql)
            if target:
                key = target.group(1)
                local = self._folder / key
                local.parent.mkdir(parents=True, exist_ok=True)
                db.execute(sql.replace(target.group(0), "TO '" + str(local).replace("'", "''") + "'"))
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=local.read_bytes())
                return _Execution("SUCCEEDED", polls_left=self.polls_before_done)
            cursor = db.execute(sql)
            columns = [c[0] for c in cursor.description]
            rows = [[_text(v) for v in row] for row in cursor.fetchall()]
            return _Execution("SUCCEEDED", columns=columns, rows=rows, polls_left=self.polls_before_done)
        except Exception as e:  # an engine error is the query's FAILED state, as in Athena
            return _Execution("FAILED", reason=f"{type(e).__name__}: {e}"[:500])
