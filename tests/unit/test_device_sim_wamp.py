"""device_sim --transport wamp: the pure parts, without a router (publish payloads and options,
error classification, the procedures' effects on a device, retries, the report's wamp section,
the WebSocket URL and the command line)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from autobahn.asyncio.wamp import ApplicationSession  # first: it makes txaio use asyncio
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError, TransportLost
from autobahn.wamp.serializer import JsonSerializer

from device_sim.cli import main, resolve_ws_url
from device_sim.config import SimConfig
from device_sim.fleet import Batch, DeviceIdentity, RunControl, Wake
from device_sim.model import Record, Sample
from device_sim.payloads import encode
from device_sim.profiles import load_profile
from device_sim.report import Stats, WampStats, build_report, merge_wamp_stats, wamp_section
from device_sim.transport import Api, Outcome, RetryPolicy
from device_sim.wamp import (
    MAX_MESSAGE_BYTES,
    DeviceSession,
    KeyedPublish,
    WampDevice,
    classify_publish_error,
    device_prefix,
    kwargs_from_body,
    procedure_uri,
    publish_frame,
    publish_kwargs,
    telemetry_topic,
)

RECORDS = [
    Record(1764061200000, (Sample("temp", "Cel", 21.5), Sample("door", "", "open"))),
    Record(1764061201000, (Sample("temp", "Cel", 21.75), Sample("alarm", "", True))),
]


def make_device(api: Api | None = None, **overrides: Any) -> WampDevice:
    settings: dict[str, Any] = {
        "profile": load_profile(None),
        "transport": "wamp",
        "ws_url": "ws://127.0.0.1:1",
        "interval": 1.0,
        "count": 10,
        "max_retries": 3,
        "timeout": 1.0,
        **overrides,
    }
    cfg = SimConfig(**settings)
    api = api or Api(cfg.url, policy=RetryPolicy(max_retries=cfg.max_retries, base=0.001, cap=0.002))
    identity = DeviceIdentity(0, "dev-1", "sim-x", cfg.profile.device_types[0].name, "iotd_secret")
    return WampDevice(identity, cfg.profile.device_types[0], cfg, api, Stats(), RunControl(100.0, None))


def started(device: WampDevice, next_step: int) -> WampDevice:
    """As if the producer had started at t=100 with jitter 0.5 and made ``next_step`` records."""
    device.started = True
    device.sched_t, device.sched_sim, device.sched_step = 100.5, 0.5, 0
    device.next_step = next_step
    return device


# ----------------------------------------------------------------- URIs and the publish message


def test_topics_and_procedures_live_under_the_device_namespace_with_dots_encoded() -> None:
    assert telemetry_topic("dev-1") == "iotcloud.device.dev-1.telemetry"
    assert procedure_uri("dev-1", "get_status") == "iotcloud.device.dev-1.get_status"
    assert device_prefix("a.b%c") == "iotcloud.device.a%2Eb%25c."  # as the router encodes ids


def test_publish_kwargs_are_the_json_formats_records() -> None:
    kwargs = publish_kwargs(RECORDS)
    assert kwargs == {
        "records": [
            {"ts": 1764061200000, "values": {"temp": 21.5, "door": "open"}},
            {"ts": 1764061201000, "values": {"temp": 21.75, "alarm": True}},
        ]
    }
    # The batch body (fixed at first transmission, reused by retries) gives the same kwargs.
    assert kwargs_from_body(encode("json", RECORDS)) == kwargs


def test_publish_frame_carries_acknowledge_and_the_idempotency_key() -> None:
    topic = telemetry_topic("dev-1")
    frame = publish_frame(7, topic, publish_kwargs(RECORDS), "key-1")
    assert frame == [16, 7, {"acknowledge": True, "idempotency_key": "key-1"}, topic, [], publish_kwargs(RECORDS)]
    wire, binary = JsonSerializer().serialize(cast(Any, KeyedPublish(7, topic, publish_kwargs(RECORDS), "key-1")))
    assert not binary
    assert json.loads(wire) == frame


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.is_closed = False

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


def test_publish_keyed_resolves_on_published_and_fails_on_error() -> None:
    """The autobahn internals publish_keyed relies on (request ids, pending publishes)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        session = DeviceSession(make_device().link, loop.create_future())
        assert isinstance(session, ApplicationSession)
        transport = RecordingTransport()
        session._transport = cast(Any, transport)
        session._session_id = 1  # as after WELCOME
        reply = session.publish_keyed("iotcloud.device.dev-1.telemetry", {"records": []}, "k")
        sent = transport.sent[0]
        assert isinstance(sent, KeyedPublish) and sent.marshal()[2]["idempotency_key"] == "k"
        session.onMessage(cast(Any, message.Published(sent.request, 4242)))
        assert (await reply).id == 4242
        failing = session.publish_keyed("iotcloud.device.dev-1.telemetry", {"records": []}, "k2")
        refused = "iotcloud.error.validation_failed"
        error = message.Error(message.Publish.MESSAGE_TYPE, transport.sent[1].request, refused)
        session.onMessage(cast(Any, error))
        with pytest.raises(ApplicationError) as raised:
            await failing
        assert raised.value.error == "iotcloud.error.validation_failed"
        session._transport = None
        with pytest.raises(TransportLost):
            session.publish_keyed("iotcloud.device.dev-1.telemetry", {"records": []}, "k3")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("uri", "code", "status", "kind", "maybe_stored"),
    [
        ("iotcloud.error.validation_failed", "validation_failed", 422, "rejected", False),
        ("iotcloud.error.malformed_payload", "malformed_payload", 400, "rejected", False),
        ("iotcloud.error.storage_unavailable", "storage_unavailable", 503, "throttled", False),
        ("iotcloud.error.internal_error", "internal_error", 500, "server_error", False),
        ("iotcloud.error.something_new", "something_new", None, "rejected", False),
        ("wamp.error.not_authorized", "wamp.error.not_authorized", 403, "rejected", False),
        ("wamp.error.payload_size_exceeded", "wamp.error.payload_size_exceeded", 413, "rejected", True),
        ("wamp.close.transport_lost", "wamp.close.transport_lost", None, "transport", False),
    ],
)
def test_publish_errors_are_classified_like_the_http_answers(
    uri: str, code: str, status: int | None, kind: str, maybe_stored: bool
) -> None:
    error = classify_publish_error(uri)
    assert (error.code, error.status, error.kind, error.maybe_stored) == (code, status, kind, maybe_stored)
    assert error.retryable == (kind != "rejected")


