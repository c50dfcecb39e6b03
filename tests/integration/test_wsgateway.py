"""The local WebSocket gateway behaves as API Gateway's WebSocket API in front of the app.

The app under test sends through a real boto3 `apigatewaymanagementapi` client pointed
at the gateway, which is the code path that runs in AWS.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from chalice.app import Chalice, Response, WebsocketEvent
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.connection import Connection
from websockets.typing import Subprotocol

from devstack.wsgateway.management import management_environment
from devstack.wsgateway.server import WebSocketGateway

WAMP = Subprotocol("wamp.2.json")
ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")
CLF_TIME = re.compile(r"^\d{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")
CONTEXT_KEYS = {
    "routeKey",
    "eventType",
    "extendedRequestId",
    "requestTime",
    "messageDirection",
    "stage",
    "connectedAt",
    "requestTimeEpoch",
    "identity",
    "requestId",
    "domainName",
    "connectionId",
    "apiId",
}


def management_client(endpoint_url: str) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class Recorder:
    """What the app's handlers saw, and the client they send with."""

    events: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    client: Any = None
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(3, timeout=5))
    active: dict[str, int] = field(default_factory=dict)
    max_active: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["requestContext"]["eventType"] == event_type]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of(event_type)) < count:
            assert time.monotonic() < deadline, f"no {count} {event_type} events: {self.events}"
            time.sleep(0.02)
        return self.of(event_type)


def make_app(recorder: Recorder, with_default: bool = True) -> Chalice:
    app = Chalice(app_name="wsgateway-test")
    app.experimental_feature_flags.update(["WEBSOCKETS"])

    @app.on_ws_connect()
    def ws_connect(event: WebsocketEvent) -> Any:
        doc = event.to_dict()
        recorder.events.append(doc)
        recorder.contexts.append(event.context)
        query = doc.get("queryStringParameters") or {}
        if "reject" in query:
            return Response(body="", status_code=int(query["reject"]))
        if "explode" in query:
            raise RuntimeError("connect handler failed")
        offered = doc["headers"].get("Sec-WebSocket-Protocol", "")
        if WAMP in [p.strip() for p in offered.split(",")] and "noproto" not in query:
            return Response(body="", status_code=200, headers={"Sec-WebSocket-Protocol": WAMP})
        return {"statusCode": 200}

    if with_default:

        @app.on_ws_message()
        def ws_message(event: WebsocketEvent) -> None:
            doc = event.to_dict()
            recorder.events.append(doc)
            cid = event.connection_id
            with recorder.lock:
                recorder.active[cid] = recorder.active.get(cid, 0) + 1
                recorder.max_active[cid] = max(recorder.max_active.get(cid, 0), recorder.active[cid])
            try:
                if doc["isBase64Encoded"]:
                    recorder.client.post_to_connection(ConnectionId=cid, Data=base64.b64decode(doc["body"]))
                    return
                body = event.body
                if body == "fail":
                    raise RuntimeError("message handler failed")
                if body == "barrier":
                    recorder.barrier.wait()
                elif body == "close":
                    recorder.client.delete_connection(ConnectionId=cid)
                    return
                elif body.startswith("jitter:"):
                    time.sleep(random.random() / 500)
                recorder.client.post_to_connection(ConnectionId=cid, Data=f"echo:{body}".encode())
            finally:
                with recorder.lock:
                    recorder.active[cid] -= 1

    @app.on_ws_disconnect()
    def ws_disconnect(event: WebsocketEvent) -> None:
        recorder.events.append(event.to_dict())

    return app


GatewayFactory = Callable[..., tuple[WebSocketGateway, Recorder]]


@pytest.fixture
def gateways() -> Iterator[GatewayFactory]:
    started: list[WebSocketGateway] = []

    def start(with_default: bool = True, **options: Any) -> tuple[WebSocketGateway, Recorder]:
        recorder = Recorder()
        gateway = WebSocketGateway(make_app(recorder, with_default), **options).start()
        started.append(gateway)
        recorder.client = management_client(gateway.management_url)
        return gateway, recorder

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(gateways: GatewayFactory) -> tuple[WebSocketGateway, Recorder]:
    return gateways()


