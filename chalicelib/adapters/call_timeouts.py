"""The WAMP router's call deadlines as delayed SQS messages (the call-timeout queue).

A serverless router has no timer: when a call is routed, a message delayed until its
deadline is queued, and the queue's handler asks the router to time the call out (a call
answered meanwhile is simply not found).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.clock import now_ms

MAX_DELAY_S = 900  # SQS's longest DelaySeconds: a later deadline wakes the router early, which re-checks it


class Deadline(Protocol):
    """A pending call (domain.wamp's PendingCall): its key and when it times out."""

    @property
    def key(self) -> str: ...
    @property
    def deadline_ms(self) -> int: ...


class CallTimeoutQueue:
    """Schedules a wake-up for a pending call's deadline.

    `sqs` gives the SQS client when first needed: a WebSocket frame that routes no call builds none.
    """

    def __init__(self, sqs: Callable[[], Any], queue_name: str, clock: Callable[[], int] = now_ms) -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._clock = clock
        self._lock = threading.Lock()
        self._url: str | None = None

    def queue_url(self) -> str:
        """The queue's URL, looked up once."""
        with self._lock:
            if self._url is None:
                self._url = str(self._sqs().get_queue_url(QueueName=self._queue_name)["QueueUrl"])
            return self._url

    def schedule(self, call: Deadline) -> None:
        """A message naming the call, delivered when its deadline passes (at most MAX_DELAY_S from now)."""
        delay = max(0, min(MAX_DELAY_S, math.ceil((call.deadline_ms - self._clock()) / 1000)))
        body = json.dumps({"call": call.key})
        self._sqs().send_message(QueueUrl=self.queue_url(), MessageBody=body, DelaySeconds=delay)

    @staticmethod
    def call_of(body: str) -> str:
        """The call key a queued message names."""
        return str(json.loads(body)["call"])
