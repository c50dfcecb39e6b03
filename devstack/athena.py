"""Athena for the local stack: the job's queries run in DuckDB over the mirrored archive.

moto's Athena accepts queries but does not execute them, so the local stack passes this
executor where AWS passes boto3's `athena` client. It has the two calls
`adapters.athena.AthenaQueries` makes (start_query_execution, get_query_execution) with
Athena's shapes, and writes a SELECT's result as Athena does (a CSV at the output location),
so the job's code path is the same; the SQL is
`domain.rollup_sql`'s DuckDB dialect, reading two relations:

- ``lines``: every archive line as one ``line`` column (gzip JSON Lines mirrored from S3
  with `devstack.reconcile.download_archive`), as Athena's TEXTFILE table;
- ``compact``: the Parquet compaction mirrored from ``compact/``.

A ``COPY ... TO 's3://<bucket>/<key>'`` (the local UNLOAD) writes the file locally and puts
it in the bucket. Queries run when started; `polls_before_done` keeps them RUNNING for that
many state checks (as Athena would), and `fail_next` makes the next queries fail (tests).
"""

from __future__ import annotations

import json
import re
import uuid
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
    output: str = ""  # s3:// of the result CSV


def athena_csv(columns: list[str], rows: list[list[str | None]]) -> bytes:
    """Athena's result CSV: a header, every value in double quotes (doubled inside), NULL left empty."""

    def field(v: str | None) -> str:
        return "" if v is None else '"' + v.replace('"', '""') + '"'

    lines = [",".join(field(c) for c in columns)] + [",".join(field(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def athena_text(value: Any) -> str | None:
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
        # Executions are kept on disk too: `devstack run-job` (another process) looks at queries the
        # stack's schedule started, as Athena would answer for them.
        self._saved = folder / "executions"

    def _save(self, execution_id: str, e: _Execution) -> None:
        self._executions[execution_id] = e
        self._saved.mkdir(parents=True, exist_ok=True)
        (self._saved / f"{execution_id}.json").write_text(json.dumps(vars(e)))

    def _execution(self, execution_id: str) -> _Execution:
        e = self._executions.get(execution_id)
        if e is None:
            path = self._saved / f"{execution_id}.json"
            if not path.exists():
                raise KeyError(f"InvalidRequestException: QueryExecution {execution_id} was not found")
            e = self._executions[execution_id] = _Execution(**json.loads(path.read_text()))
        return e

    # the calls of boto3's athena client ----------------------------------------------

    def start_query_execution(  # noqa: N803 (boto3's names)
        self, QueryString: str, ResultConfiguration: dict[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        execution_id = f"duckdb-{uuid.uuid4()}"
        self.started.append(QueryString)
        e = self._run(QueryString)
        if e.state == "SUCCEEDED" and e.columns:  # a SELECT: its result file, as Athena writes it
            e.output = (ResultConfiguration or {}).get("OutputLocation", f"s3://{self._bucket}/athena-results/")
            e.output = e.output.rstrip("/") + f"/{execution_id}.csv"
            bucket, key = e.output.removeprefix("s3://").split("/", 1)
            self._s3.put_object(Bucket=bucket, Key=key, Body=athena_csv(e.columns, e.rows), ContentType="text/csv")
        self._save(execution_id, e)
        return {"QueryExecutionId": execution_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803
        e = self._execution(QueryExecutionId)
        state = e.state
        if e.polls_left > 0:
            e.polls_left -= 1
            self._save(QueryExecutionId, e)
            state = "RUNNING"
        status: dict[str, Any] = {"State": state}
        if e.reason and state == "FAILED":
            status["StateChangeReason"] = e.reason
        return {
            "QueryExecution": {
                "QueryExecutionId": QueryExecutionId,
                "Status": status,
                "Statistics": {"DataScannedInBytes": e.scanned},
                "ResultConfiguration": {"OutputLocation": e.output},
            }
        }

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
            rows = [[athena_text(v) for v in row] for row in cursor.fetchall()]
            return _Execution("SUCCEEDED", columns=columns, rows=rows, polls_left=self.polls_before_done)
        except Exception as e:  # an engine error is the query's FAILED state, as in Athena
            return _Execution("FAILED", reason=f"{type(e).__name__}: {e}"[:500])


def use_local_athena(s3: Any, bucket: str, state_dir: Path) -> DuckDBAthena:
    """Give the app's rollup job this stand-in (wiring.athena_stand_in), over `state_dir`/athena: the
    same folder for the stack and for `devstack run-job`, so each sees the other's executions."""
    from chalicelib import wiring

    engine = DuckDBAthena(s3, bucket, state_dir / "athena")
    wiring.athena_stand_in = engine
    return engine
