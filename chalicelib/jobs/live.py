"""The readings stream's live handler: the device-state fold, alert evaluation, then telemetry events to WAMP
subscribers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.clock import now_ms as clock_now
from chalicelib.domain.state import DeviceStates, LazyFolds
from chalicelib.errors import DeviceNotFoundError
from chalicelib.jobs.alerts import AlertJobs, DeviceBatch, stream_batch
from chalicelib.jobs.realtime import Realtime

logger = logging.getLogger("iotcloud.live")


@dataclass(frozen=True)
class LiveStream:
    alerts: AlertJobs
    realtime: Realtime
    states: DeviceStates
    clock: Callable[[], int] = clock_now
    # This container's own folds (a warm container keeps them): when to fold, never what (domain.state).
    folds: LazyFolds = field(default_factory=LazyFolds)

    def handle(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One batch: fold device state, evaluate alerts, publish. Each step raises on failure, so Lambda
        retries the whole batch, and each is harmless to repeat: the fold is forward-only, evaluation is
        forward-only per (rule, device), so a retry raises nothing twice. The fold comes first so that a
        failing alert store or WAMP fan-out never holds back the state the API and pages read."""
        batch = stream_batch(records)
        folded = self.fold(batch)
        summary = self.alerts.evaluate_batch(batch)
        if summary.raised or summary.cleared or summary.delivery.retried or summary.delivery.given_up:
            logger.info("alerts: %s", summary.as_dict())
        if folded:
            logger.debug("folded the state of %d of %d devices", folded, len(batch))
        self.realtime.publish_telemetry(records)
        return {"batchItemFailures": []}

    def fold(self, batch: dict[str, DeviceBatch]) -> int:
        """Fold the devices of a batch whose fold is due (LazyFolds); how many were folded."""
        folded = 0
        now = self.clock()
        for device_id, seen in batch.items():
            if seen.received_at is None:
                continue
            series = {(r.metric, r.unit) for r in seen.readings}
            if not self.folds.due(device_id, seen.received_at, series):
                continue
            try:
                state = self.states.fold(device_id, now)
            except DeviceNotFoundError:
                continue  # deleted since: no state to keep
            self.folds.folded(device_id, state)
            folded += 1
        return folded