# ----------------------------------------------------------------- procedures


def test_set_interval_applies_from_the_next_record_on() -> None:
    device = started(make_device(), next_step=5)  # record 4 was due at 104.5
    assert device.target_time(5) == pytest.approx(105.5)
    device.apply_interval(0.25, now=104.6)
    assert device.interval == 0.25
    assert device.target_time(5) == pytest.approx(104.75)  # one new interval after record 4
    assert device.target_time(6) == pytest.approx(105.0)
    assert device.sim_offset(5) == pytest.approx(4.75)  # --start-ms stamps follow the schedule
    assert device.reschedule.is_set()  # a sleeping producer wakes up and recomputes
    # Shortening the interval after a long pause does not make the device catch up in a burst.
    device.apply_interval(0.1, now=200.0)
    assert device.target_time(5) == pytest.approx(200.0)
    assert device.target_time(7) == pytest.approx(200.2)


def test_set_interval_before_the_first_record_keeps_its_start_time() -> None:
    device = started(make_device(), next_step=0)
    device.apply_interval(2.0, now=100.1)
    assert device.target_time(0) == pytest.approx(100.5)
    assert device.target_time(3) == pytest.approx(106.5)


def test_set_interval_procedure_validates_and_returns_the_new_interval() -> None:
    device = started(make_device(), next_step=3)
    assert device.proc_set_interval(seconds=2) == 2.0
    assert device.proc_set_interval(0.5) == 0.5  # positional, as autobahn callers may send it
    for bad in (0, -1, True, "2", math.nan, math.inf, 86_401, None):
        with pytest.raises(ApplicationError) as raised:
            device.proc_set_interval(seconds=bad)
        assert raised.value.error == "wamp.error.invalid_argument"
    assert device.interval == 0.5


