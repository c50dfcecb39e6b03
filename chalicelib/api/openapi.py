"""GET /v1/openapi.json: the OpenAPI 3 document of every route (chalicelib/api/openapi_doc.py).

The document's parameters come from the routes' declarations (routing.route(query=...)).
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route

openapi_api = Blueprint(__name__)


@route(openapi_api, "/v1/openapi.json", "GET", auth=Auth.NONE, cors=True)
def openapi_document() -> Response:
    return json_response(_document())


@functools.cache
def _document() -> dict[str, Any]:
    """The document of the app's routes, built on first use (a large literal and its generated parts)."""
    from chalicelib.api.openapi_doc import document

    return document(openapi_api.current_app.routes)
