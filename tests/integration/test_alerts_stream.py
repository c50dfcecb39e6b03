"""Alerts from the readings stream: readings ingested into DynamoDB (moto), their stream records
evaluated by the live handler's body, alerts raised once and cleared, mail delivered (and retried)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.adapters.alerts import AlertFilter, AlertStore
from chalicelib.adapters.mail import SmtpMailer
from chalicelib.domain.alerts import new_rule_id, validate_rule
from chalicelib.domain.devices import DeviceChanges
from chalicelib.domain.ingest import ingest
from chalicelib.domain.readings import Reading
from chalicelib.errors import MailUnavailableError
from chalicelib.jobs import alerts as alerts_job
from chalicelib.jobs.alerts import deliver_notifications, evaluate_stream_batch, run_offline_check
from devstack.demo import FREEZER_RULE
from devstack.mailsink import MailSink
from tests.functional.helpers import dynamodb
from tests.functional.stream_kit import Stream

T0 = 1_764_061_200_000  # 2025-11-25T09:00:00Z
S = 1000
MIN = 60 * S
OPS = "ops@example.com"


class FakeMailer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = failures

    def send(self, message: EmailMessage) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise MailUnavailableError("SMTP server 127.0.0.1:25 did not take the message after 3 attempts")
        self.sent.append(message)
        return str(message["Message-ID"])


class Published(list[tuple[str, dict[str, Any]]]):
    def __call__(self, topic: str, kwargs: dict[str, Any]) -> None:
        self.append((topic, kwargs))


@pytest.fixture(scope="module", autouse=True)
def shared_botocore_session() -> Iterator[None]:
    """One botocore session for every PynamoDB connection here (as in tests/functional/conftest.py):
    each test binds fresh tables, and a new session per connection costs ~0.2 s."""
    import botocore.session
    import moto  # noqa: F401  (moto's botocore hooks first)
    import pynamodb.connection.base as pynamodb_base

    shared = botocore.session.get_session()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pynamodb_base, "get_session", lambda: shared)
        yield


@pytest.fixture
def env(aws: None) -> Iterator[dict[str, Any]]:
    settings = wiring.bound_settings()
    devices = wiring.devices()
    for device_id, device_type in (("fz-1", "freezer"), ("fz-2", "freezer"), ("th-1", "thermometer")):
        devices.create(device_id, DeviceChanges(name=device_id, device_type=device_type), f"hash-{device_id}", T0)
    yield {"stream": Stream(settings.readings_table, settings.region), "store": AlertStore(), "devices": devices}


def post(device_id: str, points: list[tuple[int, float]], received_at: int | None = None) -> None:
    """Ingest readings of temp at T0 + seconds, as POST /v1/telemetry would."""
    readings = [Reading("temp", "Cel", T0 + s * S, v) for s, v in points]
    received = received_at if received_at is not None else readings[-1].ts_ms + 500
    ingest(device_id, readings, received, store=wiring.readings(), devices=wiring.devices())


def make_rule(store: AlertStore, **fields: Any) -> str:
    # The demo's freezer rule (devstack/demo.py), mailing this test's inbox.
    body = {**FREEZER_RULE, "notify": {"emails": [OPS]}, **fields}
    rule = validate_rule({k: v for k, v in body.items() if v is not None}, rule_id=new_rule_id(), created_at=T0,
                         updated_at=T0)  # fmt: skip
    store.create_rule(rule)
    return rule.rule_id


def evaluate(env: dict[str, Any], records: list[dict[str, Any]], mailer: Any, publish: Any = None, now: int = T0 + MIN):
    return evaluate_stream_batch(
        records,
        store=env["store"],
        devices=env["devices"],
        mailer=mailer,
        publish=publish if publish is not None else Published(),
        mail_from="iotcloud <alerts@iot.example.com>",
        now_ms=now,
    )


def all_alerts(store: AlertStore) -> list[Any]:
    return store.list_alerts(AlertFilter(), 500, None)[0]


def test_alert_raised_once_cleared_and_mailed(env):
    store, stream = env["store"], env["stream"]
    make_rule(store)
    post("fz-1", [(0, -20), (60, -10)])
    post("fz-1", [(120, -9), (180, -12)])  # second reading over: raised at 120; -12 is between: still active
    post("fz-2", [(0, -20), (60, -21)])
    post("th-1", [(0, 30), (60, 31)])  # not a freezer: the type rule does not apply
    mailer, published = FakeMailer(), Published()
    summary = evaluate(env, stream.read(), mailer, published)
    assert (summary.devices, summary.readings, summary.raised, summary.cleared) == (3, 8, 1, 0)
    (alert,) = all_alerts(store)
    assert (alert.device_id, alert.state, alert.severity, alert.raised_at) == (
        "fz-1",
        "active",
        "critical",
        T0 + 120 * S,
    )
    assert [r.value for r in alert.raised_by] == [-10, -9]
    assert [m["Subject"] for m in mailer.sent] == ["[CRITICAL] RAISED: freezer too warm on fz-1"]
    assert (
        mailer.sent[0]["To"] == OPS
        and f"<{alert.alert_id}.raised.email@iot.example.com>" == mailer.sent[0]["Message-ID"]
    )
    assert [(t, k["event"], k["alert_id"]) for t, k in published] == [("iotcloud.alerts", "raised", alert.alert_id)]

    post("fz-1", [(240, -19)])
    summary = evaluate(env, stream.read(), mailer, published)
    assert (summary.raised, summary.cleared) == (0, 1)
    (alert,) = all_alerts(store)
    assert alert.state == "cleared" and [r.value for r in alert.cleared_by] == [-19]
    assert [m["Subject"].split(":")[0] for m in mailer.sent] == ["[CRITICAL] RAISED", "[CRITICAL] CLEARED"]
    assert [k["event"] for _, k in published] == ["raised", "cleared"]
    assert store.pending_notifications() == [] and store.failed_notifications() == []


def test_a_redelivered_batch_changes_nothing(env):
    store, stream = env["store"], env["stream"]
    make_rule(store)
    post("fz-1", [(0, -10), (60, -10), (120, -25)])
    records = stream.read()
    mailer = FakeMailer()
    first = evaluate(env, records, mailer)
    assert (first.raised, first.cleared) == (1, 1)
    retry = evaluate(env, records, mailer)  # Lambda retrying the whole batch
    assert (retry.raised, retry.cleared, retry.evaluations) == (0, 0, 0)
    assert len(all_alerts(store)) == 1 and len(mailer.sent) == 2
    # A rewritten chunk (the device retrying its request) holds no new readings either.
    post("fz-1", [(0, -10), (60, -10), (120, -25)], received_at=T0 + 120 * S + 500)
    assert evaluate(env, stream.read(), mailer).readings == 0


def test_concurrent_invocations_cannot_both_raise(env, monkeypatch):
    store, stream = env["store"], env["stream"]
    rule_id = make_rule(store)
    post("fz-1", [(0, -10), (60, -10)])
    records = stream.read()
    assert evaluate(env, records, FakeMailer()).raised == 1
    # A second invocation that read the state before the first one's commit: its write is refused,
    # it reads the state again and finds the readings already evaluated.
    monkeypatch.setattr(AlertStore, "states_of", lambda self, device_id: {})
    summary = evaluate(env, records, FakeMailer())
    assert (summary.conflicts, summary.raised) == (1, 0)
    assert len(all_alerts(store)) == 1
    assert store.state(rule_id, "fz-1").version == 1


def test_failed_mail_is_retried_later_and_the_alert_is_kept(env):
    store, stream = env["store"], env["stream"]
    make_rule(store)
    post("fz-1", [(0, -10), (60, -10)])
    broken = FakeMailer(failures=1)
    summary = evaluate(env, stream.read(), broken, now=T0 + MIN)
    assert summary.raised == 1 and summary.delivery.retried == 1 and summary.delivery.sent == 1  # the WAMP event
    (alert,) = all_alerts(store)
    (pending,) = store.pending_notifications()
    assert pending.notification.channel == "email" and pending.attempts == 1
    assert pending.due_at == T0 + MIN + alerts_job.retry_delay_ms(1) and "MailUnavailableError" in pending.last_error

    # Not due yet: the next invocation leaves it alone.
    mailer = FakeMailer()
    assert deliver_notifications(store, mailer, Published(), now_ms=T0 + MIN + 1).skipped == 1
    # The offline schedule, a few minutes later, delivers it.
    later = run_offline_check(T0 + 5 * MIN, store=store, devices=env["devices"], mailer=mailer, publish=Published())
    assert later.delivery.sent == 1 and store.pending_notifications() == []
    assert mailer.sent[0]["Subject"] == "[CRITICAL] RAISED: freezer too warm on fz-1"
    assert alert.alert_id in mailer.sent[0].get_content()


def test_a_notification_failing_for_too_long_is_kept_aside(env, monkeypatch):
    store, stream = env["store"], env["stream"]
    make_rule(store)
    post("fz-1", [(0, -10), (60, -10)])
    monkeypatch.setattr(alerts_job, "MAX_DELIVERY_ATTEMPTS", 2)
    evaluate(env, stream.read(), FakeMailer(failures=5), now=T0)
    summary = deliver_notifications(store, FakeMailer(failures=5), Published(), now_ms=T0 + 10 * MIN)
    assert summary.given_up == 1
    assert store.pending_notifications() == []
    (failed,) = store.failed_notifications()
    assert failed.attempts == 2 and failed.notification.payload["to"] == [OPS]


def test_two_deliverers_do_not_both_send(env):
    store, stream = env["store"], env["stream"]
    make_rule(store, notify={"emails": [OPS], "topic": None})
    post("fz-1", [(0, -10), (60, -10)])
    evaluate_stream_batch(stream.read(), store=store, devices=env["devices"], mailer=None, now_ms=T0, deliver=False)
    (item,) = store.pending_notifications()
    assert store.claim(item, T0, 60_000) is True
    mailer = FakeMailer()
    assert deliver_notifications(store, mailer, Published(), now_ms=T0 + 1).sent == 0  # leased elsewhere
    assert deliver_notifications(store, mailer, Published(), now_ms=T0 + 60_000).sent == 1  # the lease ran out
    assert len(mailer.sent) == 1


def test_mail_lands_in_the_local_sink(env, tmp_path: Path):
    store, stream = env["store"], env["stream"]
    make_rule(store)
    post("fz-2", [(0, -14), (60, -13), (120, -30)])
    with MailSink(tmp_path / "mail") as sink:
        mailer = SmtpMailer("127.0.0.1", sink.port, starttls=False, username="", password="", timeout=5)
        summary = evaluate(env, stream.read(), mailer)
        assert summary.delivery.sent == 4 and summary.delivery.retried == 0
        messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sink.messages()]
    assert sorted(m["Subject"] for m in messages) == [
        "[CRITICAL] CLEARED: freezer too warm on fz-2",
        "[CRITICAL] RAISED: freezer too warm on fz-2",
    ]
    assert all(m["To"] == OPS and m["Auto-Submitted"] == "auto-generated" for m in messages)


def test_scopes_device_type_and_all_with_few_reads(env):
    store, stream = env["store"], env["stream"]
    make_rule(store, name="type rule", duration=None)
    make_rule(store, name="device rule", scope={"device": "th-1"}, condition={"op": ">", "value": 25}, clear=None,
              duration=None)  # fmt: skip
    make_rule(store, name="everyone", scope={"all": True}, condition={"op": ">", "value": 100}, clear=None,
              duration=None, notify=None)  # fmt: skip
    make_rule(store, name="off", scope={"all": True}, condition={"op": ">", "value": -100}, duration=None,
              enabled=False)  # fmt: skip
    post("fz-1", [(0, -10)])
    post("fz-2", [(0, -10)])
    post("th-1", [(0, 30)])
    records = stream.read()
    with dynamodb() as calls:
        summary = evaluate_stream_batch(
            records, store=store, devices=env["devices"], mailer=None, now_ms=T0, deliver=False
        )
    assert summary.raised == 3
    assert sorted((a.device_id, a.rule_name) for a in all_alerts(store)) == [
        ("fz-1", "type rule"), ("fz-2", "type rule"), ("th-1", "device rule"),
    ]  # fmt: skip
    assert "Scan" not in calls
    # Whether any rule exists (1 Query); per device: its type (GetItem), its own rules and its states (2 Queries);
    # per type and for "all": one Query.
    assert calls.count("GetItem") == 3
    assert calls.count("Query") == 1 + 3 * 2 + 2 + 1
    # One transaction per changed (rule, device) state: each device's raising rule, and "everyone" (its last_ts).
    assert calls.count("TransactWriteItems") == 6


def test_offline_rule_raises_on_schedule_and_clears_on_the_stream(env):
    store, stream = env["store"], env["stream"]
    body = {"name": "freezer silent", "kind": "offline", "scope": {"type": "freezer"}, "offline": {"seconds": 3600},
            "notify": {"emails": [OPS]}}  # fmt: skip
    store.create_rule(validate_rule(body, rule_id=new_rule_id(), created_at=T0, updated_at=T0))
    env["devices"].create("fz-3", DeviceChanges(name="fz-3", device_type="freezer"), "hash-fz-3", T0)
    env["devices"].update("fz-3", DeviceChanges(disabled=True), T0)  # disabled devices are not watched
    mailer = FakeMailer()

    def check(now: int) -> Any:
        return run_offline_check(now, store=store, devices=env["devices"], mailer=mailer, publish=Published())

    # Never heard from: counted from registration (T0).
    assert check(T0 + 3599 * S).raised == 0
    summary = check(T0 + 3600 * S)
    assert (summary.devices, summary.raised) == (2, 2)
    assert sorted(a.device_id for a in all_alerts(store)) == ["fz-1", "fz-2"]
    assert sorted(m["Subject"] for m in mailer.sent) == [
        "[MAJOR] RAISED: freezer silent on fz-1", "[MAJOR] RAISED: freezer silent on fz-2",
    ]  # fmt: skip
    assert check(T0 + 3660 * S).raised == 0  # still silent: still one alert each

    post("fz-1", [(3990, -20)], received_at=T0 + 4000 * S)  # fz-1 is back
    summary = evaluate(env, stream.read(), mailer, now=T0 + 4001 * S)
    assert summary.cleared == 1
    cleared = store.list_alerts(AlertFilter(state="cleared"), 10, None)[0]
    assert [(a.device_id, [r.value for r in a.cleared_by]) for a in cleared] == [("fz-1", [-20])]
    assert check(T0 + 4100 * S).raised == 0
    summary = check(T0 + 7600 * S)  # fz-1 silent again for an hour: a new alert; fz-2 keeps its one
    assert (summary.raised, summary.cleared) == (1, 0)
    assert len(store.list_alerts(AlertFilter(state="active"), 10, None)[0]) == 2
    assert len(mailer.sent) == 4


def test_a_burst_too_big_for_one_transaction_is_committed_in_slices(env):
    store, stream = env["store"], env["stream"]
    make_rule(store, duration=None, clear=None)
    # Flapping, with no duration or hysteresis: 30 raises and 30 clears, 120 notifications: > 100 items.
    post("fz-1", [(i, -10 if i % 2 == 0 else -20) for i in range(60)])
    summary = evaluate_stream_batch(
        stream.read(), store=store, devices=env["devices"], mailer=None, now_ms=T0, deliver=False
    )
    assert (summary.raised, summary.cleared) == (30, 30)
    assert summary.evaluations > 1
    alerts = all_alerts(store)
    assert len(alerts) == 30 and {a.state for a in alerts} == {"cleared"}
    assert len(store.pending_notifications()) == 120


def test_without_any_rule_a_batch_costs_one_query(env):
    post("fz-1", [(0, -10)])
    post("fz-2", [(0, -10)])
    records = env["stream"].read()
    with dynamodb() as calls:
        summary = evaluate_stream_batch(
            records, store=env["store"], devices=env["devices"], mailer=None, now_ms=T0, deliver=False
        )
    assert (summary.devices, summary.readings, summary.evaluations) == (2, 2, 0)
    assert calls == ["Query"]


def test_delivery_stops_at_its_limit_and_time_budget(env):
    store, stream = env["store"], env["stream"]
    make_rule(store, duration=None, clear=None, notify={"emails": [OPS], "topic": None})
    post("fz-1", [(0, -10), (1, -20), (2, -10), (3, -20)])  # 2 raises, 2 clears: 4 emails
    evaluate_stream_batch(stream.read(), store=store, devices=env["devices"], mailer=None, now_ms=T0, deliver=False)
    mailer = FakeMailer()
    assert deliver_notifications(store, mailer, Published(), now_ms=T0, limit=1).sent == 1
    ticks = iter([0.0, 0.0, 5.0, 11.0])  # the budget (10 s) runs out after the second send
    summary = deliver_notifications(store, mailer, Published(), now_ms=T0, clock=lambda: next(ticks))
    assert summary.sent == 2 and len(store.pending_notifications()) == 1
    assert deliver_notifications(store, mailer, Published(), now_ms=T0).sent == 1
    assert len(mailer.sent) == 4 and len({m["Message-ID"] for m in mailer.sent}) == 4
