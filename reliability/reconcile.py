"""What the table holds against what the archive holds, and why an archived reading would be there twice.

moto 5.2.5 numbers stream records with `len(shard.items) + start` outside any lock, so two
writes that land at the same moment can get the same SequenceNumber. GetRecords then
answers a batch ending with the second of them with a NextShardIterator "after" that
number, which is the second record's own position: it is delivered again, in a batch
whose first and last sequence numbers (and so the archive object's key) differ, and its
readings are archived twice. DynamoDB Streams numbers records strictly, so this is the
local stack's defect, not the app's; duplicates are attributed to it only when the
chunk item they come from has a stream record that shares its SequenceNumber.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.domain.chunks import decode
from devstack.reconcile import archive_database, download_archive
from devstack.stack import LocalStack

Identity = tuple[str, str, str, int]


@dataclass
class Reconciliation:
    stored: set[Identity]
    archived: set[Identity]
    archive_lines: int
    archive_objects: int
    duplicated: set[Identity]  # identities with more than one archive line
    shared_sequence_numbers: int  # stream sequence numbers held by two or more records (moto's race)
    duplicated_by_stream_race: set[Identity] = field(default_factory=set)

    @property
    def duplicated_lines(self) -> int:
        return self.archive_lines - len(self.archived)

    @property
    def unexplained_duplicates(self) -> set[Identity]:
        return self.duplicated - self.duplicated_by_stream_race

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": len(self.stored),
            "archived": len(self.archived),
            "archive_lines": self.archive_lines,
            "archive_objects": self.archive_objects,
            "duplicated_lines": self.duplicated_lines,
            "duplicated_identities": len(self.duplicated),
            "shared_sequence_numbers": self.shared_sequence_numbers,
            "duplicated_by_stream_race": len(self.duplicated_by_stream_race),
            "examples": [list(i) for i in sorted(self.duplicated)[:5]],
        }


def _chunks(dynamodb: Any, table: str) -> tuple[set[Identity], dict[Identity, tuple[str, str]]]:
    """Every stored reading, and the chunk item (device, sort key) that holds it."""
    stored: set[Identity] = set()
    where: dict[Identity, tuple[str, str]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            device, sort_key = item["d"]["S"], item["k"]["S"]
            for r in decode(item["b"]["B"]):
                identity = (device, r.metric, r.unit, r.ts_ms)
                stored.add(identity)
                where[identity] = (device, sort_key)
    return stored, where


def _racing_chunks(stack: LocalStack, table: str) -> tuple[int, set[tuple[str, str]]]:
    """Sequence numbers held by several records, and the chunk items of those records."""
    streams = stack.client("dynamodbstreams")
    arn = stack.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    by_sequence: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in answer["Records"]:
                keys = record["dynamodb"]["Keys"]
                by_sequence[record["dynamodb"]["SequenceNumber"]][record["eventID"]] = (
                    keys["d"]["S"],
                    keys["k"]["S"],
                )
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    shared = {seq: events for seq, events in by_sequence.items() if len(events) > 1}
    return len(shared), {chunk for events in shared.values() for chunk in events.values()}


def reconcile(stack: LocalStack, work: Path) -> Reconciliation:
    """Read the readings table, the stream and the archive of a (drained) stack."""
    conn = stack.connection()
    table = conn["readings_table"]
    stored, where = _chunks(stack.client("dynamodb"), table)
    files = download_archive(stack.client("s3"), conn["archive_bucket"], work / "archive")
    db = archive_database(files)
    rows = db.execute("SELECT device_id, metric, unit, ts FROM readings").fetchall()
    archived = {(d, m, u, int(t)) for d, m, u, t in rows}
    (lines,) = db.execute("SELECT count(*) FROM readings").fetchone()
    duplicated = {
        (d, m, u, int(t))
        for d, m, u, t in db.execute(
            "SELECT device_id, metric, unit, ts FROM readings GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
    }
    shared, racing = _racing_chunks(stack, table)
    by_race = {i for i in duplicated if where.get(i) in racing}
    return Reconciliation(stored, archived, int(lines), len(files), duplicated, shared, by_race)


def note_stream_race(result: Any, rec: Reconciliation) -> None:
    """Report duplicates that moto's stream race explains (a finding, not the app's failure)."""
    if rec.duplicated_by_stream_race:
        result.findings.append(
            f"{len(rec.duplicated_by_stream_race)} readings archived twice because moto gave "
            f"{rec.shared_sequence_numbers} sequence number(s) of the readings stream to two records each and "
            "re-delivered the second (a local-stack defect: see reliability/reconcile.py)"
        )


def check_reconciled(result: Any, sim_exit: int, sim: dict[str, Any], rec: Reconciliation, acked: int) -> None:
    """The checks every simulator run against the local stack makes: the simulator exited 0, no 5xx
    but 503, nothing acknowledged lost or unreadable, the table holding what was acknowledged, the
    archive equal to the table, nothing stored twice (`result.figures` carries lost and duplicated)."""
    verify = sim.get("verify") or {}
    server_errors = int(sim.get("server_errors") or 0)
    stored, archived = rec.stored, rec.archived
    result.check(sim_exit == 0, f"the simulator exited {sim_exit}: {sim.get('failures')}")
    result.check(server_errors == 0, f"{server_errors} 5xx answers other than 503")
    result.check(result.figures["lost"] == 0, f"{result.figures['lost']} acknowledged readings lost")
    result.check(int(verify.get("errors", 0)) == 0, f"{verify.get('errors')} devices could not be read back")
    result.check(len(stored) == acked, f"stored {len(stored)} readings, acknowledged {acked}")
    result.check(archived == stored, f"archive and table differ: {len(stored - archived)} missing from S3, "
                 f"{len(archived - stored)} only in S3")  # fmt: skip
    result.check(result.figures["duplicated"] == 0, f"{result.figures['duplicated']} readings stored or archived twice")
    note_stream_race(result, rec)