def test_reboot_pauses_production_and_restarts_uptime() -> None:
    device = started(make_device(reboot_pause=1.0), next_step=5)  # record 5 due at 105.5
    device.apply_reboot(now=105.0)
    assert device.resume_at == pytest.approx(106.0)
    assert device.target_time(5) == pytest.approx(106.0)  # nothing is produced during the pause
    assert device.target_time(6) == pytest.approx(107.0)  # then the same interval as before
    assert device.sim_offset(5) == pytest.approx(6.0)
    assert device.booted_at == pytest.approx(106.0)
    assert device.wamp.reboots == 1
    assert device.proc_reboot() == {"rebooting": True}
    assert device.wamp.reboots == 2
    # A set_interval during the pause does not end it early.
    device.apply_interval(0.1, now=device.resume_at - 0.5)
    assert device.target_time(5) == pytest.approx(device.resume_at)


def test_get_status_reports_the_devices_own_counters() -> None:
    device = make_device(interval=0.5)
    device.records_sent, device.records_acked, device.buffered = 30, 25, 7
    status = device.proc_get_status()
    assert set(status) == {"device_id", "records_sent", "records_acked", "interval_s", "uptime_s", "buffered"}
    assert (status["device_id"], status["records_sent"], status["records_acked"]) == ("dev-1", 30, 25)
    assert (status["interval_s"], status["buffered"]) == (0.5, 7)
    assert status["uptime_s"] >= 0


def test_calls_are_counted_per_procedure_and_unknown_ones_refused() -> None:
    device = make_device()
    assert device.link.answer("get_status", [], {})["device_id"] == "dev-1"
    assert device.link.answer("set_interval", [], {"seconds": 3}) == 3.0
    with pytest.raises(ApplicationError):
        device.link.answer("set_interval", [], {"seconds": -3})  # an error answer is an answer too
    with pytest.raises(ApplicationError) as unknown:
        device.link.answer("self_destruct", [], {})
    assert unknown.value.error == "wamp.error.no_such_procedure"
    assert device.wamp.calls == {"set_interval": 2, "reboot": 0, "get_status": 1}


def test_pause_wakes_early_when_the_schedule_changes_or_the_run_stops() -> None:
    async def scenario() -> None:
        device = started(make_device(), next_step=1)
        loop = asyncio.get_running_loop()
        assert await device.pause(0.01) is Wake.ELAPSED
        loop.call_later(0.02, device.apply_interval, 0.5, 0.0)
        assert await asyncio.wait_for(device.pause(30), 5) is Wake.RESCHEDULED
        loop.call_later(0.02, device.control.stop)
        assert await asyncio.wait_for(device.pause(30), 5) is Wake.STOPPED

    asyncio.run(scenario())


def test_queued_http_commands_are_answered_after_joining() -> None:
    posted: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer iotd_secret"
        if request.method == "GET":
            commands = [
                {"id": "c1", "procedure": "iotcloud.device.dev-1.set_interval", "args": [], "kwargs": {"seconds": 2}},
                {"id": "c2", "procedure": "iotcloud.device.dev-1.get_status", "args": [], "kwargs": {}},
                {"id": "c3", "procedure": "iotcloud.device.dev-1.explode", "args": [], "kwargs": {}},
            ]
            return httpx.Response(200, json={"commands": commands})
        posted[request.url.path] = json.loads(request.content)
        return httpx.Response(200, json={})

    async def scenario() -> WampDevice:
        api = Api("http://sim.test", transport=httpx.MockTransport(handler))
        async with api:
            device = make_device(api)
            await device.fetch_queued_commands()
        return device

    device = asyncio.run(scenario())
    assert posted["/v1/commands/c1/result"] == {"result": 2.0}
    assert posted["/v1/commands/c2/result"]["result"]["interval_s"] == 2.0
    assert posted["/v1/commands/c3/result"]["error"]["uri"] == "wamp.error.no_such_procedure"
    assert device.wamp.commands_polled == 3
    assert device.wamp.calls == {"set_interval": 1, "reboot": 0, "get_status": 1}


# ----------------------------------------------------------------- publishing with retries


class FakeSession:
    def is_attached(self) -> bool:
        return True


