"""WAMP over the local stack's WebSocket gateway, with autobahn-python as the real client."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp.types import CallOptions, PublishOptions, SubscribeOptions

from devstack.stack import LocalStack, free_port
from tests.e2e.wamp_client import ApplicationError, Refused, close, connect

pytestmark = pytest.mark.integration
RESULTS = Path(__file__).resolve().parent.parent.parent / "bench" / "results"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=tmp_path_factory.mktemp("w")) as running:
        yield running


@pytest.fixture(scope="module")
def http(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


def _device(stack: LocalStack, http: httpx.Client, name: str) -> dict[str, Any]:
    answer = http.post("/v1/devices", json={"name": name}, headers={"Authorization": f"Bearer {stack.admin_token}"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 120))


def run_as_device_and_admin(
    stack: LocalStack,
    device: dict[str, Any],
    scenario: Callable[[ApplicationSession, ApplicationSession], Awaitable[None]],
) -> None:
    """Runs `scenario` with a session of `device` (with its token) and one of the admin, in that
    order, and closes both after it (a session the scenario already ended is skipped)."""

    async def with_sessions() -> None:
        device_session = await connect(stack.ws_url, device["token"])
        admin = await connect(stack.ws_url, stack.admin_token)
        try:
            await scenario(device_session, admin)
        finally:
            await close(device_session, admin)

    run(with_sessions())


def test_pubsub_round_trip_with_args_kwargs_acknowledge_and_exclude_me(stack: LocalStack, http: httpx.Client) -> None:
    device = _device(stack, http, "pub")
    topic = f"iotcloud.device.{device['id']}.status"

    async def scenario(publisher: ApplicationSession, admin: ApplicationSession) -> None:
        got: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        await admin.subscribe(lambda *a, **kw: got.put_nowait((a, kw)), topic)
        ack = await publisher.publish(topic, 1, "two", three=3, options=PublishOptions(acknowledge=True))
        assert ack.id > 0
        assert await asyncio.wait_for(got.get(), 10) == ((1, "two"), {"three": 3})
        # exclude_me (default true): the publisher's own subscription gets nothing...
        own: asyncio.Queue[Any] = asyncio.Queue()
        await publisher.subscribe(lambda *a, **kw: own.put_nowait(a), topic)
        await publisher.publish(topic, "x", options=PublishOptions(acknowledge=True))
        assert await asyncio.wait_for(got.get(), 10) == (("x",), {})
        await asyncio.sleep(0.5)
        assert own.empty()
        # ...unless it asks for it.
        await publisher.publish(topic, "y", options=PublishOptions(acknowledge=True, exclude_me=False))
        assert await asyncio.wait_for(own.get(), 10) == ("y",)

    run_as_device_and_admin(stack, device, scenario)


def test_rpc_round_trip_errors_missing_procedure_and_timeout(stack: LocalStack, http: httpx.Client) -> None:
    device = _device(stack, http, "callee")
    prefix = f"iotcloud.device.{device['id']}."

    async def scenario(callee: ApplicationSession, caller: ApplicationSession) -> None:
        def fail() -> None:
            raise ApplicationError("com.example.overheated", "too hot", celsius=90)

        async def slow() -> str:
            await asyncio.sleep(30)
            return "late"

        await callee.register(lambda a, b, scale=1: (a + b) * scale, prefix + "add")
        await callee.register(fail, prefix + "fail")
        await callee.register(slow, prefix + "slow")
        assert await caller.call(prefix + "add", 2, 3, scale=10) == 50
        with pytest.raises(ApplicationError) as raised:
            await caller.call(prefix + "fail")
        assert raised.value.error == "com.example.overheated"
        assert raised.value.kwargs == {"celsius": 90}
        with pytest.raises(ApplicationError) as missing:
            await caller.call(prefix + "nothing")
        assert missing.value.error == "wamp.error.no_such_procedure"
        started = time.monotonic()
        with pytest.raises(ApplicationError) as timed_out:
            await caller.call(prefix + "slow", options=CallOptions(timeout=1))
        assert timed_out.value.error == "wamp.error.timeout"
        assert time.monotonic() - started < 15

    run_as_device_and_admin(stack, device, scenario)


def test_callee_disconnecting_mid_call_fails_the_call(stack: LocalStack, http: httpx.Client) -> None:
    device = _device(stack, http, "leaver")
    procedure = f"iotcloud.device.{device['id']}.hang"

    async def scenario(callee: ApplicationSession, caller: ApplicationSession) -> None:
        invoked = asyncio.Event()

        async def hang() -> None:
            invoked.set()
            await asyncio.sleep(60)

        await callee.register(hang, procedure)
        pending = asyncio.ensure_future(caller.call(procedure))
        await asyncio.wait_for(invoked.wait(), 10)
        callee.disconnect()
        with pytest.raises(ApplicationError) as failed:
            await asyncio.wait_for(pending, 15)
        assert failed.value.error in ("wamp.error.no_available_callee", "wamp.error.canceled")

    run_as_device_and_admin(stack, device, scenario)


def test_devices_may_not_publish_or_register_outside_their_prefix_and_bad_tickets_abort(
    stack: LocalStack, http: httpx.Client
) -> None:
    device = _device(stack, http, "intruder")
    other = _device(stack, http, "victim")

    async def scenario() -> None:
        session = await connect(stack.ws_url, device["token"])
        with pytest.raises(ApplicationError) as publish:
            await session.publish(f"iotcloud.device.{other['id']}.status", 1, options=PublishOptions(acknowledge=True))
        assert publish.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as register:
            await session.register(lambda: None, f"iotcloud.device.{other['id']}.reboot")
        assert register.value.error == "wamp.error.not_authorized"
        await close(session)
        with pytest.raises(Refused) as refused:
            await connect(stack.ws_url, "iotd_not-a-token")
        assert refused.value.reason == "wamp.error.authentication_failed"

    run(scenario())


def test_telemetry_reaches_subscribers_and_wamp_published_telemetry_is_stored(
    stack: LocalStack, http: httpx.Client
) -> None:
    device = _device(stack, http, "sensor")
    auth = {"Authorization": f"Bearer {device['token']}"}

    async def scenario() -> None:
        dashboard = await connect(stack.ws_url, stack.admin_token)
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await dashboard.subscribe(lambda **kw: events.put_nowait(kw), f"iotcloud.telemetry.{device['id']}")
        posted = await asyncio.to_thread(
            http.post, "/v1/telemetry", json={"ts": 1764061200000, "values": {"temp": 21.5}}, headers=auth
        )
        assert posted.status_code == 200
        event = await asyncio.wait_for(events.get(), 15)
        assert event["readings"] == [{"metric": "temp", "unit": "", "ts": 1764061200000, "value": 21.5}]
        # A device publishing its telemetry over WAMP: stored like an HTTPS post, then live.
        wamp_device = await connect(stack.ws_url, device["token"])
        await wamp_device.publish(
            f"iotcloud.device.{device['id']}.telemetry",
            ts=1764061260000,
            values={"temp": 22.0},
            options=PublishOptions(acknowledge=True),
        )
        event = await asyncio.wait_for(events.get(), 15)
        assert event["readings"][0]["ts"] == 1764061260000
        with pytest.raises(ApplicationError) as rejected:
            await wamp_device.publish(
                f"iotcloud.device.{device['id']}.telemetry", values={"bad name!": 1},
                options=PublishOptions(acknowledge=True),
            )  # fmt: skip
        assert rejected.value.error == "iotcloud.error.validation_failed"
        await close(dashboard, wamp_device)

    run(scenario())
    stored = http.get(f"/v1/devices/{device['id']}/telemetry", headers=auth).json()["readings"]
    assert [r["ts"] for r in stored] == [1764061200000, 1764061260000]


def test_http_commands_reach_a_wamp_device_and_a_long_polling_device(stack: LocalStack, http: httpx.Client) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    online = _device(stack, http, "online")
    offline = _device(stack, http, "offline")

    def wait_done(device_id: str, command_id: str) -> dict[str, Any]:
        for _ in range(100):
            command = http.get(f"/v1/devices/{device_id}/commands/{command_id}", headers=admin).json()
            if command["status"] in ("done", "failed", "timeout"):
                return dict(command)
            time.sleep(0.1)
        raise AssertionError(f"command {command_id} never completed")

    async def scenario() -> None:
        session = await connect(stack.ws_url, online["token"])
        await session.register(lambda delay=0: {"rebooting_in": delay}, f"iotcloud.device.{online['id']}.reboot")
        sent = await asyncio.to_thread(
            http.post, f"/v1/devices/{online['id']}/commands", json={"procedure": "reboot", "kwargs": {"delay": 5}},
            headers=admin,
        )  # fmt: skip
        assert sent.status_code == 202, sent.text
        assert sent.json()["status"] == "invoked"
        done = await asyncio.to_thread(wait_done, online["id"], sent.json()["id"])
        assert done["status"] == "done" and done["result"] == {"rebooting_in": 5}
        await close(session)

    run(scenario())

    sent = http.post(f"/v1/devices/{offline['id']}/commands", json={"procedure": "get_status"}, headers=admin)
    assert sent.status_code == 202 and sent.json()["status"] == "queued"
    device_auth = {"Authorization": f"Bearer {offline['token']}"}
    fetched = http.get("/v1/commands", params={"wait": 5}, headers=device_auth).json()["commands"]
    assert [c["id"] for c in fetched] == [sent.json()["id"]]
    assert http.get("/v1/commands", params={"wait": 0}, headers=device_auth).json()["commands"] == []
    answered = http.post(f"/v1/commands/{sent.json()['id']}/result", json={"result": {"ok": True}}, headers=device_auth)
    assert answered.status_code == 200
    command = http.get(f"/v1/devices/{offline['id']}/commands/{sent.json()['id']}", headers=admin).json()
    assert command["status"] == "done" and command["result"] == {"ok": True}


def test_one_hundred_subscribers_each_receive_one_hundred_events(stack: LocalStack) -> None:
    topic = "iotcloud.fanout.test"
    subscribers, events = 100, 100

    async def scenario() -> list[float]:
        sessions = await asyncio.gather(*(connect(stack.ws_url, stack.admin_token) for _ in range(subscribers)))
        received: list[dict[int, float]] = [{} for _ in range(subscribers)]
        for n, session in enumerate(sessions):

            def on_event(seq: int, n: int = n) -> None:
                received[n][seq] = time.perf_counter()

            await session.subscribe(on_event, topic, options=SubscribeOptions())
        publisher = await connect(stack.ws_url, stack.admin_token)
        sent_at: dict[int, float] = {}
        for seq in range(events):
            sent_at[seq] = time.perf_counter()
            await publisher.publish(topic, seq, options=PublishOptions(acknowledge=True))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and any(len(r) < events for r in received):
            await asyncio.sleep(0.2)
        assert [len(r) for r in received] == [events] * subscribers
        latencies = [max(r[seq] for r in received) - sent_at[seq] for seq in range(events)]
        await close(publisher, *sessions)
        return latencies

    latencies = sorted(run(scenario()))
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(0.95 * len(latencies)) - 1] * 1000
    RESULTS.mkdir(parents=True, exist_ok=True)
    figures = {"subscribers": subscribers, "events": events, "publish_to_last_subscriber_ms": {"p50": p50, "p95": p95}}
    (RESULTS / "wamp-fanout.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfan-out to {subscribers} subscribers: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
