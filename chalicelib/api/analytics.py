"""Rollups and search: served from the map/reduce jobs' outputs, never from the archive."""

from __future__ import annotations

import re

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import metric_param, query_params, readable_device, time_param
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.auth import Principal
from chalicelib.errors import InvalidParameterError

analytics_api = Blueprint(__name__)

WORD = re.compile(r"^[a-z0-9]{1,64}$")
DAY_MS = 86_400_000


@route(analytics_api, "/v1/devices/{device_id}/rollups", "GET", auth=Auth.EITHER)
def get_rollups(principal: Principal, device_id: str) -> Response:
    request = analytics_api.current_request
    readable_device(principal, device_id)
    params = query_params(request)
    now = now_ms()
    from_ms = time_param(params, "from", now - 7 * DAY_MS, now)
    to_ms = time_param(params, "to", now, now)
    metric = metric_param(params)
    if from_ms > to_ms:
        raise InvalidParameterError("from must not be after to")
    from chalicelib.domain.mapreduce import hour_of  # the jobs' module, not the ingest path's

    rows = wiring.aggregates().rollups(device_id, metric, hour_of(from_ms), hour_of(to_ms))
    return json_response({"device_id": device_id, "rollups": rows})


@route(analytics_api, "/v1/search", "GET", auth=Auth.ADMIN)
def search() -> Response:
    request = analytics_api.current_request
    word = (query_params(request).get("q") or "").strip().lower()
    if not WORD.match(word):
        raise InvalidParameterError("q must be one word: 1-64 letters or digits")
    postings = wiring.aggregates().postings(word)
    return json_response(
        {
            "word": word,
            "results": postings,
            "count": sum(p["count"] for p in postings),
        }
    )
