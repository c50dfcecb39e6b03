"""The app's own CloudWatch metrics (namespace `iotcloud`, dimension `Stage`).

In Lambda they are printed in Embedded Metric Format (EMF), one JSON line per dimension
set: CloudWatch Logs turns them into metrics, so the request path makes no extra API call.
The format is small enough to write here (docs/DEPLOY.md: why not Powertools):
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
The local stack sends the same datums with PutMetricData to moto, from a background
thread, so scaling reports work locally.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

NAMESPACE = "iotcloud"
# EMF limits: at most 100 metrics in a document and 100 values per metric.
EMF_MAX_METRICS = 100
EMF_MAX_VALUES = 100
# Digits an EMF value keeps: CloudWatch stores a datum as a double but its statistics (p95 and
# the like) are approximations well above 1e-6 relative, so the 17 digits of a float's repr,
# paid on every invocation's log line, say nothing more.
EMF_SIGNIFICANT_DIGITS = 6
logger = logging.getLogger("iotcloud.metrics")


@dataclass(frozen=True)
class Datum:
    name: str
    value: float
    unit: str  # CloudWatch unit: Count, Milliseconds, None, ...
    dimensions: tuple[tuple[str, str], ...]
    timestamp: datetime


class MetricsSink(Protocol):
    def publish(self, datums: list[Datum]) -> None: ...

    def drain(self) -> None: ...


class Metrics:
    """Collects datums during an invocation; `flush` hands them to the sink."""

    def __init__(self, stage: str, sink: MetricsSink | None) -> None:
        self._stage = stage
        self._sink = sink
        self._pending: list[Datum] = []
        self._lock = threading.Lock()

    def add(self, name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
        if self._sink is None:
            return
        dims = (("Stage", self._stage), *sorted(dimensions.items()))
        with self._lock:
            self._pending.append(Datum(name, float(value), unit, dims, datetime.now(UTC)))

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if pending and self._sink is not None:
            try:
                self._sink.publish(pending)
            except Exception:  # metrics must never fail a request
                logger.exception("could not publish %d metric datums", len(pending))

    def drain(self) -> None:
        """Flush, and wait until the sink has sent everything (the local stack's reports)."""
        self.flush()
        if self._sink is not None:
            self._sink.drain()


class EmfSink:
    """Prints Embedded Metric Format documents (one per dimension set) to stdout."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream  # None: sys.stdout at the time of writing (pytest swaps it)

    def drain(self) -> None:
        pass

    def publish(self, datums: list[Datum]) -> None:
        groups: dict[tuple[tuple[str, str], ...], list[Datum]] = defaultdict(list)
        for datum in datums:
            groups[datum.dimensions].append(datum)
        out = self._stream or sys.stdout
        for dimensions, group in groups.items():
            for document in emf_documents(dimensions, group):
                out.write(json.dumps(document, separators=(",", ":")) + "\n")
        out.flush()


def emf_value(value: float) -> int | float:
    """A value as EMF prints it: EMF_SIGNIFICANT_DIGITS digits, and a whole number without ".0"."""
    short = float(f"{value:.{EMF_SIGNIFICANT_DIGITS}g}")
    return int(short) if short.is_integer() and abs(short) < 2**53 else short


def emf_documents(dimensions: tuple[tuple[str, str], ...], datums: list[Datum]) -> list[dict[str, Any]]:
    """EMF documents for one dimension set: values of a metric gathered in a list, within EMF's limits.

    A metric with one value (the request path's every metric) is a number, not a list of one:
    EMF takes either, and the list's brackets would be printed on every invocation.
    """
    values: dict[str, list[int | float]] = defaultdict(list)
    units: dict[str, str] = {}
    for datum in datums:
        values[datum.name].append(emf_value(datum.value))
        units.setdefault(datum.name, datum.unit)
    timestamp = int(min(d.timestamp for d in datums).timestamp() * 1000)
    # (name, a slice of its values) pairs, then at most EMF_MAX_METRICS of them a document.
    parts = [
        (name, series[i : i + EMF_MAX_VALUES])
        for name, series in values.items()
        for i in range(0, len(series), EMF_MAX_VALUES)
    ]
    documents: list[dict[str, Any]] = []
    while parts:
        batch: dict[str, list[int | float]] = {}
        rest = []
        for name, chunk in parts:
            if name in batch or len(batch) == EMF_MAX_METRICS:
                rest.append((name, chunk))
            else:
                batch[name] = chunk
        parts = rest
        directive = {
            "Namespace": NAMESPACE,
            "Dimensions": [[name for name, _ in dimensions]],
            "Metrics": [{"Name": name, "Unit": units[name]} for name in batch],
        }
        members = {name: chunk[0] if len(chunk) == 1 else chunk for name, chunk in batch.items()}
        documents.append(
            {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]}, **dict(dimensions), **members}
        )
    return documents


class PutMetricDataSink:
    """Sends datums with PutMetricData from a background thread (the local stack)."""

    BATCH = 500  # PutMetricData takes at most 1000 datums a call

    def __init__(self, cloudwatch: Any) -> None:
        self._cloudwatch = cloudwatch
        self._queue: queue.Queue[list[Datum]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def publish(self, datums: list[Datum]) -> None:
        self._queue.put(datums)

    def drain(self) -> None:
        """Wait until everything published so far has been sent."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            datums = self._queue.get()
            try:
                self._send(datums)
            finally:
                self._queue.task_done()

    def _send(self, datums: list[Datum]) -> None:
        for start in range(0, len(datums), self.BATCH):
            chunk = datums[start : start + self.BATCH]
            try:
                self._cloudwatch.put_metric_data(
                    Namespace=NAMESPACE,
                    MetricData=[
                        {
                            "MetricName": d.name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in d.dimensions],
                            "Value": d.value,
                            "Unit": d.unit,
                            "Timestamp": d.timestamp,
                        }
                        for d in chunk
                    ],
                )
            except Exception:
                logger.exception("PutMetricData failed for %d datums", len(chunk))
