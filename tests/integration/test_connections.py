"""Delivery over @connections (adapters.connections, jobs.realtime.Realtime) through the local gateway.

A real boto3 `apigatewaymanagementapi` client posts to the local WebSocket gateway, as it
posts to API Gateway in AWS; the WAMP router runs over the in-memory store of the contract
suite. What is pinned: a message reaches its connection, a connection found gone gets
nothing more from the batch, and the router forgets a gone subscriber.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from chalice.app import Chalice, WebsocketEvent
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from chalicelib.adapters.call_timeouts import CallTimeoutQueue
from chalicelib.adapters.connections import Connections
from chalicelib.adapters.devices import DeviceRepository
from chalicelib.adapters.readings import ReadingStore
from chalicelib.domain.readings import Limits
from chalicelib.domain.wamp.codec import encode
from chalicelib.domain.wamp.protocol import Code
from chalicelib.domain.wamp.router import Outgoing, Router
from chalicelib.domain.wamp.store import Identity
from chalicelib.jobs.realtime import Realtime
from devstack.wsgateway.server import WebSocketGateway
from tests.contracts.router_store import MemoryStore

WAMP = Subprotocol("wamp.2.json")
TOPIC = "iotcloud.alerts"


@dataclass
class Endpoints:
    """Where the learnt endpoint is kept (RealtimeStore in the app; its DynamoDB side is tested there)."""

    url: str | None = None
    writes: int = 0

    def remember_endpoint(self, url: str) -> None:
        self.url, self.writes = url, self.writes + 1

    def endpoint(self) -> str | None:
        return self.url


def _client(url: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


@pytest.fixture
def gateway() -> Iterator[tuple[WebSocketGateway, threading.Event]]:
    app = Chalice(app_name="connections-test")
    app.experimental_feature_flags.update(["WEBSOCKETS"])
    disconnected = threading.Event()

    @app.on_ws_connect()
    def ws_connect(event: WebsocketEvent) -> Any:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": WAMP}}

    @app.on_ws_disconnect()
    def ws_disconnect(event: WebsocketEvent) -> None:
        disconnected.set()

    with WebSocketGateway(app) as gw:
        yield gw, disconnected


def _one_id(gw: WebSocketGateway, known: set[str]) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        new = set(gw.connection_ids()) - known
        if new:
            (connection_id,) = new
            return connection_id
        time.sleep(0.01)
    raise AssertionError("the gateway did not report the connection")


def test_messages_reach_their_connection_and_a_gone_one_gets_nothing_more(
    gateway: tuple[WebSocketGateway, threading.Event],
) -> None:
    gw, disconnected = gateway
    connections = Connections(Endpoints(), _client, gw.management_url)
    with connect(gw.url, subprotocols=[WAMP]) as live:
        alive = _one_id(gw, set())
        with connect(gw.url, subprotocols=[WAMP]):
            gone = _one_id(gw, {alive})
        disconnected.wait(5)
        batch = [Outgoing(gone, [Code.EVENT, 1, 1, {}]), Outgoing(alive, [Code.EVENT, 2, 2, {}]),
                 Outgoing(gone, [Code.EVENT, 3, 3, {}])]  # fmt: skip
        assert connections.deliver(batch) == [gone]
        assert live.recv(timeout=5) == encode([Code.EVENT, 2, 2, {}])


def test_the_endpoint_is_learnt_once_and_configured_beats_learnt() -> None:
    endpoints = Endpoints()
    learnt = Connections(endpoints, _client)
    with pytest.raises(RuntimeError):
        learnt.client()
    learnt.remember_endpoint("abc.execute-api.us-east-1.amazonaws.com", "api")
    learnt.remember_endpoint("abc.execute-api.us-east-1.amazonaws.com", "api")
    assert (endpoints.url, endpoints.writes) == ("https://abc.execute-api.us-east-1.amazonaws.com/api", 1)
    assert learnt.client().meta.endpoint_url == endpoints.url
    # Another container reads what the first one learnt.
    assert Connections(endpoints, _client).client().meta.endpoint_url == endpoints.url
    configured = Connections(Endpoints(), _client, "http://127.0.0.1:9")
    configured.remember_endpoint("other.example", "api")
    assert configured.client().meta.endpoint_url == "http://127.0.0.1:9"


def test_a_subscriber_found_gone_is_disconnected_from_the_router(
    gateway: tuple[WebSocketGateway, threading.Event],
) -> None:
    gw, disconnected = gateway
    store = MemoryStore()
    router = Router(store, lambda ticket: Identity("admin", None, "admin"))
    realtime = Realtime(
        router, store, readings=ReadingStore(), devices=DeviceRepository(), limits=Limits(),
        connections=Connections(Endpoints(), _client, gw.management_url),
        timeouts=CallTimeoutQueue(lambda: None, "unused"),
    )  # fmt: skip
    with connect(gw.url, subprotocols=[WAMP]):
        subscriber = _one_id(gw, set())
        router.on_connect(subscriber, [WAMP])
        router.on_message(subscriber, encode([Code.HELLO, "iotcloud", {"roles": {"subscriber": {}},
                                                                      "authmethods": ["ticket"]}]))  # fmt: skip
        router.on_message(subscriber, encode([Code.AUTHENTICATE, "t-admin", {}]))
        router.on_message(subscriber, encode([Code.SUBSCRIBE, 1, {}, TOPIC]))
    disconnected.wait(5)  # the gateway's $disconnect ran, but not this router's: it still holds the session
    assert store.get_session(subscriber) is not None
    realtime.publish(TOPIC, {"alert": "a-1"})
    assert store.get_session(subscriber) is None
    assert router.publish(TOPIC, [], {"alert": "a-2"}) == []  # no subscriber left to send to
