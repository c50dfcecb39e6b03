"""The readings table's stream under moto, read as Lambda's event source mapping reads it, for the live handler."""

from __future__ import annotations

from typing import Any

import boto3

from chalicelib import wiring
from devstack.events import stream_event


class Stream:
    """New stream records on each read (TRIM_HORIZON first), in Lambda's record shape."""

    def __init__(self, table: str | None = None, region: str | None = None) -> None:
        """The stream of `table` (default: the stage's readings table) in `region` (the stage's)."""
        settings = wiring.bound_settings()
        self.region = region or settings.region
        self.streams = boto3.client("dynamodbstreams", region_name=self.region)
        described = boto3.client("dynamodb", region_name=self.region).describe_table(
            TableName=table or settings.readings_table
        )
        self.arn = described["Table"]["LatestStreamArn"]
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self.iterators = {
            s["ShardId"]: self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            for s in shards
        }

    def read(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for shard, iterator in self.iterators.items():
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            records += answer["Records"]
            self.iterators[shard] = answer["NextShardIterator"]
        return list(stream_event(records, self.arn, self.region)["Records"])
