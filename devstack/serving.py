"""How the local stack's HTTP servers hold a burst of clients.

Python's ``socketserver`` listens with a backlog of 5 and starts a thread for every connection,
each of which runs the app at once: 100 devices connecting together got connection resets, and
every request thread ran at the same time, so latency grew past the clients' timeouts. Here:

- every server listens with ``LISTEN_BACKLOG``;
- a connection still gets its own thread (it mostly waits for the client's next request on a
  keep-alive connection), but at most ``Limits.max_active`` requests run the app at once;
- a request that finds ``Limits.max_waiting`` others waiting for a slot, or waits longer than
  ``Limits.max_wait_s`` for one, is answered 503 ``overloaded`` with ``Retry-After``, so the
  client backs off instead of timing out.

In Lambda each container serves one request at a time and API Gateway throttles in front of it;
this is the local stack's stand-in, not the app's code.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from chalice import local

# Connections the kernel queues before accept(); socketserver's default of 5 reset a burst.
# Linux caps it at net.core.somaxconn (4096 on current kernels).
LISTEN_BACKLOG = 1024

# The stable error code of the local stack's 503 when it is saturated (the app's error shape).
OVERLOADED_CODE = "overloaded"
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Limits:
    """How much the local API server runs at once and how long a request may wait for a slot."""

    max_active: int = 32  # requests running the app at once (the rest wait for a slot)
    max_waiting: int = 256  # requests waiting for a slot; one more is answered 503 at once
    # Well below device_sim's 10 s request timeout: a 503 the client retries beats a timeout.
    max_wait_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_active < 1 or self.max_waiting < 0 or self.max_wait_s < 0:
            raise ValueError(f"invalid limits: {self}")


@dataclass
class AdmissionStats:
    """What the admission control saw (figures for tests and the bench)."""

    admitted: int = 0
    rejected_queue_full: int = 0
    rejected_wait_timeout: int = 0
    peak_active: int = 0
    peak_waiting: int = 0

    @property
    def rejected(self) -> int:
        return self.rejected_queue_full + self.rejected_wait_timeout


@dataclass
class Admission:
    """A counted semaphore of request slots that refuses instead of queueing without bound."""

    limits: Limits = field(default_factory=Limits)
    stats: AdmissionStats = field(default_factory=AdmissionStats)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.limits.max_active)
        self._lock = threading.Lock()
        self._active = 0
        self._waiting = 0

    def acquire(self) -> bool:
        """Take a slot (True), or say the request must be refused (False)."""
        if self._slots.acquire(blocking=False):
            self._admitted()
            return True
        with self._lock:
            if self._waiting >= self.limits.max_waiting:
                self.stats.rejected_queue_full += 1
                return False
            self._waiting += 1
            self.stats.peak_waiting = max(self.stats.peak_waiting, self._waiting)
        got = self._slots.acquire(timeout=self.limits.max_wait_s)
        with self._lock:
            self._waiting -= 1
            if not got:
                self.stats.rejected_wait_timeout += 1
        if got:
            self._admitted()
        return got

    def release(self) -> None:
        with self._lock:
            self._active -= 1
        self._slots.release()

    def _admitted(self) -> None:
        with self._lock:
            self._active += 1
            self.stats.admitted += 1
            self.stats.peak_active = max(self.stats.peak_active, self._active)


class OverloadedError(local.LocalGatewayException):  # type: ignore[misc]
    """Chalice's local handler answers its gateway exceptions with CODE, headers and body."""

    CODE = 503

    def __init__(self, message: str) -> None:
        body = {"error": {"code": OVERLOADED_CODE, "message": message, "details": []}}
        super().__init__(
            {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER_S)},
            json.dumps(body, separators=(",", ":")).encode(),
        )


class ApiServer(local.ThreadedHTTPServer):  # type: ignore[misc]
    """Chalice's threaded local server with a real backlog and admission control."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: Any, admission: Admission) -> None:
        self.admission = admission
        super().__init__(address, handler)


class ApiHandler(local.ChaliceRequestHandler):  # type: ignore[misc]
    """Chalice's request handler: no log line per request, and a slot per request."""

    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _generic_handle(self) -> None:
        admission = self.server.admission
        if not admission.acquire():
            # Read the body, so the connection stays usable (and closing it sends no reset).
            self._parse_payload()
            self._send_error_response(OverloadedError("the local stack is saturated: retry after Retry-After seconds"))
            return
        try:
            super()._generic_handle()
        finally:
            admission.release()

    # Chalice binds its methods to its own _generic_handle: rebind them to this one.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle
