"""Rollups and search: served from the map/reduce jobs' outputs, never from the archive."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.operations import Op, ok
from chalicelib.api.params import DEVICE_ID, MAX_WORD_CHARS, ROLLUPS_QUERY, SEARCH_QUERY, query_params, read_query
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.api.telemetry import device_answer
from chalicelib.clock import now_ms
from chalicelib.domain.auth import Principal
from chalicelib.domain.schema import Anything, Arr, Int, Named, Num, Obj, Str, nullable, optional, record, required
from chalicelib.errors import InvalidParameterError

analytics_api = Blueprint(__name__)

_STR, _INT, _NUM = Str(), Int(), Num()
# A rollup row is the hourly Partial of domain.rollups (see domain.mapreduce.rollup_row).
_READING = Anything(description="a reading's value: number, boolean or string")
ROLLUP = Named(
    "Rollup",
    Obj(
        members={
            **optional(device_id=_STR),
            **required(
                metric=_STR,
                unit=_STR,
                hour=Str(description="UTC hour, YYYY-MM-DDTHH"),
                count=Int(description="readings of every type"),
                numbers=Int(description="numeric readings (min, max, sum, mean are theirs)"),
                min=nullable(_NUM),
                max=nullable(_NUM),
                sum=_NUM,
                mean=nullable(_NUM),
                first=_READING,
                first_ts=_INT,
                last=_READING,
                last_ts=_INT,
            ),
        },
        values=Anything(),
    ),
)
POSTING = Named(
    "Posting",
    Obj(
        members=required(device_id=_STR, metric=_STR, count=_INT, first_ts=_INT, last_ts=_INT),
        values=Anything(),
    ),
)

GET_ROLLUPS = Op(
    "getRollups",
    "Hourly rollups (the hours from..to, closed and rolled by the hourly job) of every series or one metric"
    " (admin, or the device itself)",
    path=(DEVICE_ID,),
    answers={200: device_answer(rollups=Arr(ROLLUP))},
)


@route(analytics_api, "/v1/devices/{device_id}/rollups", "GET", auth=Auth.EITHER, query=ROLLUPS_QUERY, doc=GET_ROLLUPS)
def get_rollups(principal: Principal, device_id: str) -> Response:
    request = analytics_api.current_request
    principal.require_device_or_admin(device_id)
    values = read_query(ROLLUPS_QUERY, query_params(request), now_ms())
    from_ms, to_ms, metric = values["from"], values["to"], values["metric"]
    if from_ms > to_ms:
        raise InvalidParameterError("from must not be after to")
    from chalicelib.domain.mapreduce import hour_of, rollup_row  # the jobs' module, not the ingest path's
    from chalicelib.domain.rollups import HOUR_MS

    first_hour = from_ms - from_ms % HOUR_MS
    end = to_ms - to_ms % HOUR_MS + HOUR_MS  # the hour holding `to` is included
    partials = wiring.rollup_store().hours(device_id, metric, None, first_hour, end)
    rows = [
        rollup_row(device_id, m, u, hour_of(h), p)
        for (m, u, h), p in sorted(partials.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    ]
    return json_response({"device_id": device_id, "rollups": rows})


SEARCH = Op(
    "search",
    "Devices and metrics whose string readings held a word, from the daily index (admin)",
    answers={
        200: ok(record(word=_STR, results=Arr(POSTING), count=_INT)),
        400: f"q is not one word of 1-{MAX_WORD_CHARS} letters or digits",
    },
)


@route(analytics_api, "/v1/search", "GET", auth=Auth.ADMIN, query=SEARCH_QUERY, doc=SEARCH)
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
