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
from chalicelib.domain.schema import Anything, Arr, Int, Named, Num, Obj, Str, optional, record, required
from chalicelib.errors import InvalidParameterError

analytics_api = Blueprint(__name__)

_STR, _INT, _NUM = Str(), Int(), Num()
# The jobs' rows as they are stored (an open shape: the answer shows the row).
ROLLUP = Named(
    "Rollup",
    Obj(
        members={
            **optional(device_id=_STR),
            **required(
                metric=_STR,
                unit=_STR,
                hour=Str(description="UTC hour, YYYY-MM-DDTHH"),
                count=_INT,
                min=_NUM,
                max=_NUM,
                sum=_NUM,
                mean=_NUM,
                first_ts=_INT,
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
    "Hourly rollups of numeric readings from the daily job (admin, or the device itself)",
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
    from chalicelib.domain.mapreduce import hour_of  # the jobs' module, not the ingest path's

    rows = wiring.aggregates().rollups(device_id, metric, hour_of(from_ms), hour_of(to_ms))
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
