"""The realtime side: WebSocket frames through the WAMP router, telemetry published as events.

A device may publish telemetry over WAMP to `iotcloud.device.<its id>.telemetry` (kwargs
in any JSON shape `POST /v1/telemetry` accepts, or `{"records": [...]}`): it is validated
and stored exactly like an HTTPS post before the router fans it out, and a rejected one is
answered with an ERROR instead of being routed. Readings stored by any path reach
subscribers of `iotcloud.telemetry.<device id>` through the readings stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.domain.archive import new_readings
from chalicelib.domain.ingest import ChunkWriter, StateRecorder, ingest
from chalicelib.domain.parsing import parse_payload
from chalicelib.domain.readings import Limits
from chalicelib.domain.wamp.codec import Incoming, ProtocolViolation, decode
from chalicelib.domain.wamp.protocol import Code, device_prefix, device_uri_component
from chalicelib.domain.wamp.router import Outgoing, Router
from chalicelib.domain.wamp.store import RouterStore
from chalicelib.errors import IotCloudError
from chalicelib.jobs.archiver import change_of

logger = logging.getLogger("iotcloud.realtime")
TELEMETRY_TOPIC = "iotcloud.telemetry."


def telemetry_topic(device_id: str) -> str:
    return TELEMETRY_TOPIC + device_uri_component(device_id)


def _telemetry_publish(text: str) -> Incoming | None:
    try:
        message = decode(text)
    except ProtocolViolation:
        return None  # the router answers it
    telemetry = message.uri.startswith("iotcloud.device.") and message.uri.endswith(".telemetry")
    return message if message.code == Code.PUBLISH and telemetry else None


def handle_frame(
    connection_id: str,
    text: str,
    *,
    router: Router,
    store: RouterStore,
    readings: ChunkWriter,
    devices: StateRecorder,
    limits: Limits,
    now_ms: int,
) -> list[Outgoing]:
    """One WebSocket frame: store WAMP-published telemetry first, then route the frame."""
    publish = _telemetry_publish(text)
    if publish is not None:
        session = store.get_session(connection_id)
        identity = session.identity if session else None
        if identity is not None and identity.device_id is not None and publish.uri == (
            device_prefix(identity.device_id) + "telemetry"
        ):
            kwargs = publish.kwargs or {}
            body = kwargs.get("records", kwargs) if isinstance(kwargs, dict) else kwargs
            try:
                parsed = parse_payload(json.dumps(body).encode(), "application/json", now_ms, limits)
                key = publish.options.get("idempotency_key")
                ingest(
                    identity.device_id,
                    parsed.readings,
                    now_ms,
                    store=readings,
                    devices=devices,
                    idempotency_key=str(key) if key else None,
                )
            except IotCloudError as e:
                details = {"code": e.code, "details": [d.as_dict() for d in e.details]}
                error = [Code.ERROR, Code.PUBLISH, publish.request, details, f"iotcloud.error.{e.code}", [e.message]]
                return [Outgoing(connection_id, error)]
    return router.on_message(connection_id, text)


def telemetry_events(
    records: Iterable[dict[str, Any]], publish: Callable[[str, list[Any], dict[str, Any]], list[Outgoing]]
) -> list[Outgoing]:
    """EVENTs on iotcloud.telemetry.<device> for the readings a stream batch adds.

    Readings are gathered per device first, so a batch costs one subscriber lookup per
    device, not one per stream record.
    """
    by_device: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        change = change_of(record)
        by_device.setdefault(change.device_id, []).extend(
            {"metric": r.metric, "unit": r.unit, "ts": r.ts_ms, "value": r.value} for r in new_readings(change)
        )
    out: list[Outgoing] = []
    for device_id, readings in by_device.items():
        if readings:
            out += _publish_split(publish, device_id, readings)
    return out


def _publish_split(
    publish: Callable[[str, list[Any], dict[str, Any]], list[Outgoing]], device_id: str, readings: list[dict[str, Any]]
) -> list[Outgoing]:
    """One EVENT if it fits API Gateway's message limit, else halves of it, recursively."""
    try:
        return publish(telemetry_topic(device_id), [], {"device_id": device_id, "readings": readings})
    except IotCloudError:
        if len(readings) == 1:
            logger.warning("a reading of %s is too large for an event; not published", device_id)
            return []
        half = len(readings) // 2
        return _publish_split(publish, device_id, readings[:half]) + _publish_split(publish, device_id, readings[half:])
