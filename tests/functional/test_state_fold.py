"""Device state folded by the live stream: one write per request, exact reads, lazy folds, offline alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.adapters.alerts import AlertFilter, AlertStore
from chalicelib.adapters.devices import active_key
from chalicelib.clock import now_ms
from chalicelib.domain.alerts import new_rule_id, validate_rule
from chalicelib.domain.chunks import HOUR_MS, hour_bucket
from chalicelib.domain.devices import DeviceChanges
from chalicelib.domain.ingest import ingest
from chalicelib.domain.readings import Reading
from chalicelib.domain.state import FOLD_INTERVAL_MS, LATE_FOLD_MS, FoldedState
from chalicelib.errors import StorageUnavailableError
from chalicelib.jobs.alerts import run_offline_check
from chalicelib.jobs.live import LiveStream
from tests.functional.helpers import body_of, dynamodb, state_of
from tests.functional.stream_kit import Stream

MIN = 60_000
# Three hours ago, a minute past the hour: recent (within retention, in the past) and far from an hour's end.
BASE = (now_ms() // HOUR_MS - 3) * HOUR_MS + MIN


@pytest.fixture
def stream(aws: None) -> Stream:
    return Stream()


@pytest.fixture
def dev(aws: None) -> str:
    wiring.devices().create("dev-1", DeviceChanges(name="dev-1", device_type="freezer"), "hash-dev-1", BASE - HOUR_MS)
    return "dev-1"


def live() -> LiveStream:
    """A live consumer container (a new one is cold: it remembers no folds)."""
    return LiveStream(wiring.alert_jobs(), wiring.realtime(), wiring.device_states())


def post(device_id: str, received_at: int, values: dict[str, Any], age_ms: int = 1000) -> None:
    """A request as POST /v1/telemetry stores it: its readings `age_ms` older than its receipt."""
    readings = [Reading(metric, "", received_at - age_ms, value) for metric, value in values.items()]
    ingest(device_id, readings, received_at, store=wiring.readings(), devices=wiring.devices())


def latest(state: FoldedState) -> dict[str, Any]:
    return {r.metric: r.value for r in state.readings()}


def exact(device_id: str) -> FoldedState:
    return wiring.device_states().exact(device_id, now_ms())


def folded(device_id: str) -> FoldedState:
    return wiring.devices().folded(device_id, consistent=True)


def device_updates(calls: list[str]) -> int:
    return calls.count("UpdateItem")


# --------------------------------------------------------------------------- the request path


def test_a_request_with_fresh_readings_is_one_write(api, device):
    assert api.post(device["token"], {"warm": 1}).status_code == 200  # caches the token
    with dynamodb() as calls:
        answer = api.post(device["token"], {"temp": 21.5, "door": "open"})
    assert answer.status_code == 200
    assert calls == ["BatchWriteItem"]
    assert wiring.devices().folded(device["id"]).latest == {}  # nothing folded yet


def test_the_state_is_exact_right_after_ingest_before_any_fold(api, device):
    assert api.post(device["token"], {"temp": 1, "hum": 40}).status_code == 200
    assert api.post(device["token"], {"temp": 2}).status_code == 200
    state = state_of(api, device["id"], device["token"])
    assert {r["metric"]: r["value"] for r in state["latest"]} == {"temp": 2, "hum": 40}
    newest = max(c.received_at for c in wiring.readings().iter_all(device["id"]))
    assert state["last_seen"] == newest


def test_an_exact_read_is_one_get_and_one_query(api, device):
    assert api.post(device["token"], {"temp": 1}).status_code == 200
    with dynamodb() as calls:
        answer = api.request("GET", f"/v1/devices/{device['id']}/state", device["token"])
    assert answer.status_code == 200 and body_of(answer)["latest"][0]["value"] == 1
    assert calls == ["GetItem", "Query"]


def test_a_late_reading_updates_the_state_on_the_request_path(dev):
    with dynamodb() as calls:
        post(dev, BASE, {"temp": 5}, age_ms=LATE_FOLD_MS + 1)
    assert calls == ["BatchWriteItem", "UpdateItem"]
    assert latest(folded(dev)) == {"temp": 5}
    assert folded(dev).last_seen == BASE and folded(dev).folded_at is None  # the fold mark is the stream's
    with dynamodb() as calls:
        post(dev, BASE + 1, {"temp": 6}, age_ms=LATE_FOLD_MS)  # not older than the bound: the stream folds it
    assert calls == ["BatchWriteItem"]


# --------------------------------------------------------------------------- folds


def test_a_fold_writes_the_state_last_seen_active_hour_and_mark(dev, stream):
    post(dev, BASE, {"temp": 1, "hum": 40})
    post(dev, BASE + MIN, {"temp": 2})
    live().handle(stream.read())
    state = folded(dev)
    assert latest(state) == {"temp": 2, "hum": 40}
    assert state.last_seen == state.folded_at == BASE + MIN
    item = wiring.devices()._model.get(dev)
    assert item.active_hour == active_key(dev, BASE + MIN)
    assert wiring.devices().count_active(hour_bucket(BASE)) == 1


def test_folds_once_per_interval_and_the_exact_read_covers_what_was_not_folded(dev, stream):
    consumer = live()
    updates = 0
    for minute in range(7):
        post(dev, BASE + minute * MIN, {"temp": minute})
        with dynamodb() as calls:
            consumer.handle(stream.read())
        updates += device_updates(calls)
        assert latest(exact(dev)) == {"temp": minute}  # exact whatever the fold did
        assert exact(dev).last_seen == BASE + minute * MIN
    assert updates == 2  # minute 0 (first sight) and minute 5 (the interval passed)
    assert FOLD_INTERVAL_MS == 5 * MIN
    assert folded(dev).last_seen == BASE + 5 * MIN  # the folded last_seen lags, by less than the interval


def test_a_fold_covers_requests_another_container_skipped(dev, stream):
    a, b = live(), live()
    post(dev, BASE, {"temp": 1})
    a.handle(stream.read())
    post(dev, BASE + MIN, {"temp": 2, "volt": 3.7})
    post(dev, BASE + 2 * MIN, {"temp": 3})
    a.handle(stream.read())  # due (a new series): folded
    post(dev, BASE + 3 * MIN, {"temp": 4, "hum": 50})
    a.handle(stream.read())  # due again (hum is new)
    post(dev, BASE + 4 * MIN, {"temp": 5})
    a.handle(stream.read())  # not due: left for a later fold
    assert latest(folded(dev)) == {"temp": 4, "volt": 3.7, "hum": 50}
    post(dev, BASE + 10 * MIN, {"hum": 51})
    b.handle(stream.read())  # another container, cold: it folds, and its read covers minute 4
    assert latest(folded(dev)) == {"temp": 5, "volt": 3.7, "hum": 51}
    assert folded(dev).last_seen == BASE + 10 * MIN


def test_a_new_metric_is_folded_at_once(dev, stream):
    consumer = live()
    post(dev, BASE, {"temp": 1})
    consumer.handle(stream.read())
    post(dev, BASE + MIN, {"temp": 2, "door": "open"})
    assert latest(exact(dev)) == {"temp": 2, "door": "open"}  # exact before the fold
    with dynamodb() as calls:
        consumer.handle(stream.read())
    assert device_updates(calls) == 1
    assert latest(folded(dev)) == {"temp": 2, "door": "open"}


def test_a_request_in_a_new_hour_is_folded_at_once(dev, stream):
    consumer = live()
    end = BASE - MIN + HOUR_MS  # the next hour starts at end
    post(dev, end - 2 * MIN, {"temp": 1})
    consumer.handle(stream.read())
    post(dev, end + 30_000, {"temp": 2}, age_ms=31_000)  # a reading of the old hour, received in the new one
    consumer.handle(stream.read())
    assert folded(dev).last_seen == end + 30_000
    assert wiring.devices().count_active(hour_bucket(end)) == 1
    assert wiring.devices().count_active(hour_bucket(end - MIN)) == 0


def test_late_readings_stay_exact_after_folds(dev, stream):
    consumer = live()
    post(dev, BASE + 20 * MIN, {"temp": 1, "hum": 40})
    consumer.handle(stream.read())
    # A buffered upload: hours old, in a bucket the exact read does not look at any more.
    post(dev, BASE + 21 * MIN, {"pres": 1013}, age_ms=2 * HOUR_MS)
    post(dev, BASE + 22 * MIN, {"volt": 3.7}, age_ms=LATE_FOLD_MS)  # at the bound: the stream's to fold
    assert latest(exact(dev)) == {"temp": 1, "hum": 40, "pres": 1013, "volt": 3.7}
    consumer.handle(stream.read())
    assert latest(folded(dev)) == latest(exact(dev)) == {"temp": 1, "hum": 40, "pres": 1013, "volt": 3.7}
    assert exact(dev).last_seen == BASE + 22 * MIN


def test_an_older_reading_never_moves_the_state_back(dev, stream):
    post(dev, BASE + 2 * MIN, {"temp": 2}, age_ms=0)
    post(dev, BASE + 3 * MIN, {"temp": 1}, age_ms=2 * MIN)  # received later, measured earlier
    live().handle(stream.read())
    assert folded(dev).latest[("temp", "")].ts_ms == BASE + 2 * MIN
    assert latest(exact(dev)) == {"temp": 2}
    assert folded(dev).last_seen == BASE + 3 * MIN


def test_a_duplicate_delivery_changes_nothing_and_writes_nothing(dev, stream):
    post(dev, BASE, {"temp": 1})
    post(dev, BASE + MIN, {"temp": 2, "hum": 3})
    records = stream.read()
    live().handle(records)
    before = folded(dev)
    with dynamodb() as calls:
        live().handle(records)  # redelivered, to a cold container
        live().handle(list(reversed(records)))
    assert device_updates(calls) == 0
    assert folded(dev) == before


def test_a_failed_fold_fails_the_batch(dev, stream):
    post(dev, BASE, {"temp": 1})
    records = stream.read()

    def refuse(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation == "UpdateItem":
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, operation)
        return None

    consumer = live()
    with dynamodb(refuse), pytest.raises(StorageUnavailableError):
        consumer.handle(records)
    assert folded(dev).latest == {}
    consumer.handle(records)  # Lambda's retry of the batch
    assert latest(folded(dev)) == {"temp": 1}


def test_the_live_handler_folds_through_the_app(api, device, stream):
    assert api.post(device["token"], {"temp": 7}).status_code == 200
    records = stream.read()
    answer = api.client.lambda_.invoke("live", {"Records": records})
    assert json.loads(answer.payload) if isinstance(answer.payload, str) else answer.payload
    assert latest(folded(device["id"])) == {"temp": 7}


# --------------------------------------------------------------------------- offline alerts


@pytest.fixture
def offline_rule(dev: str) -> Iterator[AlertStore]:
    store = AlertStore()
    body = {"name": "silent", "kind": "offline", "scope": {"device": dev}, "offline": {"seconds": 300}}
    store.create_rule(validate_rule(body, rule_id=new_rule_id(), created_at=BASE, updated_at=BASE))
    yield store


def offline_check(store: AlertStore, now: int) -> Any:
    return run_offline_check(
        now, store=store, devices=wiring.devices(), mailer=None, deliver=False,
        exact_last_seen=wiring.device_states().last_seen,
    )  # fmt: skip


def test_no_offline_alert_while_the_fold_lags_but_data_exists(dev, stream, offline_rule):
    consumer = live()
    post(dev, BASE, {"temp": 1})
    consumer.handle(stream.read())
    post(dev, BASE + 4 * MIN, {"temp": 2})
    consumer.handle(stream.read())  # not due: the item still says BASE
    assert folded(dev).last_seen == BASE
    summary = offline_check(offline_rule, BASE + 6 * MIN)  # 6 min after the fold, 2 after the request
    assert summary.raised == 0
    assert offline_rule.list_alerts(AlertFilter(state="active"), 10, None)[0] == []


def test_an_offline_alert_is_raised_when_truly_silent(dev, stream, offline_rule):
    consumer = live()
    post(dev, BASE, {"temp": 1})
    consumer.handle(stream.read())
    post(dev, BASE + 4 * MIN, {"temp": 2})
    consumer.handle(stream.read())
    assert offline_check(offline_rule, BASE + 8 * MIN).raised == 0  # 4 min after the last request
    summary = offline_check(offline_rule, BASE + 9 * MIN)  # 5 min: silent
    assert summary.raised == 1
    [alert] = offline_rule.list_alerts(AlertFilter(state="active"), 10, None)[0]
    assert alert.device_id == dev
