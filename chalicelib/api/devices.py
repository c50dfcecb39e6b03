"""/v1/devices: the device registry (admin only)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.params import DEVICES_QUERY, device_param, query_params, raw_body, read_query
from chalicelib.api.responses import json_body, json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.devices import new_device_id, validate_changes
from chalicelib.domain.tokens import hash_token, new_device_token

devices_api = Blueprint(__name__)


@route(devices_api, "/v1/devices", "POST", auth=Auth.ADMIN)
def create_device() -> Response:
    request = devices_api.current_request
    changes = validate_changes(json_body(raw_body(request)), creating=True)
    token = new_device_token()
    device = wiring.devices().create(changes.device_id or new_device_id(), changes, hash_token(token), now_ms())
    return json_response({**device.as_dict(), "token": token}, 201)


@route(devices_api, "/v1/devices", "GET", auth=Auth.ADMIN, query=DEVICES_QUERY)
def list_devices() -> Response:
    values = read_query(DEVICES_QUERY, query_params(devices_api.current_request))
    page, next_cursor = wiring.devices().list_page(values["limit"], values["cursor"])
    return json_response({"devices": [d.as_dict(with_last_seen=False) for d in page], "next_cursor": next_cursor})


@route(devices_api, "/v1/devices/{device_id}", "GET", auth=Auth.ADMIN)
def get_device(device_id: str) -> Response:
    return json_response(wiring.devices().get(device_param(device_id)).as_dict())


@route(devices_api, "/v1/devices/{device_id}", "PATCH", auth=Auth.ADMIN)
def patch_device(device_id: str) -> Response:
    request = devices_api.current_request
    changes = validate_changes(json_body(raw_body(request)), creating=False)
    device = wiring.devices().update(device_param(device_id), changes, now_ms())
    wiring.authenticator().forget(device_id)
    return json_response(device.as_dict())


@route(devices_api, "/v1/devices/{device_id}", "DELETE", auth=Auth.ADMIN)
def delete_device(device_id: str) -> Response:
    wiring.devices().delete(device_param(device_id))
    wiring.authenticator().forget(device_id)
    return Response(body="", status_code=204)


@route(devices_api, "/v1/devices/{device_id}/token", "POST", auth=Auth.ADMIN)
def rotate_token(device_id: str) -> Response:
    token = new_device_token()
    wiring.devices().set_token_hash(device_param(device_id), hash_token(token), now_ms())
    wiring.authenticator().forget(device_id)
    return json_response({"id": device_id, "token": token})
