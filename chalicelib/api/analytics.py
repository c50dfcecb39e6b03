"""Rollups and search: served from the map/reduce jobs' outputs, never from the archive."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import ROLLUPS_QUERY, SEARCH_QUERY, query_params, read_query, readable_device
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.auth import Principal
from chalicelib.errors import InvalidParameterError

analytics_api = Blueprint(__name__)



@route(analytics_api, "/v1/devices/{device_id}/rollups", "GET", auth=Auth.EITHER, query=ROLLUPS_QUERY)
def get_rollups(principal: Principal, device_id: str) -> Response:
    request = analytics_api.current_request
    readable_device(principal, device_id)
    values = read_query(ROLLUPS_QUERY, query_params(request), now_ms())
    from_ms, to_ms, metric = values["from"], values["to"], values["metric"]
    if from_ms > to_ms:
        raise InvalidParameterError("from must not be after to")
    from chalicelib.domain.mapreduce import hour_of  # the jobs' module, not the ingest path's

    rows = wiring.aggregates().rollups(device_id, metric, hour_of(from_ms), hour_of(to_ms))
    return json_response({"device_id": device_id, "rollups": rows})


@route(analytics_api, "/v1/search", "GET", auth=Auth.ADMIN, query=SEARCH_QUERY)
def search() -> Response:
    word = read_query(SEARCH_QUERY, query_params(analytics_api.current_request))["q"]
    postings = wiring.aggregates().postings(word)
    return json_response(
        {
            "word": word,
            "results": postings,
            "count": sum(p["count"] for p in postings),
        }
    )
