"""The local stack holds a burst of first requests, and says 503 (not a timeout) when saturated.

Issue 13, item 8: 100 simulated devices starting together made every request thread build its
own botocore client (the process grew to 3.5 GB, requests timed out) and overflowed a listen
backlog of 5 (connection resets). These start a fresh stack in this process, over real HTTP.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.session
import httpx
import pytest
from pynamodb.connection.base import Connection

from devstack.serving import LISTEN_BACKLOG, OVERLOADED_CODE, RETRY_AFTER_S, Limits
from devstack.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

DEVICES = 100
# The burst may not grow the process by more than this (before the fix: gigabytes).
MAX_RSS_GROWTH_MB = 200


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class _Peak:
    """Samples this process's thread count and RSS while a burst runs."""

    def __init__(self) -> None:
        self.threads = threading.active_count()
        self.rss_mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.threads = max(self.threads, threading.active_count())
            self.rss_mb = max(self.rss_mb, _rss_mb())


async def _send_all(
    url: str, requests: list[tuple[str, dict[str, str], Any]], retries: int = 10
) -> tuple[list[httpx.Response], list[httpx.Response], list[Exception]]:
    """Every request at once on its own connection; a 503 is retried after its Retry-After.

    Returns the final answers, the 503 answers met on the way, and any transport error.
    """
    start = asyncio.Event()
    overloaded: list[httpx.Response] = []
    errors: list[Exception] = []
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one(path: str, headers: dict[str, str], body: Any) -> httpx.Response:
            await start.wait()
            for _ in range(retries):
                try:
                    answer = await http.post(path, json=body, headers=headers)
                except httpx.TransportError as e:  # a reset or a refused connection: the bug
                    errors.append(e)
                    raise
                if answer.status_code != 503:
                    return answer
                overloaded.append(answer)
                await asyncio.sleep(float(answer.headers["Retry-After"]))
            return answer

        tasks = [asyncio.create_task(one(*r)) for r in requests]
        await asyncio.sleep(0.1)  # every task is waiting on the event: they fire together
        start.set()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
    return [a for a in answers if isinstance(a, httpx.Response)], overloaded, errors


def _check_overloaded(answer: httpx.Response) -> None:
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == OVERLOADED_CODE and error["message"] and error["details"] == []


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[Callable[..., LocalStack]]:
    """Start a fresh stack (this process's first requests) with the given limits."""
    stacks: list[LocalStack] = []

    def start(limits: Limits | None = None) -> LocalStack:
        stack = LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=tmp_path, limits=limits or Limits())
        stacks.append(stack.__enter__())
        return stack

    yield start
    for stack in stacks:
        stack.stop()


def test_a_hundred_devices_registering_then_posting_at_once_all_succeed(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    stack = fresh_stack()
    assert stack._server.server.request_queue_size == LISTEN_BACKLOG
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    registrations = [("/v1/devices", admin, {"name": f"burst-{i}", "type": "thermometer"}) for i in range(DEVICES)]
    real_create = botocore.session.Session.create_client
    builds: list[str] = []

    def counting_create_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        builds.append(service_name)
        return real_create(session, service_name, *args, **kwargs)

    with mock.patch.object(botocore.session.Session, "create_client", counting_create_client), _Peak() as peak:
        created, overloaded, errors = asyncio.run(_send_all(stack.api_url, registrations))
        assert not errors, errors[:3]
        assert [a.status_code for a in created] == [201] * DEVICES, [a.text for a in created if a.status_code != 201]
        devices = [a.json() for a in created]
        now = int(time.time() * 1000)
        posts = [
            (
                "/v1/telemetry",
                {"Authorization": f"Bearer {d['token']}", "Idempotency-Key": str(uuid.uuid4())},
                [{"ts": now - 1000 * k, "values": {"temp": 20 + k, "hum": 40}} for k in range(5)],
            )
            for d in devices
        ]
        posted, overloaded_posts, errors = asyncio.run(_send_all(stack.api_url, posts))
    assert not errors, errors[:3]
    assert [a.status_code for a in posted] == [200] * DEVICES, [a.text for a in posted if a.status_code != 200]
    assert sum(a.json()["accepted"] for a in posted) == DEVICES * 10
    for answer in overloaded + overloaded_posts:  # allowed, if it is the clean kind
        _check_overloaded(answer)
    # Everything the requests needed was built before the stack served: no client was built in
    # the burst (each request thread building its own was the collapse).
    assert builds == []
    assert stack.admission is not None
    assert stack.admission.stats.admitted >= 2 * DEVICES
    assert 1 < stack.admission.stats.peak_active <= stack.limits.max_active
    # A thread per open connection at most (the clients are asyncio tasks of this thread).
    assert peak.threads <= threading.active_count() + DEVICES + 10
    assert peak.rss_mb - _Peak().rss_mb < MAX_RSS_GROWTH_MB


def test_a_saturated_stack_answers_503_with_retry_after_and_acknowledges_nothing(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    # Two requests may run, two may wait half a second for a slot; the writes are held at a gate.
    stack = fresh_stack(Limits(max_active=2, max_waiting=2, max_wait_s=0.5))
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        devices = [http.post("/v1/devices", json={"name": f"slow-{i}"}, headers=admin).json() for i in range(6)]
    gate = threading.Event()
    real_call = Connection._make_api_call

    def held_writes(connection: Any, operation: str, kwargs: dict[str, Any]) -> Any:
        if operation == "BatchWriteItem":
            assert gate.wait(30), "the gate never opened"
        return real_call(connection, operation, kwargs)

    now = int(time.time() * 1000)

    def post(device: dict[str, Any], answers: list[tuple[str, float, httpx.Response]]) -> None:
        started = time.monotonic()
        auth = {"Authorization": f"Bearer {device['token']}"}
        with httpx.Client(base_url=stack.api_url, timeout=20) as http:
            answer = http.post("/v1/telemetry", json={"ts": now, "values": {"temp": 1}}, headers=auth)
        answers.append((device["id"], time.monotonic() - started, answer))

    answers: list[tuple[str, float, httpx.Response]] = []
    with mock.patch.object(Connection, "_make_api_call", held_writes):
        threads = [threading.Thread(target=post, args=(d, answers)) for d in devices]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while sum(1 for _, _, a in answers if a.status_code == 503) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = [(device_id, elapsed, a) for device_id, elapsed, a in answers if a.status_code == 503]
        gate.set()
        for t in threads:
            t.join()
    assert len(refused) == 4, [(e, a.status_code) for _, e, a in answers]
    for _, _, answer in refused:
        _check_overloaded(answer)
    stats = stack.admission.stats if stack.admission else None
    assert stats is not None
    assert (stats.rejected_queue_full, stats.rejected_wait_timeout, stats.peak_active) == (2, 2, 2)
    # Refused at once when the queue is full, after max_wait_s when a slot never came: both
    # long before the held writes finished (the client never waits out its own timeout).
    waits = sorted(elapsed for _, elapsed, _ in refused)
    assert waits[-1] < 5
    assert waits[-2] >= 0.5
    assert sorted(a.status_code for _, _, a in answers) == [200, 200, 503, 503, 503, 503]
    # Nothing of a refused request was stored; the two that ran stored their reading.
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        stored = {
            d["id"]: len(http.get(f"/v1/devices/{d['id']}/telemetry", headers=admin).json()["readings"])
            for d in devices
        }
    assert {device_id: stored[device_id] for device_id, _, _ in refused} == dict.fromkeys(
        (device_id for device_id, _, _ in refused), 0
    )
    assert sorted(stored.values()) == [0, 0, 0, 0, 1, 1]
