"""The realtime side: WebSocket frames through the WAMP router, telemetry published as events.

A device may publish telemetry over WAMP to `iotcloud.device.<its id>.telemetry` (kwargs
in any JSON shape `POST /v1/telemetry` accepts, or `{"records": [...]}`): it is validated
and stored exactly like an HTTPS post before the router fans it out, and a rejected one is
answered with an ERROR instead of being routed. Readings stored by any path reach
subscribers of `iotcloud.telemetry.<device id>` through the readings stream.

`Realtime` is what the WebSocket handlers, the call-timeout queue and the other jobs call:
each entry point runs the router and delivers its messages over @connections, and a
connection found gone is disconnected from the router (whose answers are delivered too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chalicelib.adapters.call_timeouts import CallTimeoutQueue
from chalicelib.adapters.connections import Connections
from chalicelib.clock import now_ms
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


class Realtime:
    """The WAMP router's entry points, each delivered to the connections over @connections."""

    def __init__(
        self, router: Router, store: RouterStore, *, readings: ChunkWriter, devices: StateRecorder, limits: Limits,
        connections: Connections, timeouts: CallTimeoutQueue, clock: Callable[[], int] = now_ms,
    ) -> None:  # fmt: skip
        self._router = router
        self._store = store
        self._readings = readings
        self._devices = devices
        self._limits = limits
        self._connections = connections
        self._timeouts = timeouts
        self._clock = clock

    def connect(
        self, connection_id: str, headers: Mapping[str, str] | None, domain_name: str, stage: str
    ) -> dict[str, Any]:
        """`$connect`: accept when a WAMP subprotocol is offered (the handler's answer to API Gateway)."""
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        offered = [p.strip() for p in lowered.get("sec-websocket-protocol", "").split(",") if p.strip()]
        self._connections.remember_endpoint(domain_name, stage)
        answer = self._router.on_connect(connection_id, offered)
        if not answer.accept:
            return {"statusCode": answer.status}
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": answer.subprotocol}}

    def message(self, connection_id: str, text: str) -> None:
        """One frame (handle_frame: WAMP-published telemetry is stored first)."""
        self.deliver(
            handle_frame(
                connection_id, text, router=self._router, store=self._store, readings=self._readings,
                devices=self._devices, limits=self._limits, now_ms=self._clock(),
            )
        )  # fmt: skip

    def disconnect(self, connection_id: str) -> None:
        self.deliver(self._router.on_disconnect(connection_id))

    def call_timeouts(self, bodies: Iterable[str]) -> None:
        """The call-timeout queue's messages: each names a call whose deadline may have passed."""
        for body in bodies:
            self.deliver(self._router.on_call_timeout(self._timeouts.call_of(body)))

    def publish(self, topic: str, kwargs: dict[str, Any]) -> None:
        """A backend event (alerts) to the topic's subscribers. A failure raises: the caller retries."""
        self.deliver(self._router.publish(topic, [], kwargs))

    def publish_telemetry(self, records: Iterable[dict[str, Any]]) -> None:
        """The readings a stream batch adds, to their telemetry topics' subscribers."""
        self.deliver(telemetry_events(records, self._router.publish))

    def deliver(self, outgoing: Iterable[Outgoing]) -> None:
        """Post the router's messages; a connection found gone is disconnected from the router."""
        for connection_id in self._connections.deliver(outgoing):
            self.deliver(self._router.on_disconnect(connection_id))
