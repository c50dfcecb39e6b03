"""Reading telemetry back: paging, filters, parameters, and what a page costs in DynamoDB."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.api import telemetry
from tests.functional.helpers import HOUR, T0, body_of, dynamodb, error_of, stored_items

ORDER = ("ts", "metric", "unit")


def order_key(r: dict[str, Any]) -> tuple[int, str, str]:
    return (r["ts"], r["metric"], r["unit"])


def page(api: Any, device_id: str, token: Any = None, **params: Any) -> Any:
    qs = "&".join(f"{k}={v}" for k, v in params.items())
    return api.request("GET", f"/v1/devices/{device_id}/telemetry?{qs}", token or api.admin)


def pages(api: Any, device_id: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a query, following next_cursor."""
    out: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        answer = page(api, device_id, **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.body
        doc = body_of(answer)
        assert set(doc) == {"device_id", "readings", "next_cursor"}
        assert doc["device_id"] == device_id
        out.append(doc["readings"])
        cursor = doc["next_cursor"]
        if not cursor:
            return out
        assert len(out) < 500, "the cursor does not make progress"


def post(api: Any, device: dict[str, Any], body: Any, **kwargs: Any) -> None:
    answer = api.post(device["token"], body, **kwargs)
    assert answer.status_code == 200, answer.body


@pytest.fixture
def three_hours(api, device) -> list[dict[str, Any]]:
    """Three hours, each written by two requests (which share one timestamp), two metrics."""
    expected: dict[tuple[int, str, str], Any] = {}
    for hour in range(3):
        base = T0 + hour * HOUR
        for part in range(2):
            records: list[tuple[int, dict[str, int]]] = [
                (base + (part * 4 + i) * 60_000, {"temp": hour * 100 + part * 10 + i, "hum": i})
                for i in range(5)  # part 0: minutes 0-4, part 1: minutes 4-8 (minute 4 twice)
            ]
            post(api, device, [{"ts": ts, "values": values} for ts, values in records])
            for ts, values in records:
                for metric, value in values.items():
                    expected[(ts, metric, "")] = value
    assert stored_items(device["id"]) == 6
    return [{"metric": m, "unit": u, "ts": ts, "value": v} for (ts, m, u), v in sorted(expected.items())]


# --------------------------------------------------------------------------- paging


@pytest.mark.parametrize("limit", [1, 3, 7, 18, 1000])
def test_pages_return_every_reading_once_in_order(api, device, three_hours, limit):
    got = pages(api, device["id"], limit=limit)
    assert all(len(p) <= limit for p in got)
    flat = [r for p in got for r in p]
    assert flat == three_hours
    assert len(flat) == 54


def test_a_later_request_wins_for_a_shared_timestamp(api, device, three_hours):
    minute4 = [r for r in three_hours if r["ts"] == T0 + 4 * 60_000 and r["metric"] == "temp"]
    assert minute4 == [{"metric": "temp", "unit": "", "ts": T0 + 4 * 60_000, "value": 10}]


@pytest.fixture
def small_query_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    """Read at most 10 chunk items a Query (100 in production), so a few requests fill an hour past it."""
    monkeypatch.setattr(telemetry, "QUERY_ITEMS_PER_PAGE", 10)
    return 10


def test_an_hour_with_more_items_than_a_query_page_is_read_whole(api, device, small_query_pages):
    # More requests in one hour than one Query reads (in production: a device posting every 30 s).
    for i in range(24):
        post(api, device, {"ts": T0 + i * 150_000, "values": {"temp": i}})
    post(api, device, {"ts": T0 + HOUR, "values": {"temp": 24}})
    for limit in (1000, 7):
        flat = [r for p in pages(api, device["id"], limit=limit) for r in p]
        assert [r["value"] for r in flat] == list(range(25))


def test_an_hour_with_more_items_than_a_query_page_at_the_end_of_the_window(api, device, small_query_pages):
    for i in range(24):
        post(api, device, {"ts": T0 + i * 150_000, "values": {"temp": i}})
    to = T0 + HOUR - 1
    flat = [r for p in pages(api, device["id"], to=to) for r in p]
    assert [r["value"] for r in flat] == list(range(24))


def test_an_empty_device_has_one_empty_page(api, device):
    assert pages(api, device["id"]) == [[]]


# --------------------------------------------------------------------------- filters


def test_metric_filter(api, device, three_hours):
    flat = [r for p in pages(api, device["id"], metric="hum", limit=4) for r in p]
    assert flat == [r for r in three_hours if r["metric"] == "hum"]
    assert pages(api, device["id"], metric="nothing") == [[]]


def test_metric_filter_with_senml_names(api, device):
    pack = [
        {"bn": "urn:dev:ow:1:", "bt": T0 / 1000, "n": "temp", "u": "Cel", "v": 20},
        {"n": "hum", "u": "%RH", "v": 40},
    ]
    post(api, device, pack, content_type="application/senml+json")
    got = [r for p in pages(api, device["id"], metric="urn:dev:ow:1:temp") for r in p]
    assert got == [{"metric": "urn:dev:ow:1:temp", "unit": "Cel", "ts": T0, "value": 20}]


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (T0 + HOUR, T0 + HOUR + 8 * 60_000),
        ((T0 + HOUR) // 1000, (T0 + HOUR) // 1000 + 8 * 60),
        ((T0 + HOUR) / 1000, (T0 + HOUR) / 1000 + 8 * 60),
        ("2025-11-25T10:00:00Z", "2025-11-25T10:08:00.000Z"),
        ("2025-11-25T11:00:00%2B01:00", "2025-11-25T11:08:00%2B01:00"),
    ],
    ids=["ms", "seconds", "float_seconds", "iso", "iso_offset"],
)
def test_from_and_to_are_inclusive_in_every_time_format(api, device, three_hours, low, high):
    flat = [r for p in pages(api, device["id"], **{"from": low, "to": high}, limit=5) for r in p]
    assert flat == [r for r in three_hours if T0 + HOUR <= r["ts"] <= T0 + HOUR + 8 * 60_000]
    assert len(flat) == 18


