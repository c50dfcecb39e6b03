"""Scaling reports: JSON and chart in S3, an index item per report, last actions per target."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.adapters.archive import S3Archive
from chalicelib.errors import ReportNotFoundError, StorageUnavailableError
from chalicelib.models import AggregateModel

REPORT_PARTITION = "report"
ACTION_PARTITION = "scaling-action"


def report_prefix(report_id: str) -> str:
    """reports/YYYY/MM/DD/<id>: the id starts with its generation time in ms."""
    try:
        moment = datetime.fromtimestamp(int(report_id.split("-", 1)[0]) / 1000, UTC)
    except (ValueError, OverflowError, OSError) as e:
        raise ReportNotFoundError(f"no report {report_id!r}") from e
    return f"reports/{moment:%Y/%m/%d}/{report_id}"


def _sort_key(report_id: str) -> str:
    return f"{int(report_id.split('-', 1)[0]):013d}#{report_id}"


class ReportStore:
    def __init__(self, archive: S3Archive, model: type[AggregateModel] = AggregateModel) -> None:
        self._archive = archive
        self._model = model

    def save(self, report: dict[str, Any], chart_svg: str) -> dict[str, str]:
        """Store a report's JSON and chart, then index it (so a listed report always exists)."""
        prefix = report_prefix(report["id"])
        keys = {"json": f"{prefix}.json", "chart": f"{prefix}.svg"}
        self._archive.put(keys["json"], json.dumps(report, indent=2).encode(), "application/json", gzipped=False)
        self._archive.put(keys["chart"], chart_svg.encode(), "image/svg+xml", gzipped=False)
        summary = {
            "id": report["id"],
            "generated_at": report["generated_at"],
            "trigger": report["trigger"],
            "summary": report["summary"],
            "decisions": {t["name"]: t["decision"]["action"] for t in report["targets"]},
            "s3": keys,
        }
        try:
            self._model(REPORT_PARTITION, _sort_key(report["id"]), row=json.dumps(summary)).save()
        except PynamoDBException as e:
            raise StorageUnavailableError("could not index the report") from e
        return keys

    def page(self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Report summaries, newest first; the cursor is the last id of the previous page."""
        last_key = None
        if cursor is not None:
            last_key = {"p": {"S": REPORT_PARTITION}, "s": {"S": _sort_key(cursor)}}
        try:
            results = self._model.query(
                REPORT_PARTITION, scan_index_forward=False, limit=limit, page_size=limit, last_evaluated_key=last_key
            )
            rows = [json.loads(item.row) for item in results]
            more = results.last_evaluated_key is not None
        except PynamoDBException as e:
            raise StorageUnavailableError("could not list reports") from e
        return rows, (rows[-1]["id"] if more and rows else None)

    def _summary(self, report_id: str) -> dict[str, Any]:
        try:
            sort_key = _sort_key(report_id)
        except ValueError as e:
            raise ReportNotFoundError(f"no report {report_id!r}") from e
        try:
            item = self._model.get(REPORT_PARTITION, sort_key)
        except DoesNotExist as e:
            raise ReportNotFoundError(f"no report {report_id!r}") from e
        except PynamoDBException as e:
            raise StorageUnavailableError("could not read the report index") from e
        summary: dict[str, Any] = json.loads(item.row)
        return summary

    def get(self, report_id: str) -> dict[str, Any]:
        keys = self._summary(report_id)["s3"]
        report: dict[str, Any] = json.loads(self._archive.get(keys["json"]))
        return report

    def chart(self, report_id: str) -> str:
        return self._archive.get(self._summary(report_id)["s3"]["chart"]).decode()

    def last_action(self, target: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._model.get(ACTION_PARTITION, target).row))
        except DoesNotExist:
            return None
        except PynamoDBException as e:
            raise StorageUnavailableError("could not read the last scaling action") from e

    def record_action(self, target: str, action: dict[str, Any]) -> None:
        try:
            self._model(ACTION_PARTITION, target, row=json.dumps(action)).save()
        except PynamoDBException as e:
            raise StorageUnavailableError("could not record the scaling action") from e
