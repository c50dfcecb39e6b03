"""/v1/devices: the device registry (admin only)."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.operations import Answer, Op, json_body_of, ok
from chalicelib.api.params import DEVICE_ID, DEVICES_QUERY, query_params, read_query
from chalicelib.api.responses import json_response
from chalicelib.api.routing import Auth, route
from chalicelib.clock import now_ms
from chalicelib.domain.auth import REVOCATION_BOUND_SECONDS
from chalicelib.domain.devices import ATTRIBUTES, DEVICE_CREATE, DEVICE_PATCH, changes_of, new_device_id
from chalicelib.domain.schema import Arr, Bool, Int, Named, Obj, Str, nullable, optional, record, required
from chalicelib.domain.tokens import hash_token, new_device_token

devices_api = Blueprint(__name__)

_STR = Str()
DEVICE = Named(
    "Device",
    Obj(
        members={
            **required(id=_STR, name=_STR, type=_STR, attributes=ATTRIBUTES, disabled=Bool(), created_at=Int()),
            **optional(updated_at=Int(), last_seen=nullable(Int(description="absent from lists"))),
        }
    ),
)
DEVICE_WITH_TOKEN = Named(
    "DeviceWithToken",
    Obj(members={**DEVICE.schema.members, **required(token=_STR)}),  # type: ignore[attr-defined]
)
DEVICE_PAGE = record(devices=Arr(DEVICE), next_cursor=nullable(_STR))

# What "at once" means with more than one warm instance (domain.auth.REVOCATION_BOUND_SECONDS).
_REVOKED = (
    "The instance that served this call refuses the old token at once; every other one within "
    f"{REVOCATION_BOUND_SECONDS:g} s with the default AUTH_CACHE_TTL_SECONDS (its token cache's "
    "lifetime plus DynamoDB's replication lag)."
)

CREATE_DEVICE = Op(
    "createDevice",
    "Register a device (admin); the answer holds its token, shown once",
    description="To make the create safe to retry, choose the device's `id`: a retry can then "
    "never create a second device. If an attempt's answer was lost (connection reset, timeout, "
    "5xx) and the retry answers 409 `device_exists`, that attempt most likely created the device: "
    "GET it, check it is the one you asked for, and rotate its token "
    "(POST /v1/devices/{device_id}/token) to get a token you know, since the first was shown once. "
    "The server keeps only a hash of each token, so it cannot show the first one again.",
    body=json_body_of(Named("DeviceCreate", DEVICE_CREATE), "the device"),
    answers={201: ok(DEVICE_WITH_TOKEN, "created"), 409: "a device with this id exists (device_exists)"},
)


@route(devices_api, "/v1/devices", "POST", auth=Auth.ADMIN, doc=CREATE_DEVICE)
def create_device(body: dict[str, object]) -> Response:
    changes = changes_of(body, creating=True)
    device_id = changes.device_id or new_device_id()
    token = new_device_token(device_id)
    device = wiring.devices().create(device_id, changes, hash_token(token), now_ms())
    return json_response({**device.as_dict(), "token": token}, 201)


LIST_DEVICES = Op(
    "listDevices", "List devices in id order (admin), paged with an opaque cursor", answers={200: ok(DEVICE_PAGE)}
)


@route(devices_api, "/v1/devices", "GET", auth=Auth.ADMIN, query=DEVICES_QUERY, doc=LIST_DEVICES)
def list_devices() -> Response:
    values = read_query(DEVICES_QUERY, query_params(devices_api.current_request))
    page, next_cursor = wiring.devices().list_page(values["limit"], values["cursor"])
    return json_response({"devices": [d.as_dict(with_last_seen=False) for d in page], "next_cursor": next_cursor})


GET_DEVICE = Op("getDevice", "One device (admin)", path=(DEVICE_ID,), answers={200: ok(DEVICE)})


@route(devices_api, "/v1/devices/{device_id}", "GET", auth=Auth.ADMIN, doc=GET_DEVICE)
def get_device(device_id: str) -> Response:
    return json_response(wiring.devices().get(device_id).as_dict())


UPDATE_DEVICE = Op(
    "updateDevice",
    "Change name, type, attributes or disabled (admin)",
    path=(DEVICE_ID,),
    body=json_body_of(Named("DevicePatch", DEVICE_PATCH), "the device"),
    answers={200: ok(DEVICE)},
)


@route(devices_api, "/v1/devices/{device_id}", "PATCH", auth=Auth.ADMIN, doc=UPDATE_DEVICE)
def patch_device(device_id: str, body: dict[str, object]) -> Response:
    changes = changes_of(body, creating=False)
    device = wiring.devices().update(device_id, changes, now_ms())
    wiring.authenticator().forget(device_id)
    return json_response(device.as_dict())


DELETE_DEVICE = Op(
    "deleteDevice",
    "Delete a device (admin); its token stops working at once",
    description=_REVOKED,
    path=(DEVICE_ID,),
    answers={204: Answer("deleted")},
)


@route(devices_api, "/v1/devices/{device_id}", "DELETE", auth=Auth.ADMIN, doc=DELETE_DEVICE)
def delete_device(device_id: str) -> Response:
    wiring.devices().delete(device_id)
    wiring.authenticator().forget(device_id)
    return Response(body="", status_code=204)


ROTATE_TOKEN = Op(
    "rotateToken",
    "Issue a new token (admin); the old one stops working at once",
    description="Safe to retry: each call replaces the token, and the one from the last call the "
    "server completed is in force; a client that retried can confirm its token with a read the "
    "device may make (GET /v1/devices/{device_id}/telemetry?limit=1 with that token). " + _REVOKED,
    path=(DEVICE_ID,),
    answers={200: ok(record(id=_STR, token=_STR))},
)


@route(devices_api, "/v1/devices/{device_id}/token", "POST", auth=Auth.ADMIN, doc=ROTATE_TOKEN)
def rotate_token(device_id: str) -> Response:
    token = new_device_token(device_id)
    wiring.devices().set_token_hash(device_id, hash_token(token), now_ms())
    wiring.authenticator().forget(device_id)
    return json_response({"id": device_id, "token": token})
