"""GET /v1/openapi.json: the OpenAPI 3 document of every route (chalicelib/api/openapi_doc.py)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route

openapi_api = Blueprint(__name__)


@route(openapi_api, "/v1/openapi.json", "GET", auth=Auth.NONE, cors=True)
def openapi_document() -> Response:
    from chalicelib.api.openapi_doc import DOCUMENT  # a large literal: built on first use

    return json_response(DOCUMENT)
