"""The `@connections` management API: what the app's `apigatewaymanagementapi` client calls.

`POST` sends the body as one frame (text if it is UTF-8, else binary), `GET` describes the
connection, `DELETE` closes it; an unknown or closed connection answers 410 with
`x-amzn-ErrorType: GoneException`, so botocore raises `GoneException`. Paths are accepted with
or without the stage segment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from devstack.serving import LISTEN_BACKLOG
from devstack.wsgateway.events import aws_id

if TYPE_CHECKING:
    from devstack.wsgateway.server import WebSocketGateway

_CONNECTIONS_PATH = re.compile(r"^(?:/[^/@]+)?/@connections/([^/]+)/?$")
_ERRORS = {
    403: "ForbiddenException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConnectionsApi:
    """The three @connections operations over a running gateway's connections.

    They run on the gateway's event loop (which owns the sockets); `call` is what the HTTP
    server's threads use.
    """

    def __init__(self, gateway: WebSocketGateway) -> None:
        self.gateway = gateway

    async def _post(self, connection_id: str, data: bytes) -> int:
        conn = self.gateway.live_connection(connection_id)
        if conn is None:
            return 410
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        try:
            async with asyncio.timeout(self.gateway.send_timeout):
                await conn.ws.send(payload)
        except ConnectionClosed:
            return 410
        except TimeoutError:  # the client does not read: its buffer is full
            return 429
        conn.touch()
        self.gateway.stats.posts += 1
        return 200

    async def _describe(self, connection_id: str) -> dict[str, Any] | None:
        conn = self.gateway.live_connection(connection_id)
        if conn is None:
            return None
        # The wire names of GetConnection's output (botocore maps them to ConnectedAt, ...).
        return {
            "connectedAt": _iso(conn.peer.connected_at),
            "identity": {"sourceIp": conn.peer.source_ip, "userAgent": conn.peer.user_agent or ""},
            "lastActiveAt": _iso(conn.last_active_at),
        }

    async def _delete(self, connection_id: str) -> int:
        conn = self.gateway.live_connection(connection_id)
        if conn is None:
            return 410
        # Answer at once; the closing handshake and $disconnect follow.
        self.gateway.in_background(self.gateway.close_connection(conn, None))
        return 204

    def call(self, method: str, connection_id: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        """One @connections call (from the management server's threads): status and JSON answer."""
        gateway = self.gateway
        try:
            if method == "POST":
                if len(body) > gateway.max_message_bytes:
                    return 413, None
                return gateway.run_on_loop(self._post(connection_id, body), gateway.send_timeout + 5), None
            if method == "GET":
                doc = gateway.run_on_loop(self._describe(connection_id), 5)
                return (200, doc) if doc is not None else (410, None)
            if method == "DELETE":
                return gateway.run_on_loop(self._delete(connection_id), 5), None
        except (ConnectionError, concurrent.futures.TimeoutError):
            return 410, None
        return 405, None


class ManagementServer(ThreadingHTTPServer):
    """The HTTP endpoint of the @connections API (the app client's `endpoint_url`)."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG  # the app's threads all post here at once

    def __init__(self, address: tuple[str, int], api: ConnectionsApi) -> None:
        self.api = api
        super().__init__(address, _ManagementHandler)


class _ManagementHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server: ManagementServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        match = _CONNECTIONS_PATH.match(urllib.parse.urlsplit(self.path).path)
        if match is None:
            self._answer(404, None)
            return
        connection_id = urllib.parse.unquote(match.group(1))
        status, doc = self.server.api.call(method, connection_id, body)
        self._answer(status, doc)

    def _answer(self, status: int, doc: dict[str, Any] | None) -> None:
        error = _ERRORS.get(status)
        payload = b""
        if error is not None:
            payload = json.dumps({"message": error}).encode()
        elif doc is not None:
            payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("x-amzn-RequestId", aws_id())
        if error is not None:
            self.send_header("x-amzn-ErrorType", error)
        if payload or status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def management_environment(gateway: WebSocketGateway) -> dict[str, str]:
    """What the app needs to reach this gateway's @connections API."""
    return {"WEBSOCKET_MANAGEMENT_URL": gateway.management_url}