def closed_by_server(ws: Connection, timeout: float = 5.0) -> ConnectionClosed:
    """Wait until the server closes the connection; the ConnectionClosed the client sees."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=deadline - time.monotonic())
        except ConnectionClosed as e:
            return e
        except TimeoutError:
            break
    raise AssertionError("the server did not close the connection")


def test_subprotocol_is_negotiated_by_the_connect_handler(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    with connect(gw.url, subprotocols=[WAMP, Subprotocol("wamp.2.msgpack")]) as ws:
        assert ws.subprotocol == WAMP
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Protocol"] == WAMP
    (event,) = recorder.wait_for("CONNECT")
    assert event["headers"]["Sec-WebSocket-Protocol"] == f"{WAMP}, wamp.2.msgpack"


def test_without_a_subprotocol_from_the_handler_the_handshake_completes_without_one(
    gateway: tuple[WebSocketGateway, Recorder],
) -> None:
    gw, _ = gateway
    with connect(f"{gw.url}/?noproto=1", subprotocols=[WAMP]) as ws:
        assert ws.subprotocol is None
        assert ws.response is not None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
    with connect(gw.url) as ws:  # a client that offers none gets none
        assert ws.subprotocol is None


def test_connect_handler_rejects_the_handshake_with_its_status(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    with pytest.raises(InvalidStatus) as rejected:
        connect(f"{gw.url}/?reject=403", subprotocols=[WAMP])
    assert rejected.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as failed:
        connect(f"{gw.url}/?explode=1")
    assert failed.value.response.status_code == 500
    with pytest.raises(InvalidStatus) as wrong_path:
        connect(f"{gw.url}/not-the-stage")
    assert wrong_path.value.response.status_code == 403
    time.sleep(0.2)
    assert len(recorder.of("CONNECT")) == 2
    assert recorder.of("DISCONNECT") == []  # a connection that never opened does not disconnect
    assert gw.stats.rejected == 2


def test_echo_round_trip_text_and_binary_through_the_management_api(
    gateway: tuple[WebSocketGateway, Recorder],
) -> None:
    gw, recorder = gateway
    with connect(f"{gw.url}/local", subprotocols=[WAMP]) as ws:  # the stage path works too
        ws.send('[1, "realm1", {}]')
        assert ws.recv(timeout=5) == 'echo:[1, "realm1", {}]'
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=5) == b"\x00\xffbinary"  # not UTF-8: sent back as a binary frame
    text, binary = recorder.wait_for("MESSAGE", 2)
    assert (text["body"], text["isBase64Encoded"]) == ('[1, "realm1", {}]', False)
    assert (base64.b64decode(binary["body"]), binary["isBase64Encoded"]) == (b"\x00\xffbinary", True)


def test_frames_of_one_connection_are_handled_in_order_one_at_a_time(
    gateway: tuple[WebSocketGateway, Recorder],
) -> None:
    gw, recorder = gateway
    with connect(gw.url) as ws:
        for i in range(100):
            ws.send(f"jitter:{i}")
        replies = [ws.recv(timeout=10) for _ in range(100)]
    assert replies == [f"echo:jitter:{i}" for i in range(100)]
    assert [e["body"] for e in recorder.of("MESSAGE")] == [f"jitter:{i}" for i in range(100)]
    assert set(recorder.max_active.values()) == {1}
    message_ids = {e["requestContext"]["messageId"] for e in recorder.of("MESSAGE")}
    assert len(message_ids) == 100


def test_connections_are_handled_concurrently(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, _ = gateway
    # Each handler waits for the other two at a barrier: only concurrent invocations pass it.
    with contextlib.ExitStack() as opened:  # websockets 17 wants connect() used as a context manager
        sockets = [opened.enter_context(connect(gw.url)) for _ in range(3)]
        for ws in sockets:
            ws.send("barrier")
        assert [ws.recv(timeout=10) for ws in sockets] == ["echo:barrier"] * 3
        assert len(set(gw.connection_ids())) == 3


def test_get_and_delete_connection(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    client = recorder.client
    with connect(gw.url, user_agent_header="device-sim/1.0") as ws:
        (connection_id,) = gw.connection_ids()
        before = time.time()
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo:hello"
        info = client.get_connection(ConnectionId=connection_id)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "device-sim/1.0"}
        assert info["ConnectedAt"].timestamp() <= info["LastActiveAt"].timestamp()
        assert info["LastActiveAt"].timestamp() >= before - 0.01
        # The client is stage-aware: an endpoint with the stage's path works the same.
        staged = management_client(f"{gw.management_url}/local")
        assert staged.get_connection(ConnectionId=connection_id)["Identity"]["SourceIp"] == "127.0.0.1"
        answer = client.delete_connection(ConnectionId=connection_id)
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
        closed = closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1005  # API Gateway sends no close code
    (disconnect,) = recorder.wait_for("DISCONNECT")
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1005
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)


def test_the_app_can_close_its_own_connection_from_a_handler(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    with connect(gw.url) as ws:
        ws.send("close")
        closed_by_server(ws)
    recorder.wait_for("DISCONNECT")


def test_closed_and_unknown_connections_are_gone(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    client = recorder.client
    with connect(gw.url) as ws:
        (connection_id,) = gw.connection_ids()
        ws.close(1000, "bye")
    recorder.wait_for("DISCONNECT")
    assert gw.connection_ids() == []
    for call in (
        lambda: client.post_to_connection(ConnectionId=connection_id, Data=b"late"),
        lambda: client.get_connection(ConnectionId=connection_id),
        lambda: client.delete_connection(ConnectionId=connection_id),
        lambda: client.post_to_connection(ConnectionId="Tm9TdWNoQ29ubmU=", Data=b"x"),
    ):
        with pytest.raises(client.exceptions.GoneException) as gone:
            call()
        assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
        assert gone.value.response["Error"]["Code"] == "GoneException"


def test_oversize_message_closes_with_1009_and_runs_disconnect(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    with connect(gw.url) as ws:
        ws.send(b"x" * (128 * 1024))  # exactly 128 KiB is allowed, both ways
        assert ws.recv(timeout=5) == "x" * (128 * 1024)  # UTF-8 data is posted as a text frame
        ws.send("x" * (128 * 1024 + 1))
        closed = closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1009
    (disconnect,) = recorder.wait_for("DISCONNECT")
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1009


def test_posting_more_than_128_kib_is_refused(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    with connect(gw.url):
        (connection_id,) = gw.connection_ids()
        with pytest.raises(recorder.client.exceptions.PayloadTooLargeException):
            recorder.client.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))


def test_idle_connections_are_closed(gateways: GatewayFactory) -> None:
    gw, recorder = gateways(idle_timeout=0.4)
    started = time.monotonic()
    with connect(gw.url) as ws:
        closed = closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1001
    assert 0.35 <= time.monotonic() - started < 3
    (disconnect,) = recorder.wait_for("DISCONNECT")
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1001
    assert disconnect["requestContext"]["disconnectReason"] == "Going away"


def test_messages_either_way_keep_a_connection_active(gateways: GatewayFactory) -> None:
    gw, recorder = gateways(idle_timeout=0.5)
    with connect(gw.url) as ws:
        (connection_id,) = gw.connection_ids()
        for _ in range(6):  # 1.2 s of posts from the app, none from the client
            recorder.client.post_to_connection(ConnectionId=connection_id, Data=b"tick")
            assert ws.recv(timeout=1) == "tick"
            time.sleep(0.2)
        closed = closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1001


def test_connections_are_closed_after_the_maximum_duration(gateways: GatewayFactory) -> None:
    gw, recorder = gateways(idle_timeout=0.5, max_duration=1.0)
    started = time.monotonic()
    with connect(gw.url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() - started < 5:  # busy: never idle
                ws.send("jitter:keepalive")
                ws.recv(timeout=1)
                time.sleep(0.1)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert 0.9 <= time.monotonic() - started < 3
    recorder.wait_for("DISCONNECT")


def test_handler_failures_and_missing_routes_answer_like_api_gateway(gateways: GatewayFactory) -> None:
    gw, recorder = gateways()
    with connect(gw.url) as ws:
        (connection_id,) = gw.connection_ids()
        ws.send("fail")
        error = json.loads(ws.recv(timeout=5))
        assert error["message"] == "Internal server error"
        assert error["connectionId"] == connection_id
        assert error["requestId"] == recorder.of("MESSAGE")[0]["requestContext"]["requestId"]
        ws.send("still open")
        assert ws.recv(timeout=5) == "echo:still open"
    assert gw.stats.message_failures == 1

    no_default, _ = gateways(with_default=False)
    with connect(no_default.url) as ws:
        ws.send("anything")
        assert json.loads(ws.recv(timeout=5))["message"] == "Forbidden"


def test_stopping_the_gateway_closes_connections_with_going_away(gateways: GatewayFactory) -> None:
    gw, recorder = gateways()
    with connect(gw.url) as ws:
        gw.stop()
        closed = closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1001
    (disconnect,) = recorder.of("DISCONNECT")
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1001


def test_handlers_can_come_from_a_resolver() -> None:
    recorder = Recorder()
    app = make_app(recorder)
    seen: list[str] = []

    def resolver(handler_string: str) -> Any:
        seen.append(handler_string)
        return app.handler_map[handler_string.rpartition(".")[2]]

    with WebSocketGateway(app, resolver=resolver) as gw, connect(gw.url):
        pass
    recorder.wait_for("DISCONNECT")
    assert seen == ["app.ws_connect", "app.ws_disconnect"]


def test_management_environment_names_the_endpoint(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, _ = gateway
    assert management_environment(gw) == {"WEBSOCKET_MANAGEMENT_URL": gw.management_url}
    assert re.match(r"^http://127\.0\.0\.1:\d+$", gw.management_url)
    assert re.match(r"^ws://127\.0\.0\.1:\d+$", gw.url)
    with pytest.raises(ValueError):
        WebSocketGateway(Chalice(app_name="x"), host="0.0.0.0")


def test_event_shapes_match_api_gateway_field_by_field(gateway: tuple[WebSocketGateway, Recorder]) -> None:
    gw, recorder = gateway
    t0 = int(time.time() * 1000)
    with connect(f"{gw.url}/?token=abc&x=1&x=2", subprotocols=[WAMP], user_agent_header="sim/2") as ws:
        ws.send("hello")
        ws.recv(timeout=5)
        ws.close(1000, "bye")
    (connect_event,) = recorder.wait_for("CONNECT")
    (message_event,) = recorder.wait_for("MESSAGE")
    (disconnect_event,) = recorder.wait_for("DISCONNECT")
    t1 = int(time.time() * 1000) + 1

    # CONNECT: the upgrade request's headers and query string.
    assert set(connect_event) == {
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "requestContext",
        "isBase64Encoded",
    }
    assert connect_event["isBase64Encoded"] is False
    assert connect_event["queryStringParameters"] == {"token": "abc", "x": "2"}
    assert connect_event["multiValueQueryStringParameters"] == {"token": ["abc"], "x": ["1", "2"]}
    headers = connect_event["headers"]
    assert headers["Host"] == gw.domain_name
    assert headers["Sec-WebSocket-Version"] == "13"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"])) == 16
    assert headers["Sec-WebSocket-Protocol"] == WAMP
    assert headers["User-Agent"] == "sim/2"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Port"] == str(gw.port)
    assert headers["X-Forwarded-Proto"] == "http"
    assert re.match(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$", headers["X-Amzn-Trace-Id"])
    assert "Connection" not in headers and "Upgrade" not in headers
    assert connect_event["multiValueHeaders"] == {k: [v] for k, v in headers.items()}

    contexts = [e["requestContext"] for e in (connect_event, message_event, disconnect_event)]
    connect_ctx, message_ctx, disconnect_ctx = contexts
    assert set(connect_ctx) == CONTEXT_KEYS
    assert set(message_ctx) == CONTEXT_KEYS | {"messageId"}
    assert set(disconnect_ctx) == CONTEXT_KEYS | {"disconnectStatusCode", "disconnectReason"}
    for ctx, route, kind in zip(
        contexts, ("$connect", "$default", "$disconnect"), ("CONNECT", "MESSAGE", "DISCONNECT"), strict=True
    ):
        assert ctx["routeKey"] == route
        assert ctx["eventType"] == kind
        assert ctx["messageDirection"] == "IN"
        assert ctx["stage"] == "local"
        assert ctx["apiId"] == "local"
        assert ctx["domainName"] == gw.domain_name
        assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "sim/2"}
        assert ctx["connectionId"] == connect_ctx["connectionId"]
        assert ID.match(ctx["connectionId"])
        assert ID.match(ctx["requestId"]) and ctx["extendedRequestId"] == ctx["requestId"]
        assert CLF_TIME.match(ctx["requestTime"])
        assert ctx["connectedAt"] == connect_ctx["connectedAt"]
        assert t0 - 1 <= ctx["connectedAt"] <= ctx["requestTimeEpoch"] <= t1
    assert len({ctx["requestId"] for ctx in contexts}) == 3
    assert ID.match(message_ctx["messageId"])

    # MESSAGE: the frame, nothing of the upgrade request.
    assert set(message_event) == {"requestContext", "body", "isBase64Encoded"}
    assert (message_event["body"], message_event["isBase64Encoded"]) == ("hello", False)

    # DISCONNECT: API Gateway's own headers, and the client's close code and reason.
    assert set(disconnect_event) == {"headers", "multiValueHeaders", "requestContext", "isBase64Encoded"}
    assert disconnect_event["headers"] == {
        "Host": gw.domain_name,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    }
    assert disconnect_event["multiValueHeaders"] == {k: [v] for k, v in disconnect_event["headers"].items()}
    assert (disconnect_ctx["disconnectStatusCode"], disconnect_ctx["disconnectReason"]) == (1000, "bye")

    # Powertools' models of API Gateway's WebSocket events accept them as they are.
    APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    APIGatewayWebSocketMessageEventModel.model_validate(message_event)
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect_event)

    # Each invocation gets a Lambda context named after its handler.
    (context,) = recorder.contexts
    assert context.function_name == "ws_connect"
    assert context.get_remaining_time_in_millis() > 0
