"""HTTP transport: one shared httpx.AsyncClient, bounded concurrency, retries.

Retry policy (see :func:`backoff_delay`): 429, 503, 408, other 5xx, timeouts and
connection errors are retried with exponential backoff and full jitter
(``uniform(0, min(cap, base * 2**(attempt-1)))``, base 0.2 s, cap 10 s), or exactly the
server's ``Retry-After`` when it sends one. Any other 4xx is a rejection and is not
retried; its ``error.code`` is reported.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from device_sim import __version__
from device_sim.report import Stats

DEFAULT_BASE_DELAY = 0.2
DEFAULT_CAP_DELAY = 10.0
DEFAULT_MAX_RETRY_AFTER = 60.0
THROTTLE_STATUSES = frozenset({429, 503})


class Outcome(enum.Enum):
    OK = "ok"  # 2xx
    REJECTED = "rejected"  # a 4xx (other than 408/429): final, not retried
    GAVE_UP = "gave_up"  # retries exhausted (or past the deadline) on retryable failures


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base: float = DEFAULT_BASE_DELAY
    cap: float = DEFAULT_CAP_DELAY
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER


def backoff_delay(
    attempt: int,
    retry_after: float | None,
    rng: random.Random,
    *,
    base: float = DEFAULT_BASE_DELAY,
    cap: float = DEFAULT_CAP_DELAY,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry).

    With a server ``Retry-After`` (seconds, already parsed) the answer is exactly that,
    bounded to ``[0, max_retry_after]``. Otherwise exponential backoff with full jitter:
    ``uniform(0, min(cap, base * 2 ** (attempt - 1)))``.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_retry_after)
    ceiling = min(cap, base * (2.0 ** min(attempt - 1, 62)))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds: delta-seconds or an HTTP-date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def classify_status(status: int) -> str:
    """``ok``, ``throttled`` (429/503), ``timeout`` (408), ``server_error`` (other 5xx)
    or ``rejected`` (anything else, e.g. 400/401/403/404/409/413/415/422, 3xx)."""
    if 200 <= status < 300:
        return "ok"
    if status in THROTTLE_STATUSES:
        return "throttled"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "rejected"


def error_code(status: int, data: Any) -> str:
    """The ``error.code`` of an error answer, or ``http_<status>`` if the body has none."""
    if isinstance(data, Mapping):
        err = data.get("error")
        if isinstance(err, Mapping) and isinstance(err.get("code"), str) and err["code"]:
            return str(err["code"])
    return f"http_{status}"


def error_message(data: Any) -> str:
    if isinstance(data, Mapping):
        err = data.get("error")
        if isinstance(err, Mapping) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(data.get("message"), str):  # e.g. API Gateway's own answers
            return str(data["message"])
    return ""


@dataclass
class SendResult:
    outcome: Outcome
    status: int | None
    code: str | None  # error code of the final answer (rejections and give-ups)
    data: Any  # decoded JSON of the final answer, or None
    attempts: int
    latency_ms: float | None  # of the final, successful request
    last_failure: str | None  # throttled | server_error | timeout | transport | None
    message: str = ""
    maybe_stored: bool = False  # a refusal the server may have stored anyway (WAMP, see wamp.py)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


Sleep = Callable[[float], Awaitable[None]]


class Api:
    """The iotcloud HTTP API as seen by the simulator; safe to share across tasks."""

    def __init__(
        self,
        base_url: str,
        *,
        ingest_url: str | None = None,
        timeout: float = 10.0,
        concurrency: int = 64,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Telemetry may go through another door (a Function URL) than the rest of the API.
        self.ingest_url = (ingest_url or base_url).rstrip("/")
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max(1, concurrency),
                max_keepalive_connections=max(1, concurrency),
            ),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": f"iotcloud-device-sim/{__version__}"},
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def url(self, path: str, *, ingest: bool = False) -> str:
        return f"{self.ingest_url if ingest else self.base_url}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        stats: Stats | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
        ingest: bool = False,
    ) -> SendResult:
        """Send one logical request, retrying retryable failures per the policy.

        Every attempt carries the same headers and body (so an Idempotency-Key is
        reused on retries). ``deadline`` (in ``clock()`` time) stops retrying early.
        ``ingest``: a telemetry post, sent to the ingest door (``ingest_url``).
        """
        retries_allowed = self.policy.max_retries if max_retries is None else max_retries
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            headers = {"Content-Type": "application/json", **(headers or {})}
        url = self.url(path, ingest=ingest)
        attempt = 0
        while True:
            attempt += 1
            answer = await self._attempt(method, url, headers, content, params, stats, attempt)
            if isinstance(answer, SendResult):
                return answer
            # A retryable failure.
            if attempt > retries_allowed:
                return self._gave_up(answer.status, answer.data, attempt, answer.failure, answer.message)
            delay = backoff_delay(
                attempt,
                answer.retry_after,
                self.rng,
                base=self.policy.base,
                cap=self.policy.cap,
                max_retry_after=self.policy.max_retry_after,
            )
            if deadline is not None and self.clock() + delay > deadline:
                return self._gave_up(answer.status, answer.data, attempt, answer.failure, answer.message)
            if stats is not None:
                stats.retries += 1
            await self.sleep(delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        params: Mapping[str, str | int] | None,
        stats: Stats | None,
        attempt: int,
    ) -> SendResult | _Retryable:
        """One attempt: its final result (ok, rejected), or the retryable failure it met."""
        try:
            async with self._semaphore:
                if stats is not None:
                    stats.requests += 1
                started = time.perf_counter()
                response = await self._client.request(method, url, headers=headers, content=content, params=params)
                latency_ms = (time.perf_counter() - started) * 1000.0
        except httpx.UnsupportedProtocol:
            raise
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            if stats is not None:
                stats.transport_errors += 1
            return _Retryable(None, None, None, "transport", f"{type(exc).__name__}: {exc}")
        status = response.status_code
        data = _decode_json(response)
        kind = classify_status(status)
        if kind == "ok":
            if stats is not None:
                stats.latencies_ms.append(latency_ms)
            return SendResult(Outcome.OK, status, None, data, attempt, latency_ms, None)
        message = error_message(data)
        if kind == "rejected":
            return SendResult(Outcome.REJECTED, status, error_code(status, data), data, attempt, None, None, message)
        if stats is not None:
            if kind == "throttled":
                stats.throttled += 1
            elif kind == "server_error":
                stats.server_errors += 1
            else:
                stats.transport_errors += 1
        return _Retryable(status, data, parse_retry_after(response.headers.get("Retry-After")), kind, message)

    @staticmethod
    def _gave_up(status: int | None, data: Any, attempts: int, failure: str, message: str) -> SendResult:
        code = error_code(status, data) if status is not None else failure
        return SendResult(Outcome.GAVE_UP, status, code, data, attempts, None, failure, message)


@dataclass(frozen=True)
class _Retryable:
    """An attempt's retryable failure: what it answered (if anything) and why it may be retried."""

    status: int | None
    data: Any
    retry_after: float | None
    failure: str
    message: str


def _decode_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
