"""The local stack's Function URL: an HTTP server that invokes the `ingest` function as AWS does.

Each request becomes the event a Lambda Function URL sends (payload format 2.0, built by
`chalicelib.api.function_url.function_url_event`), the function runs with a Lambda context
carrying its configured timeout, and its answer (`statusCode`, `headers`, `cookies`, `body`,
`isBase64Encoded`) is written back. Requests are admitted as on the API's server
(devstack/serving.py), sharing its slots: a bounded number run at once, the rest wait or get 503.
"""

from __future__ import annotations

import base64
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalice.local import LambdaContext

from chalicelib.api.function_url import FUNCTION_NAME, function_url_event
from devstack.serving import LISTEN_BACKLOG, OVERLOADED_CODE, RETRY_AFTER_S, Admission
from infra.stages import function_settings


class FunctionUrlServer(ThreadingHTTPServer):
    """A threaded HTTP server invoking one function per request."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Any, admission: Admission, stage: str) -> None:
        self.handler = app.handler_map[FUNCTION_NAME]
        self.admission = admission
        settings = function_settings(FUNCTION_NAME, stage)
        self.memory_mb = int(settings["memory_mb"])
        self.timeout_ms = int(settings["timeout_s"]) * 1000
        self.invocations = 0  # requests that reached the function (tests check the door was used)
        self._count = threading.Lock()
        super().__init__(address, FunctionUrlHandler)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._count:
            self.invocations += 1
        context = LambdaContext(FUNCTION_NAME, self.memory_mb, max_runtime_ms=self.timeout_ms)
        answer: dict[str, Any] = self.handler(event, context)
        return answer


class FunctionUrlHandler(BaseHTTPRequestHandler):
    """One connection: keep-alive HTTP/1.1, each request one invocation."""

    protocol_version = "HTTP/1.1"
    server: FunctionUrlServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if not self.server.admission.acquire():
            error = {
                "code": OVERLOADED_CODE,
                "message": "the local stack is saturated: retry after Retry-After seconds",
            }
            self._send(
                {
                    "statusCode": HTTPStatus.SERVICE_UNAVAILABLE,
                    "headers": {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER_S)},
                    "body": json.dumps({"error": {**error, "details": []}}),
                }
            )
            return
        try:
            path, _, query = self.path.partition("?")
            headers = {name: value for name, value in self.headers.items()}
            event = function_url_event(self.command, path, query, headers, body, source_ip=self.client_address[0])
            answer = self.server.invoke(event)
        except Exception:
            # What a Function URL answers when its function fails: 502, no body of the app's.
            answer = {
                "statusCode": HTTPStatus.BAD_GATEWAY,
                "headers": {"Content-Type": "application/json"},
                "body": '{"Message":null}',
            }
        finally:
            self.server.admission.release()
        self._send(answer)

    def _send(self, answer: dict[str, Any]) -> None:
        body = answer.get("body") or ""
        data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
        self.send_response(int(answer["statusCode"]))
        for name, value in (answer.get("headers") or {}).items():
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, str(value))
        for cookie in answer.get("cookies") or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _serve


def serve(
    app: Any, host: str, port: int, admission: Admission, stage: str
) -> tuple[FunctionUrlServer, threading.Thread]:
    """Start the Function URL server on a thread; the server (shutdown() stops it) and the thread."""
    server = FunctionUrlServer((host, port), app, admission, stage)
    thread = threading.Thread(target=server.serve_forever, name="function-url", daemon=True)
    thread.start()
    return server, thread
