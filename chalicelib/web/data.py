"""The JSON the pages' script fetches under /dashboard/data (session cookie, same origin)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib import wiring
from chalicelib.api.dashboard_ops import (
    AGGREGATES_QUERY,
    CHART_POINTS,
    SPARKLINE_HOURS,
    SPARKLINES_QUERY,
    STATES_QUERY,
)
from chalicelib.api.params import query_params, read_query
from chalicelib.api.telemetry import telemetry_page
from chalicelib.clock import now_ms
from chalicelib.config import settings
from chalicelib.domain.aggregation import SeriesBuckets, aggregate_series, bucket_count, choose_interval
from chalicelib.domain.aggregation_rules import MAX_BUCKETS
from chalicelib.domain.rollups import HOUR_MS, Partial, is_number
from chalicelib.errors import InvalidParameterError, RealtimeNotConfiguredError, TooManyBucketsError
from chalicelib.web import session as sessions
from chalicelib.web.forms import require_csrf
from chalicelib.web.status import device_states, state_json

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.web.visit import Visit


def telemetry_json(request: Request, device_id: str) -> dict[str, Any]:
    """The readings of a window, exactly as GET /v1/devices/{id}/telemetry answers for an admin."""
    return telemetry_page(device_id, dict(request.query_params or {}), check_device=True)


def aggregates_json(request: Request, device_id: str) -> dict[str, Any]:
    """Every chartable series of a device over [from, to] in buckets, read at once (one aggregation).

    The window starts at its first bucket's start (`from` rounded down to the interval): a chart
    draws whole buckets, and whole hours come from the rollups, where a part hour would read every
    raw chunk of it."""
    values = read_query(AGGREGATES_QUERY, query_params(request), now_ms())
    from_ms, to_ms = values["from"], values["to"]
    if from_ms > to_ms:
        raise InvalidParameterError("from must not be after to")
    interval_ms = values["interval"] or choose_interval(to_ms - from_ms + 1, CHART_POINTS)
    from_ms -= from_ms % interval_ms
    if bucket_count(from_ms, to_ms, interval_ms) > MAX_BUCKETS:
        raise TooManyBucketsError(f"at most {MAX_BUCKETS} buckets a request: a longer interval or a shorter window")
    wiring.devices().get(device_id)  # a device that does not exist is 404, not an empty chart
    found = aggregate_series(
        device_id, from_ms, to_ms, interval_ms, chunks=wiring.readings(), rollups=wiring.rollup_store()
    )
    series = [doc for doc in map(series_json, found) if doc is not None]
    return {"interval_ms": interval_ms, "series": series}


def _bucket_json(start: int, p: Partial, numeric: bool) -> dict[str, Any]:
    last = p.last if is_number(p.last) or isinstance(p.last, bool) else None
    if numeric:
        return {"start": start, "count": p.numbers, "avg": p.mean, "min": p.min, "max": p.max, "last": last}
    return {"start": start, "count": p.count, "avg": None, "min": None, "max": None, "last": last}


def series_json(s: SeriesBuckets) -> dict[str, Any] | None:
    """A series' buckets as the charts draw them; None for a series with nothing to chart (strings).

    A series with numbers is charted by avg (min and max as its band) and keeps only the buckets
    with numbers; one of booleans alone (no numbers) by each bucket's last value.
    """
    numeric = any(p.numbers for _, p in s.buckets)
    if numeric:
        buckets = [_bucket_json(start, p, True) for start, p in s.buckets if p.numbers]
    else:
        buckets = [_bucket_json(start, p, False) for start, p in s.buckets if isinstance(p.last, bool)]
    if not buckets:
        return None
    return {"metric": s.metric, "unit": s.unit, "buckets": buckets}


def sparklines_json(request: Request) -> dict[str, Any]:
    """Each device's first numeric series (by metric, unit) in hourly averages over the last 24 hours.

    The window starts on a whole hour, so its hours before the rollup job's horizon come from
    rollups and only the hours not rolled up yet from raw chunks. A device without numbers (or
    unknown) has no sparkline.
    """
    ids = read_query(SPARKLINES_QUERY, query_params(request))["ids"]
    now = now_ms()
    from_ms = now // HOUR_MS * HOUR_MS - (SPARKLINE_HOURS - 1) * HOUR_MS
    readings, rollups = wiring.readings(), wiring.rollup_store()
    lines = []
    for device_id in ids:
        found = aggregate_series(device_id, from_ms, now, HOUR_MS, chunks=readings, rollups=rollups)
        first = next((s for s in found if any(p.numbers for _, p in s.buckets)), None)
        if first is not None:
            points = [[start, p.mean] for start, p in first.buckets if p.numbers]
            lines.append({"device_id": device_id, "metric": first.metric, "unit": first.unit, "points": points})
    return {"interval_ms": HOUR_MS, "sparklines": lines}


def states_json(request: Request) -> dict[str, Any]:
    """The live states of the devices a page shows (`ids`, comma-separated)."""
    ids = read_query(STATES_QUERY, query_params(request))["ids"]
    states = device_states(ids)
    return {"states": [state_json(states[i]) for i in ids if i in states], "now": now_ms()}


def ticket_json(v: Visit) -> dict[str, Any]:
    """A WAMP ticket for the page's live updates, with the WebSocket URL and realm."""
    require_csrf(v, v.request.headers.get("x-csrf-token"))
    url = settings().public_ws_url
    if not url:
        raise RealtimeNotConfiguredError("this stage has no public WebSocket URL (PUBLIC_WS_URL): pages poll")
    assert v.session is not None
    ticket, expires = sessions.new_ticket(sessions.secret(), v.session, v.now)
    return {"ticket": ticket, "expires_at": expires, "url": url, "realm": "iotcloud"}
