"""The gateway itself: the WebSocket server, its connections' lifecycle and the handler invocations.

What it does as API Gateway does:

- `$connect` runs while the upgrade request waits: a 2xx answer accepts the connection,
  any other status rejects the handshake with that status (a failing handler: 500).
  The client's `Sec-WebSocket-Protocol` header reaches the handler in the event's
  headers; the handshake answer carries `Sec-WebSocket-Protocol` only when the
  handler's answer has that header. A client that offered subprotocols and gets none
  back is still connected (browsers then fail the connection themselves).
- `$default` is invoked once per text or binary message, one at a time per connection,
  connections concurrently. Its answer is ignored (Chalice configures no route
  responses); a failing handler makes the gateway send `{"message": "Internal server
  error", ...}` to the client.
- Messages over 128 KiB close the connection with 1009; a connection idle for 10
  minutes (no message either way; pings do not count) or open for 2 hours is closed
  with 1001. `DELETE @connections/{id}` closes it with a close frame without a
  status code. All of these, and the client's own close, invoke `$disconnect` once.

Handlers run in a thread pool, never on the event loop, so they may call back into
this gateway's management API (the app's send path is the one that runs in AWS).
Everything binds to the loopback interface.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import http
import ipaddress
import json
import logging
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalice.app import Chalice
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from devstack.events import Handler, lambda_context
from devstack.serving import LISTEN_BACKLOG
from devstack.wsgateway.events import CONNECT, DEFAULT, DISCONNECT, EventFactory, Peer, aws_id
from devstack.wsgateway.management import ConnectionsApi, ManagementServer

logger = logging.getLogger("devstack.wsgateway")

T = TypeVar("T")

# API Gateway's WebSocket quotas (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
MAX_MESSAGE_BYTES = 128 * 1024
IDLE_TIMEOUT_S = 10 * 60.0
MAX_CONNECTION_S = 2 * 60 * 60.0
INTEGRATION_TIMEOUT_S = 29.0
LAMBDA_TIMEOUT_S = 60  # Chalice's default lambda_timeout

_GOING_AWAY = (1001, "Going away")
_CLOSE_REASONS = {1001: "Going away", 1009: "Message too big", 1011: "Internal server error"}


def _header(headers: Any, name: str) -> str | None:
    """A header of a Lambda proxy answer (`headers` or `multiValueHeaders`), case-insensitively."""
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            if isinstance(value, list):
                return str(value[-1]) if value else None
            return str(value)
    return None


@dataclass
class Connection:
    """An accepted connection: its peer, its socket, and when it was last active."""

    peer: Peer
    ws: ServerConnection
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    last_active_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # Set when the gateway closes the connection: what $disconnect reports.
    closed_by_gateway: tuple[int, str] | None = None

    @property
    def connection_id(self) -> str:
        return self.peer.connection_id

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_at = dt.datetime.now(dt.UTC)

    @property
    def gone(self) -> bool:
        return self.closed_by_gateway is not None or self.ws.state is not State.OPEN


@dataclass
class GatewayStats:
    connects: int = 0
    rejected: int = 0
    messages: int = 0
    message_failures: int = 0
    disconnects: int = 0
    posts: int = 0


class WebSocketGateway:
    """API Gateway's WebSocket API in front of a Chalice app's WebSocket handlers.

    `url` is what clients connect to (`/` or `/{stage}`); `management_url` is the
    endpoint of the `@connections` API, the `endpoint_url` of the app's
    `apigatewaymanagementapi` client. Use as a context manager, or start()/stop().
    """

    def __init__(
        self,
        app: Chalice,
        host: str = "127.0.0.1",
        port: int = 0,
        management_port: int = 0,
        stage: str = "local",
        api_id: str = "local",
        *,
        resolver: Callable[[str], Handler] | None = None,
        idle_timeout: float = IDLE_TIMEOUT_S,
        max_duration: float = MAX_CONNECTION_S,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_workers: int = 16,
        send_timeout: float = 5.0,
    ) -> None:
        host = "127.0.0.1" if host == "localhost" else host
        if not (ipaddress.ip_address(host).version == 4 and ipaddress.ip_address(host).is_loopback):
            raise ValueError(f"the local gateway binds to an IPv4 loopback address only, not {host!r}")
        self.app = app
        self.host = host
        self.port = port
        self.management_port = management_port
        self.stage = stage
        self.api_id = api_id
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self.max_message_bytes = max_message_bytes
        self.max_workers = max_workers
        self.send_timeout = send_timeout
        self.stats = GatewayStats()
        self._resolver = resolver
        self._connections: dict[str, Connection] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, Peer] = weakref.WeakKeyDictionary()
        self._events: EventFactory | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._management: ManagementServer | None = None
        self._management_thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    @property
    def domain_name(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> WebSocketGateway:
        if self._thread is not None:
            return self
        self._pool = concurrent.futures.ThreadPoolExecutor(self.max_workers, thread_name_prefix="wsgateway-handler")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run_loop, name="wsgateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise RuntimeError(f"the WebSocket gateway did not start: {error}") from error
        try:
            self._management = ManagementServer((self.host, self.management_port), ConnectionsApi(self))
        except OSError:
            self.stop()
            raise
        self.management_port = int(self._management.server_address[1])
        self._management_thread = threading.Thread(
            target=self._management.serve_forever, args=(0.05,), name="wsgateway-management", daemon=True
        )
        self._management_thread.start()
        return self

    def stop(self) -> None:
        """Close every connection (each gets $disconnect), then stop serving."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already stopped
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._management is not None:
            self._management.shutdown()
            self._management.server_close()
            self._management = None
            self._management_thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._loop = self._stopping = None

    def __enter__(self) -> WebSocketGateway:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as e:
            if self._ready.is_set():
                logger.exception("the WebSocket gateway stopped")
            else:  # start() is waiting for this
                self._startup_error = e
                self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server: Server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,  # API Gateway negotiates no permessage-deflate
            max_size=self.max_message_bytes,
            ping_interval=None,  # API Gateway sends no pings (it answers the client's)
            open_timeout=INTEGRATION_TIMEOUT_S + 5,
            close_timeout=2,
            server_header=None,
            backlog=LISTEN_BACKLOG,  # asyncio's default is 100
        )
        self.port = int(next(iter(server.sockets)).getsockname()[1])
        self._events = EventFactory(self.stage, self.api_id, self.host, self.port)
        self._ready.set()
        await self._stopping.wait()
        server.close()  # closes every connection with 1001; waits for their $disconnect
        await server.wait_closed()

    def run_on_loop(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine on the gateway's event loop (which owns the sockets) from another thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise ConnectionError("the gateway is not running")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError as e:
            coro.close()
            raise ConnectionError("the gateway is not running") from e
        return future.result(timeout)

    def connection_ids(self) -> list[str]:
        """The ids of the connections that are open now."""

        async def ids() -> list[str]:
            return [cid for cid, conn in self._connections.items() if not conn.gone]

        return self.run_on_loop(ids(), timeout=5)

    def live_connection(self, connection_id: str) -> Connection | None:
        """The open connection with this id (on the event loop), or None when unknown or closing."""
        conn = self._connections.get(connection_id)
        return None if conn is None or conn.gone else conn

    def in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine on the event loop without waiting for it (kept referenced until done)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- invoking the app's handlers ------------------------------------------------------

    def _factory(self) -> EventFactory:
        if self._events is None:  # cannot happen: set before the server accepts anyone
            raise RuntimeError("the gateway is not serving")
        return self._events

    def _handler(self, route_key: str) -> tuple[str, Handler] | None:
        config = self.app.websocket_handlers.get(route_key)
        if config is None:
            return None
        if self._resolver is not None:
            return config.name, self._resolver(config.handler_string)
        # What Lambda invokes: the module attribute the decorator returned, which Chalice
        # also keeps in handler_map (a WebsocketEventSourceHandler).
        return config.name, self.app.handler_map[config.name]

    async def _invoke(self, route_key: str, event: dict[str, Any]) -> Any:
        """Invoke a route's handler in the pool; None when the app has no such handler."""
        found = self._handler(route_key)
        if found is None:
            return None
        name, handler = found
        # A round trip through JSON: the handler gets what Lambda could have delivered.
        payload = json.loads(json.dumps(event))
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: handler(payload, lambda_context(name, LAMBDA_TIMEOUT_S)))

    # --- the WebSocket side ---------------------------------------------------------------

    @staticmethod
    def _reject(ws: ServerConnection, status: int, body: str) -> Response:
        try:
            code = http.HTTPStatus(status)
        except ValueError:
            code = http.HTTPStatus.INTERNAL_SERVER_ERROR
        response = ws.respond(code, body)
        if body.startswith("{"):
            response.headers["Content-Type"] = "application/json"
        return response

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response:
        # Validate the upgrade first, so $connect only runs for a handshake that can complete.
        response = ws.protocol.accept(request)
        if response.status_code != 101:
            return response
        path = urllib.parse.urlsplit(request.path).path.rstrip("/")
        if path not in ("", f"/{self.stage}"):
            return self._reject(ws, 403, json.dumps({"message": "Forbidden"}))
        address = ws.remote_address
        handshake = Peer(
            connection_id=aws_id(),
            connected_at=dt.datetime.now(dt.UTC),
            source_ip=str(address[0]) if address else "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
        )
        try:
            answer = await self._invoke(CONNECT, self._factory().connect(request, handshake))
        except Exception:
            logger.exception("$connect handler failed")
            self.stats.rejected += 1
            return self._reject(ws, 500, json.dumps({"message": "Internal server error"}))
        subprotocol = None
        if answer is not None:
            status = answer.get("statusCode") if isinstance(answer, dict) else None
            if not isinstance(status, int) or not 200 <= status < 300:
                self.stats.rejected += 1
                body = answer.get("body") if isinstance(answer, dict) else None
                text = body if isinstance(body, str) else ""
                return self._reject(ws, status if isinstance(status, int) else 502, text)
            subprotocol = _header(answer.get("headers"), "Sec-WebSocket-Protocol") or _header(
                answer.get("multiValueHeaders"), "Sec-WebSocket-Protocol"
            )
        if subprotocol:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        self._handshakes[ws] = handshake
        self.stats.connects += 1
        return response

    async def _serve_connection(self, ws: ServerConnection) -> None:
        handshake = self._handshakes.pop(ws, None)
        if handshake is None:  # cannot happen: _process_request accepted this connection
            await ws.close(1011, "Internal server error")
            return
        conn = Connection(peer=handshake, ws=ws)
        self._connections[conn.connection_id] = conn
        try:
            await self._receive(conn)
        finally:
            # Gone before $disconnect runs: posting to it from $disconnect gets 410, as in AWS.
            self._connections.pop(conn.connection_id, None)
            code, reason = self._disconnect_status(conn)
            self.stats.disconnects += 1
            try:
                await self._invoke(DISCONNECT, self._factory().disconnect(conn.peer, code, reason))
            except Exception:  # best effort, like API Gateway's
                logger.exception("$disconnect handler failed for %s", conn.connection_id)

    async def _receive(self, conn: Connection) -> None:
        while True:
            now = time.monotonic()
            remaining = min(conn.last_active + self.idle_timeout, conn.opened + self.max_duration) - now
            if remaining <= 0:
                await self.close_connection(conn, _GOING_AWAY)
                return
            try:
                async with asyncio.timeout(remaining):
                    message = await conn.ws.recv()  # cancelling recv() loses nothing
            except TimeoutError:
                continue  # re-check: a post may have kept the connection active
            except ConnectionClosed:
                return
            conn.touch()
            await self._dispatch(conn, message)

    async def _dispatch(self, conn: Connection, message: str | bytes) -> None:
        """One message, one invocation; the next message waits for it (order per connection)."""
        event = self._factory().message(conn.peer, message)
        self.stats.messages += 1
        if self._handler(DEFAULT) is None:
            await self._send_error(conn, "Forbidden", event["requestContext"]["requestId"])
            return
        try:
            await self._invoke(DEFAULT, event)
        except Exception:
            self.stats.message_failures += 1
            logger.exception("$default handler failed for %s", conn.connection_id)
            await self._send_error(conn, "Internal server error", event["requestContext"]["requestId"])

    async def _send_error(self, conn: Connection, message: str, request_id: str) -> None:
        """What API Gateway tells the client when a message found no route or its handler failed."""
        payload = {"message": message, "connectionId": conn.connection_id, "requestId": request_id}
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(json.dumps(payload))

    async def close_connection(self, conn: Connection, status: tuple[int, str] | None) -> None:
        """Close from the gateway's side; `None`: a close frame without a status code."""
        if conn.closed_by_gateway is not None:
            return
        if status is None:
            conn.closed_by_gateway = (1005, "Connection deleted")
            # API Gateway's DELETE @connections sends no close code; websockets sends an
            # empty close frame when given none (its annotation says int).
            close: Callable[..., Coroutine[Any, Any, None]] = conn.ws.close
            await close(None)
        else:
            conn.closed_by_gateway = status
            await conn.ws.close(*status)

    @staticmethod
    def _disconnect_status(conn: Connection) -> tuple[int, str]:
        if conn.closed_by_gateway is not None:
            return conn.closed_by_gateway
        protocol = conn.ws.protocol
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None and (received is None or protocol.close_rcvd_then_sent is False):
            # The gateway's side closed first: server shutdown (1001) or a message too big (1009).
            code = int(sent.code)
            return code, sent.reason or _CLOSE_REASONS.get(code, "")
        if received is None:
            return 1006, "Connection closed abnormally"
        if received.code == 1005:
            return 1005, "Client-side close frame status not set"
        return int(received.code), received.reason
