"""The local stack's Function URL: an HTTP server that invokes the `ingest` function as AWS does.

Each request becomes the event a Lambda Function URL sends (payload format 2.0,
`function_url_event`, which the tests and the bench build events with too), the function runs with a Lambda context
carrying its configured timeout, and its answer (`statusCode`, `headers`, `cookies`, `body`,
`isBase64Encoded`) is written back. Requests are admitted as on the API's server
(devstack/serving.py), sharing its slots: a bounded number run at once, the rest wait or get 503.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from chalice.local import LambdaContext

from chalicelib.api.function_url import FUNCTION_NAME, PAYLOAD_VERSION
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


def function_url_event(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    domain: str = "localhost",
) -> dict[str, Any]:
    """The event a Function URL sends its function for one HTTP request (payload format 2.0).

    `headers`: names in any case (lower-cased here, as the URL does); the body is sent base64
    encoded unless it is text, as the URL does.
    """
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers.items():
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    text = _as_text(lowered.get("content-type", ""), body)
    now = time.time()
    event: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": text is None,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = {
            k: ",".join(v) for k, v in parse_qs(raw_query, keep_blank_values=True).items()
        }
    if body:
        event["body"] = text if text is not None else base64.b64encode(body).decode()
    return event


def _as_text(content_type: str, body: bytes) -> str | None:
    """The body as text if its type is textual and it is UTF-8, else None (sent base64 encoded)."""
    kind = content_type.split(";")[0].strip().lower()
    if not (kind.startswith("text/") or kind.endswith(("json", "xml")) or kind == ""):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None
