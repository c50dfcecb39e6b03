"""GET /v1/openapi.json: the OpenAPI 3 document of every route (chalicelib/api/openapi_doc.py).

Every operation is generated from its route's declaration (`routing.route(query=..., doc=Op(...))`):
its parameters, body and answers, and the schemas they name. This route's own is below.
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.api.operations import Op, ok
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.domain.schema import Anything, Obj

openapi_api = Blueprint(__name__)

GET_OPENAPI = Op("getOpenApi", "This document", answers={200: ok(Obj(values=Anything()))})


@route(openapi_api, "/v1/openapi.json", "GET", auth=Auth.NONE, cors=True, doc=GET_OPENAPI)
def openapi_document() -> Response:
    return json_response(_document())


@functools.cache
def _document() -> dict[str, Any]:
    """The document of the app's routes, built on first use."""
    from chalicelib.api.openapi_doc import document

    return document(openapi_api.current_app.routes)