class FakeLink:
    """Stands in for WampLink: scripted publish outcomes (None: PUBLISHED)."""

    def __init__(self, outcomes: list[BaseException | None], connected: bool = True) -> None:
        self.outcomes = outcomes
        self.connected = connected
        self.published: list[tuple[str, dict[str, Any], str]] = []
        self.last_error = ""

    async def wait_session(self, timeout: float) -> FakeSession | None:
        return FakeSession() if self.connected else None

    async def publish(self, session: FakeSession, topic: str, kwargs: dict[str, Any], key: str) -> None:
        self.published.append((topic, kwargs, key))
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def publish_with(
    outcomes: list[BaseException | None], connected: bool = True, records: list[Record] = RECORDS, **settings: Any
) -> Any:
    device = make_device(**settings)
    link = FakeLink(outcomes, connected)
    device.link = link  # type: ignore[assignment]
    result = asyncio.run(device.post(encode("json", records), "key-1"))
    return device, link, result


def test_a_published_batch_is_acked() -> None:
    device, link, result = publish_with([None])
    assert result.outcome is Outcome.OK
    assert link.published == [("iotcloud.device.dev-1.telemetry", publish_kwargs(RECORDS), "key-1")]
    assert (device.stats.requests, device.wamp.published, len(device.stats.latencies_ms)) == (1, 1, 1)


def test_a_refused_batch_is_a_rejection_counted_by_code() -> None:
    device, link, result = publish_with([ApplicationError("iotcloud.error.validation_failed", "bad")])
    assert (result.outcome, result.status, result.code) == (Outcome.REJECTED, 422, "validation_failed")
    assert len(link.published) == 1  # not retried
    assert device.wamp.publish_errors_by_code == {"validation_failed": 1}


def test_transport_failures_and_unavailable_storage_are_retried_with_the_same_key() -> None:
    outcomes: list[BaseException | None] = [
        ApplicationError("wamp.close.transport_lost", "lost"),
        TransportLost(),
        TimeoutError(),
        ApplicationError("iotcloud.error.storage_unavailable", "later"),
        None,
    ]
    device, link, result = publish_with(outcomes, max_retries=5)
    assert result.outcome is Outcome.OK and result.attempts == 5
    assert {key for _, _, key in link.published} == {"key-1"}
    assert (device.stats.transport_errors, device.stats.throttled, device.stats.retries) == (3, 1, 4)
    assert device.wamp.publish_errors_by_code == {"storage_unavailable": 1}


def test_a_disconnected_device_gives_up_and_keeps_the_batch() -> None:
    device, link, result = publish_with([], connected=False)
    assert (result.outcome, result.last_failure) == (Outcome.GAVE_UP, "transport")
    assert device.stats.requests == 0 and device.stats.transport_errors == 4  # 1 + max_retries
    assert link.published == []


def test_payload_size_exceeded_leaves_the_readings_uncertain() -> None:
    device = make_device(verify=True)
    link = FakeLink([ApplicationError("wamp.error.payload_size_exceeded", "too large")])
    device.link = link  # type: ignore[assignment]
    batch = Batch(0, list(RECORDS), "key-1")
    device.outbox.append(batch)
    device.buffered = len(RECORDS)
    assert asyncio.run(device.deliver(batch)) is True
    assert device.stats.records_rejected == 2 and device.records_sent == 2 and device.records_acked == 0
    assert device.uncertain == {("temp", "", 1764061200000), ("door", "", 1764061200000),
                                ("temp", "", 1764061201000), ("alarm", "", 1764061201000)}  # fmt: skip


def test_an_acked_batch_counts_for_the_device_and_for_verify() -> None:
    device = make_device(verify=True)
    device.link = FakeLink([None])  # type: ignore[assignment]
    batch = Batch(0, list(RECORDS), "key-1")
    device.outbox.append(batch)
    device.buffered = len(RECORDS)
    assert asyncio.run(device.deliver(batch)) is True
    assert (device.records_sent, device.records_acked, device.buffered) == (2, 2, 0)
    assert device.acked[("temp", "", 1764061201000)] == 21.75


def test_a_batch_too_large_for_one_message_is_refused_locally() -> None:
    big = [Record(1764061200000 + i, (Sample("s", "", "x" * 1000),)) for i in range(140)]
    assert len(encode("json", big).content) > MAX_MESSAGE_BYTES
    device, link, result = publish_with([], records=big)
    assert (result.outcome, result.status, result.code) == (Outcome.REJECTED, 413, "payload_too_large")
    assert link.published == []