def test_from_and_to_inside_hours(api, device, three_hours):
    low, high = T0 + 3 * 60_000, T0 + 2 * HOUR + 60_000
    flat = [r for p in pages(api, device["id"], **{"from": low, "to": high}, limit=4) for r in p]
    assert flat == [r for r in three_hours if low <= r["ts"] <= high]


def test_only_from(api, device, three_hours):
    flat = [r for p in pages(api, device["id"], **{"from": T0 + 2 * HOUR}) for r in p]
    assert flat == [r for r in three_hours if r["ts"] >= T0 + 2 * HOUR]


# --------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 10001},
        {"limit": -5},
        {"limit": "many"},
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJiIjoiMjAyNSJ9"},  # {"b":"2025"}: well-formed base64 JSON, not ours
        {"cursor": "W10"},  # []
        {"from": "yesterday"},
        {"from": "2025-11-25T09:00:00"},  # no zone
        {"to": "soon"},
        {"from": T0 + HOUR, "to": T0},
        {"to": 99999999999999999999},  # year 3 billion
        {"to": 253402300800000},  # 10000-01-01
        {"from": -99999999999999},
        {"from": "1e400"},
        {"from": "NaN"},
        {"metric": "-bad"},
        {"metric": "a%20b"},
    ],
    ids=str,
)
def test_bad_parameters_are_400(api, device, params):
    answer = page(api, device["id"], **params)
    assert answer.status_code == 400, answer.body
    assert error_of(answer)["code"] == "invalid_parameter"


@pytest.mark.parametrize("limit", [1, 10000])
def test_limit_bounds_are_allowed(api, device, limit):
    assert page(api, device["id"], limit=limit).status_code == 200


def test_an_unknown_device_is_404_for_the_admin(api):
    answer = page(api, "no-such-device")
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "device_not_found"


def test_a_cursor_from_another_query_does_not_break_the_store(api, device, three_hours):
    # A cursor whose hour is after the window's end: nothing more, not an error.
    first = body_of(page(api, device["id"], limit=1, **{"from": T0 + 2 * HOUR}))
    answer = page(api, device["id"], cursor=first["next_cursor"], to=T0 + 10 * 60_000)
    assert answer.status_code == 200, answer.body
    assert body_of(answer) == {"device_id": device["id"], "readings": [], "next_cursor": None}


# --------------------------------------------------------------------------- cost


def test_each_page_is_one_query_and_never_a_scan(api, device, three_hours):
    for token in (api.admin, device["token"]):
        assert page(api, device["id"], token).status_code == 200  # warm the token cache
        cursor = None
        seen = 0
        while True:
            params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
            with dynamodb() as calls:
                answer = page(api, device["id"], token, **params)
            doc = body_of(answer)
            queries = [c for c in calls if c == "Query"]
            assert len(queries) == 1, calls
            assert "Scan" not in calls
            # The admin's read also checks the device exists (one GetItem); the device's own does not.
            assert len(calls) == (2 if token == api.admin else 1), calls
            seen += len(doc["readings"])
            cursor = doc["next_cursor"]
            if not cursor:
                break
        assert seen == 54


def test_ingest_of_100_records_of_5_metrics_costs_two_requests(api, device):
    post(api, device, {"ts": T0, "values": {"warm": 1}})  # caches the token
    body = [{"ts": T0 + 1000 + i * 1000, "values": {f"m{j}": i + j for j in range(5)}} for i in range(100)]
    with dynamodb() as calls:
        post(api, device, body)
    assert sorted(calls) == ["BatchWriteItem", "UpdateItem"]
    assert stored_items(device["id"]) == 2
    assert len(api.readings(device["id"])) == 501


def test_state_read_is_one_get_one_query_and_no_scan(api, device):
    post(api, device, {"ts": T0, "values": {"temp": 1}})
    with dynamodb() as calls:
        answer = api.request("GET", f"/v1/devices/{device['id']}/state", device["token"])
    assert answer.status_code == 200
    assert calls == ["GetItem", "Query"]  # the device item, then its chunks not folded yet (domain.state)


def test_registry_reads_never_scan(api, device):
    with dynamodb() as calls:
        for path in ("/v1/devices", f"/v1/devices/{device['id']}", "/v1/devices?limit=1"):
            assert api.request("GET", path, api.admin).status_code == 200
    assert "Scan" not in calls
    assert calls == ["Query", "GetItem", "Query"]
