"""The app's own CloudWatch metrics (namespace `iotcloud`, dimension `Stage`).

In Lambda they are printed in Embedded Metric Format through aws-lambda-powertools:
CloudWatch Logs turns them into metrics, so the request path makes no extra API call.
The local stack sends the same datums with PutMetricData to moto, from a background
thread, so scaling reports work locally.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

NAMESPACE = "iotcloud"
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

    def drain(self) -> None:
        pass

    def publish(self, datums: list[Datum]) -> None:
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )

        groups: dict[tuple[tuple[str, str], ...], list[Datum]] = defaultdict(list)
        for datum in datums:
            groups[datum.dimensions].append(datum)
        for dimensions, group in groups.items():
            # service="": the dimensions are exactly Stage (+ the metric's own), nothing implicit.
            provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service="")
            for name, value in dimensions:
                provider.add_dimension(name=name, value=value)
            for datum in group:
                provider.add_metric(name=datum.name, unit=datum.unit, value=datum.value)
            provider.flush_metrics()


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