def test_malformed_batches_over_wamp_are_invalid_metric_names() -> None:
    device = make_device()
    for kind in ("truncated", "non_finite", "bad_metric"):
        kwargs = kwargs_from_body(device.malformed_body(RECORDS, kind))
        assert kwargs == {"records": [{"ts": 1764061200000, "values": {"bad metric!": 1}}]}


# ----------------------------------------------------------------- the report


def test_wamp_stats_of_devices_merge_into_the_reports_section() -> None:
    a = WampStats(connected=1, reconnects=2, published=10, reboots=1)
    a.count_call("get_status")
    a.count_publish_error("validation_failed")
    b = WampStats(connected=1, connect_failures=3, published=5, commands_polled=1)
    b.count_call("get_status")
    b.count_call("reboot")
    b.count_publish_error("validation_failed")
    b.count_publish_error("wamp.error.not_authorized")
    section = wamp_section(merge_wamp_stats([a, b, WampStats()]))
    assert section == {
        "connected": 2,
        "reconnects": 2,
        "connect_failures": 3,
        "calls": {"get_status": 2, "reboot": 1, "set_interval": 0},
        "reboots": 1,
        "commands_polled": 1,
        "published": 15,
        "publish_errors_by_code": {"validation_failed": 2, "wamp.error.not_authorized": 1},
    }


def test_report_carries_the_transport_and_fails_when_a_device_never_joined() -> None:
    http = build_report(Stats(), devices=2, fmt="json", duration_s=1.0)
    assert (http["transport"], http["ws_url"], http["wamp"]) == ("http", None, None)
    assert http["ok"]
    section = wamp_section(WampStats(connected=1))
    report = build_report(
        Stats(), devices=2, fmt="json", duration_s=1.0, transport="wamp", ws_url="ws://h:1", wamp=section
    )
    assert (report["transport"], report["ws_url"], report["wamp"]) == ("wamp", "ws://h:1", section)
    assert report["failures"] == ["1 device(s) never joined a WAMP session"] and report["exit_code"] == 1
    report = build_report(
        Stats(), devices=1, fmt="json", duration_s=1.0, transport="wamp", wamp=wamp_section(WampStats(connected=1))
    )
    assert report["ok"]


# ----------------------------------------------------------------- WebSocket URL and command line


def test_ws_url_precedence(tmp_path: Path) -> None:
    conn = tmp_path / "connection.json"
    conn.write_text(json.dumps({"api_url": "http://127.0.0.1:9000", "ws_url": "ws://127.0.0.1:9001"}))
    env = {"IOTCLOUD_WS_URL": "ws://from-env:1"}
    assert resolve_ws_url("ws://flag:1", "http://127.0.0.1:9000", env, [conn]) == "ws://flag:1"
    assert resolve_ws_url(None, "http://127.0.0.1:9000", env, [conn]) == "ws://from-env:1"
    assert resolve_ws_url(None, "http://127.0.0.1:9000/", {}, [conn]) == "ws://127.0.0.1:9001"
    # Another stack's file is not used; make up's default URL maps to its default WebSocket port.
    assert resolve_ws_url(None, "http://127.0.0.1:8000", {}, [conn]) == "ws://127.0.0.1:8001"
    assert resolve_ws_url(None, "http://localhost:8000", {}, [tmp_path / "absent.json"]) == "ws://localhost:8001"
    assert resolve_ws_url(None, "https://abc.execute-api.eu-west-1.amazonaws.com/api", {}, [conn]) is None
    assert resolve_ws_url(None, "http://127.0.0.1:9999", {}, [conn]) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--transport", "wamp", "--format", "senml-json"],  # WAMP publishes JSON records
        ["--transport", "wamp", "--fake-server"],  # the fake fakes HTTP only
        ["--transport", "wamp", "--ws-url", "http://127.0.0.1:8001"],
        ["--transport", "wamp", "--url", "https://abc.execute-api.eu-west-1.amazonaws.com/api"],  # no ws URL
        ["--transport", "wamp", "--linger", "-1"],
        ["--linger", "2"],  # http devices have no session to keep open
        ["--transport", "mqtt"],
    ],
)
def test_bad_wamp_options_exit_2(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTCLOUD_WS_URL", raising=False)
    monkeypatch.delenv("IOTCLOUD_URL", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .devstack/connection.json here
    argv = [*argv, "--admin-token", "x", "--count", "1", "--no-progress"]
    if "mqtt" in argv:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    else:
        assert main(argv) == 2
