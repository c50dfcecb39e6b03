"""GET /v1/openapi.json: the OpenAPI 3 document of every route (chalicelib/api/openapi_doc.py)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api.responses import handles_errors, json_response

openapi_api = Blueprint(__name__)


@openapi_api.route("/v1/openapi.json", methods=["GET"], cors=True, content_types=["*/*"])
@handles_errors
def openapi_document() -> Response:
    from chalicelib.api.openapi_doc import DOCUMENT  # a large literal: built on first use

    return json_response(DOCUMENT)
