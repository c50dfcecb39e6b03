"""The readings stream's live handler: alert evaluation, then telemetry events to WAMP subscribers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.jobs.alerts import AlertJobs
from chalicelib.jobs.realtime import Realtime

logger = logging.getLogger("iotcloud.live")


@dataclass(frozen=True)
class LiveStream:
    alerts: AlertJobs
    realtime: Realtime

    def handle(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One batch. Alerts first: if publishing fails, Lambda retries the batch, and evaluation is
        forward-only per (rule, device), so a retry raises nothing twice."""
        summary = self.alerts.evaluate(records)
        if summary.raised or summary.cleared or summary.delivery.retried or summary.delivery.given_up:
            logger.info("alerts: %s", summary.as_dict())
        self.realtime.publish_telemetry(records)
        return {"batchItemFailures": []}
