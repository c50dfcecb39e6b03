"""The device charts' data: GET /dashboard/data/devices/{id}/aggregates, and the windows the page offers."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from chalicelib.api.dashboard_ops import CHART_POINTS, WINDOWS
from chalicelib.domain.aggregation import MAX_BUCKETS, choose_interval
from chalicelib.web.device import chart_interval
from tests.functional.helpers import HOUR, T0, body_of, dynamodb, error_of, now_ms
from tests.functional.test_openapi import dashboard_session

MINUTE = 60_000


def aggregates(api: Any, device_id: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    qs = "&".join(f"{k}={v}" for k, v in params.items())
    return api.request("GET", f"/dashboard/data/devices/{device_id}/aggregates?{qs}", headers=headers)


def post(api: Any, device: dict[str, Any], records: list[dict[str, Any]]) -> None:
    for i in range(0, len(records), 100):
        answer = api.post(device["token"], records[i : i + 100])
        assert answer.status_code == 200, answer.body


def three_hours(api: Any, device: dict[str, Any]) -> list[dict[str, Any]]:
    """Three hours of a record a minute from T0 + 30 min: a number, a boolean and a string."""
    records = [
        {
            "ts": T0 + 30 * MINUTE + i * MINUTE,
            "values": {"temp": 20 + (i * 7919 % 97) / 10, "door": i % 3 == 0, "mode": f"m{i % 4}"},
        }
        for i in range(180)
    ]
    post(api, device, records)
    return records


def expected_buckets(records: list[dict[str, Any]], metric: str, interval: int) -> list[dict[str, Any]]:
    groups: dict[int, list[tuple[int, Any]]] = {}
    for r in records:
        groups.setdefault(r["ts"] // interval * interval, []).append((r["ts"], r["values"][metric]))
    out = []
    for start, points in sorted(groups.items()):
        values = [v for _, v in sorted(points)]
        bucket = {"start": start, "count": len(values), "avg": None, "min": None, "max": None, "last": values[-1]}
        if not isinstance(values[0], bool):
            bucket.update(avg=math.fsum(values) / len(values), min=min(values), max=max(values))
        out.append(bucket)
    return out


def assert_buckets(got: list[dict[str, Any]], want: list[dict[str, Any]], metric: str) -> None:
    assert len(got) == len(want), metric
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for key in w:
            if isinstance(w[key], float) and not isinstance(g[key], bool):
                assert g[key] == pytest.approx(w[key], rel=1e-12), (metric, g["start"], key)
            else:
                assert g[key] == w[key], (metric, g["start"], key)


def test_every_chartable_series_in_hour_buckets_in_one_answer(api, device):
    records = three_hours(api, device)
    page, _ = dashboard_session()
    answer = aggregates(api, device["id"], page, **{"from": T0, "to": T0 + 4 * HOUR - 1, "interval": "1h"})
    assert answer.status_code == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    doc = body_of(answer)
    assert set(doc) == {"interval_ms", "series"} and doc["interval_ms"] == HOUR
    by_metric = {s["metric"]: s for s in doc["series"]}
    assert set(by_metric) == {"temp", "door"}  # strings stay in the table only
    for metric in ("temp", "door"):
        series = by_metric[metric]
        assert series["unit"] == ""
        got = series["buckets"]
        assert [b["start"] for b in got] == [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR]
        assert [b["count"] for b in got] == [30, 60, 60, 30]
        assert_buckets(got, expected_buckets(records, metric, HOUR), metric)


def test_the_window_starts_at_its_first_buckets_start_and_is_cut_at_its_end(api, device):
    records = three_hours(api, device)
    page, _ = dashboard_session()
    lo, hi = T0 + 42 * MINUTE + 1, T0 + 101 * MINUTE
    doc = body_of(aggregates(api, device["id"], page, **{"from": lo, "to": hi, "interval": "5m"}))
    temp = next(s for s in doc["series"] if s["metric"] == "temp")
    start = T0 + 40 * MINUTE  # a chart draws whole buckets: the first one from its start
    inside = [r for r in records if start <= r["ts"] <= hi]
    assert_buckets(temp["buckets"], expected_buckets(inside, "temp", 5 * MINUTE), "temp")
    assert temp["buckets"][0]["start"] == start
    assert sum(b["count"] for b in temp["buckets"]) == len(inside) == 62


def test_the_interval_in_milliseconds_is_the_same_query(api, device):
    three_hours(api, device)
    page, _ = dashboard_session()
    window = {"from": T0, "to": T0 + 4 * HOUR}
    assert body_of(aggregates(api, device["id"], page, interval="3600000", **window)) == body_of(
        aggregates(api, device["id"], page, interval="1h", **window)
    )


def test_without_an_interval_the_buckets_are_at_most_the_charts_points(api, device):
    three_hours(api, device)
    page, _ = dashboard_session()
    doc = body_of(aggregates(api, device["id"], page, **{"from": T0, "to": T0 + 4 * HOUR - 1}))
    assert doc["interval_ms"] == choose_interval(4 * HOUR, CHART_POINTS) == 15_000
    for series in doc["series"]:
        assert len(series["buckets"]) <= CHART_POINTS
        assert sum(b["count"] for b in series["buckets"]) == 180


def test_one_read_of_the_readings_for_every_metric(api, device, other_device):
    # One metric or five: the same DynamoDB calls (every series comes from the same chunks).
    five = [{"ts": T0 + i * MINUTE, "values": {f"m{j}": i + j for j in range(5)}} for i in range(120)]
    one = [{"ts": T0 + i * MINUTE, "values": {"m0": i}} for i in range(120)]
    post(api, device, five)
    post(api, other_device, one)
    page, _ = dashboard_session()
    calls = []
    for d in (device, other_device):
        with dynamodb() as seen:
            doc = body_of(aggregates(api, d["id"], page, **{"from": T0, "to": T0 + 2 * HOUR - 1, "interval": "1h"}))
        calls.append([c for c in seen if c in ("Query", "Scan", "BatchGetItem")])
        assert all(len(s["buckets"]) == 2 for s in doc["series"])
    assert len(body_of(aggregates(api, device["id"], page, **{"from": T0, "to": T0 + 2 * HOUR}))["series"]) == 5
    assert calls[0] == calls[1] and 1 <= len(calls[0]) <= 2, calls


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": "5x"}, r"interval must be a duration"),
        ({"interval": "0"}, r"interval must be a duration"),
        ({"from": T0 + HOUR, "to": T0}, r"from must not be after to"),
        ({"from": T0, "to": T0 + 30 * 24 * HOUR, "interval": "1s"}, rf"at most {MAX_BUCKETS} buckets"),
        ({"from": "yesterday"}, r"from: epoch"),
    ],
)
def test_bad_parameters_are_400_saying_which(api, device, params, message):
    page, _ = dashboard_session()
    answer = aggregates(api, device["id"], page, **params)
    assert answer.status_code == 400
    error = error_of(answer)
    code = "too_many_buckets" if "buckets" in message else "invalid_parameter"  # the API's codes
    assert error["code"] == code and re.search(message, error["message"]), error


def test_an_unknown_device_is_404_and_no_session_is_401(api, device):
    page, _ = dashboard_session()
    answer = aggregates(api, "nope", page, interval="1h")
    assert answer.status_code == 404 and error_of(answer)["code"] == "device_not_found"
    answer = aggregates(api, device["id"], None, interval="1h")
    assert answer.status_code == 401 and error_of(answer)["code"] == "unauthorized"


def test_the_windows_ask_for_at_most_the_charts_points_and_whole_hours_past_a_day():
    assert list(WINDOWS) == ["1h", "6h", "24h", "7d", "30d"]
    intervals = {w: chart_interval(ms) for w, ms in WINDOWS.items()}
    assert intervals == {"1h": 5_000, "6h": 30_000, "24h": 120_000, "7d": HOUR, "30d": HOUR}
    for w, ms in WINDOWS.items():
        assert ms // intervals[w] + 1 <= CHART_POINTS, w


@pytest.mark.parametrize(("window", "interval"), [("30d", HOUR), ("7d", HOUR), ("24h", 120_000), (None, 30_000)])
def test_the_device_page_offers_30_days_and_says_its_interval(api, device, window, interval):
    page, _ = dashboard_session()
    query = f"?window={window}" if window else ""
    answer = api.request("GET", f"/dashboard/devices/{device['id']}{query}", headers=page)
    assert answer.status_code == 200, answer.body
    html = answer.body.decode()
    assert f'data-interval="{interval}"' in html and f'data-chart-points="{CHART_POINTS}"' in html
    assert "last 30d</a>" in html
    charts = re.search(r'id="charts"[^>]*data-from="(\d+)" data-to="(\d+)"', html)
    assert charts is not None
    assert int(charts[2]) - int(charts[1]) == WINDOWS[window or "6h"]


def test_sparklines_are_hourly_averages_of_each_devices_first_numeric_metric(api, device, other_device):
    now = now_ms()
    start = now // HOUR * HOUR - 23 * HOUR
    # Thirty hours of a record every 10 minutes: the sparkline keeps the last 24 hours (from a whole hour).
    records = [
        {"ts": now - 30 * HOUR + i * 10 * MINUTE, "values": {"b_level": i % 7, "a_mode": "x", "c_temp": 20.5}}
        for i in range(180)
    ]
    post(api, device, records)
    post(api, other_device, [{"ts": now - HOUR, "values": {"label": "text only"}}])
    page, _ = dashboard_session()
    answer = api.request(
        "GET", f"/dashboard/data/sparklines?ids={device['id']},{other_device['id']},nope", headers=page
    )
    assert answer.status_code == 200, answer.body
    doc = body_of(answer)
    assert doc["interval_ms"] == HOUR
    [line] = doc["sparklines"]  # the text-only device and the unknown one have none
    assert (line["device_id"], line["metric"], line["unit"]) == (device["id"], "b_level", "")
    hours: dict[int, list[int]] = {}
    for r in records:
        if start <= r["ts"] <= now:
            hours.setdefault(r["ts"] // HOUR * HOUR, []).append(r["values"]["b_level"])
    assert [p[0] for p in line["points"]] == sorted(hours)
    assert len(line["points"]) in (23, 24)
    for (hour, avg), values in zip(line["points"], [hours[h] for h in sorted(hours)], strict=True):
        assert avg == pytest.approx(sum(values) / len(values)), hour


def test_sparklines_refuse_a_bad_id_list(api):
    page, _ = dashboard_session()
    for query in ("", "?ids=", "?ids=" + ",".join(f"d{i}" for i in range(101)), "?ids=no%20such"):
        answer = api.request("GET", f"/dashboard/data/sparklines{query}", headers=page)
        assert answer.status_code == 400, query
        assert error_of(answer)["code"] == "invalid_parameter"
