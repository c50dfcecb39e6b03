"""The S3 archive bucket."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ArchiveUnavailableError


class S3Archive:
    """Writes and reads archive objects; S3 failures become ArchiveUnavailableError."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3, self._bucket = s3_client, bucket

    def put(self, key: str, body: bytes, content_type: str = "application/x-ndjson", gzipped: bool = True) -> None:
        extra = {"ContentEncoding": "gzip"} if gzipped else {}
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="AES256",
                **extra,
            )
        except (ClientError, BotoCoreError) as e:
            raise ArchiveUnavailableError(f"could not write s3://{self._bucket}/{key}") from e

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                out.extend(obj["Key"] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as e:
            raise ArchiveUnavailableError(f"could not list s3://{self._bucket}/{prefix}") from e
        return out

    def children(self, prefix: str) -> list[str]:
        """The "folders" right under a prefix (archive/ -> archive/dt=2026-12-01/, ...), sorted: one
        listing of common prefixes, however many objects lie under them."""
        out: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as e:
            raise ArchiveUnavailableError(f"could not list s3://{self._bucket}/{prefix}") from e
        return sorted(out)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under a prefix (an Athena UNLOAD's target must be empty); how many."""
        keys = self.keys(prefix)
        try:
            for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                answer = self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
                if answer.get("Errors"):
                    raise ArchiveUnavailableError(
                        f"could not delete under s3://{self._bucket}/{prefix}: {answer['Errors'][:3]}"
                    )
        except (ClientError, BotoCoreError) as e:
            raise ArchiveUnavailableError(f"could not delete under s3://{self._bucket}/{prefix}") from e
        return len(keys)

    def lines(self, key: str) -> Iterator[dict[str, Any]]:
        """The JSON lines of a gzip JSON Lines object, streamed."""
        return iter_json_lines(self._s3, self._bucket, key)

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as e:
            raise ArchiveUnavailableError(f"could not read s3://{self._bucket}/{key}") from e
        return body


def iter_json_lines(s3_client: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    """Stream a gzip JSON Lines object line by line, without holding it in memory."""
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
        with gzip.GzipFile(fileobj=body) as lines:
            for raw in lines:
                if raw.strip():
                    yield json.loads(raw)
    except (ClientError, BotoCoreError) as e:
        raise ArchiveUnavailableError(f"could not read s3://{bucket}/{key}") from e
