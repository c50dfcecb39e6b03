"""Bad input: malformed and hostile requests over real HTTP; each refused as documented, nothing stored.

Body-level cases are tests/corpus.py's BAD_INPUTS (shared with the unit and functional
tests), sent to both ingestion paths: `POST /v1/telemetry` with a device token and the
ThingsBoard path with the token in the URL. Header- and request-level cases (below) are
sent as exact bytes on a socket, since no HTTP client would send most of them. After
every case the device's telemetry and state are read back: nothing may be stored.

Some requests never reach the app: the local server (Python's http.server under Chalice's
LocalGateway) answers them itself, as API Gateway would in AWS (with its own answers and
limits). Those cases say so (`origin="server"`) and are checked for their status only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.stack import HOST
from reliability.common import Client, PartResult, RawAnswer, error_code, local_stack, raw_http
from tests.corpus import BAD_INPUTS, BadInput

VALID_BODY = b'{"ts": %d, "values": {"temp": 1}}'


@dataclass(frozen=True)
class Ctx:
    token: str  # the device whose data must stay empty
    other_token: str  # a second device (duplicate-header cases)
    admin: str
    device_id: str
    now_ms: int


@dataclass(frozen=True)
class RequestCase:
    """A request sent as bytes; `status` None means no HTTP answer at all is expected."""

    id: str
    build: Callable[[Ctx], bytes]
    status: int | None
    code: str | None  # the app's error.code (None: not the app's JSON, or no code to check)
    origin: str = "app"  # "app": the app answered; "server": the local server answered before the app
    note: str = ""
    shutdown_write: bool = False
    stored_on_other: bool = False  # accepted, but the data must land on the other device only


def _request(
    method: str = "POST",
    path: str = "/v1/telemetry",
    headers: list[bytes] | None = None,
    body: bytes | None = None,
    content_length: bool = True,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + HOST.encode(), b"Connection: close"]
    lines += headers or []
    if body and content_length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def _post(
    ctx: Ctx, *headers: bytes, auth: bytes | None = None, content_type: bytes = b"application/json"
) -> bytes:
    """A valid JSON telemetry post: the device's token (unless `auth`: b"" for none), then `headers`."""
    authorization = b"Authorization: Bearer " + ctx.token.encode() if auth is None else auth
    sent = [h for h in (authorization, b"Content-Type: " + content_type, *headers) if h]
    return _request("POST", "/v1/telemetry", sent, VALID_BODY % ctx.now_ms)


def _bearer(ctx: Ctx) -> bytes:
    return b"Authorization: Bearer " + ctx.token.encode()


def _get(ctx: Ctx, path: str, method: str = "GET") -> bytes:
    return _request(method, path, [_bearer(ctx)])


def _thingsboard(token: str | None = None) -> Callable[[Ctx], bytes]:
    def build(ctx: Ctx) -> bytes:
        path = f"/api/v1/{token or ctx.admin}/telemetry"
        return _request("POST", path, [b"Content-Type: application/json"], VALID_BODY % ctx.now_ms)

    return build


def _framed(*headers: bytes, body: bytes | None = None) -> Callable[[Ctx], bytes]:
    """A post whose framing headers are given (no Content-Length is added)."""

    def build(ctx: Ctx) -> bytes:
        sent = [_bearer(ctx), b"Content-Type: application/json", *headers]
        return _request("POST", "/v1/telemetry", sent, body or VALID_BODY % ctx.now_ms, content_length=False)

    return build


SERVER = "answered by the local server before the app; API Gateway applies its own limit in AWS"
GATEWAY_405 = "the local gateway's 405; API Gateway answers an undeclared method itself"
FIRST_WINS = "duplicate headers: the local server keeps the first value (API Gateway's `headers` keeps the last)"
INVALID_KEY = (400, "invalid_parameter")
NO_TOKEN = (401, "unauthorized")


def _app(case_id: str, build: Callable[[Ctx], bytes], expected: tuple[int, str], note: str = "") -> RequestCase:
    return RequestCase(case_id, build, expected[0], expected[1], "app", note)


def _server(case_id: str, build: Callable[[Ctx], bytes], status: int | None, note: str) -> RequestCase:
    return RequestCase(case_id, build, status, None, "server", note)


REQUEST_CASES: list[RequestCase] = [
    # --- Authorization abuse
    _app("auth_missing", lambda c: _post(c, auth=b""), NO_TOKEN),
    _app("auth_empty_value", lambda c: _post(c, auth=b"Authorization:"), NO_TOKEN),
    _app("auth_basic_scheme", lambda c: _post(c, auth=b"Authorization: Basic dXNlcjpwYXNz"), NO_TOKEN),
    _app("auth_token_8k", lambda c: _post(c, auth=b"Authorization: Bearer " + b"x" * 8192), NO_TOKEN),
    _app("auth_non_utf8_bytes", lambda c: _post(c, auth=b"Authorization: Bearer \xff\xfe\xfd"), NO_TOKEN),
    _app("auth_nul_byte", lambda c: _post(c, auth=b"Authorization: Bearer ab\x00cd"), NO_TOKEN),
    _app(
        "auth_tab_separator",
        lambda c: _post(c, auth=b"Authorization: Bearer\t" + c.token.encode()),
        NO_TOKEN,
        "RFC 7235 separates the scheme from the credentials with spaces only",
    ),
    _app("auth_trailing_garbage", lambda c: _post(c, auth=_bearer(c) + b" extra"), NO_TOKEN),
    _app(
        "auth_obs_fold",
        lambda c: _post(c, b" " + c.token.encode(), auth=b"Authorization: Bearer"),
        NO_TOKEN,
        "an obsolete folded header line is not joined to the value",
    ),
    _app(
        "auth_duplicate_unknown_first",
        lambda c: _post(c, _bearer(c), auth=b"Authorization: Bearer iotd_unknown-token"),
        NO_TOKEN,
        FIRST_WINS,
    ),
    RequestCase(
        "auth_duplicate_other_device_first",
        lambda c: _post(c, _bearer(c), auth=b"Authorization: Bearer " + c.other_token.encode()),
        200,
        None,
        note=FIRST_WINS + ": the write must land on the first token's device only",
        stored_on_other=True,
    ),
    _app("thingsboard_admin_token", _thingsboard(), (403, "forbidden"), "an admin may not post telemetry"),
    _app("thingsboard_token_600_chars", _thingsboard("x" * 600), NO_TOKEN),
    _app("thingsboard_encoded_slash_token", _thingsboard("abc%2Fdef"), NO_TOKEN),
    # --- Idempotency-Key abuse
    _app("idempotency_key_129_chars", lambda c: _post(c, b"Idempotency-Key: " + b"k" * 129), INVALID_KEY),
    _app("idempotency_key_empty", lambda c: _post(c, b"Idempotency-Key:"), INVALID_KEY),
    _app("idempotency_key_space", lambda c: _post(c, b"Idempotency-Key: a b"), INVALID_KEY),
    _app("idempotency_key_non_ascii", lambda c: _post(c, b"Idempotency-Key: k\xe9y"), INVALID_KEY),
    _app("idempotency_key_control_char", lambda c: _post(c, b"Idempotency-Key: k\x01y"), INVALID_KEY),
    # --- Content-Type abuse
    _app(
        "content_type_non_utf8_charset",
        lambda c: _post(c, content_type=b"application/json; charset=\xff"),
        (415, "unsupported_media_type"),
    ),
    _app(
        "content_type_10k",
        lambda c: _post(c, content_type=b"application/" + b"x" * 10_000),
        (415, "unsupported_media_type"),
    ),
    _app(
        "content_type_duplicate",
        lambda c: _post(c, b"Content-Type: application/json", content_type=b"text/plain"),
        (415, "unsupported_media_type"),
        FIRST_WINS,
    ),
    # --- sizes
    _server("header_value_70k", lambda c: _post(c, b"X-Junk: " + b"a" * 70_000), 431, SERVER),
    _server("headers_120", lambda c: _post(c, *[b"X-H%d: 1" % i for i in range(120)]), 431, SERVER),
    _server("url_70k", lambda c: _get(c, "/v1/devices/" + "a" * 70_000 + "/telemetry"), 414, SERVER),
    _app("url_8k_device_id", lambda c: _get(c, "/v1/devices/" + "a" * 8000 + "/telemetry"), (404, "device_not_found")),
    _app(
        "url_8k_query",
        lambda c: _get(c, f"/v1/devices/{c.device_id}/telemetry?metric=" + "m" * 8000),
        INVALID_KEY,
    ),
    _app("url_nul_in_path", lambda c: _get(c, "/v1/devices/%00/state"), (404, "device_not_found")),
    _app(
        "url_encoded_traversal",
        lambda c: _get(c, "/v1/devices/..%2F..%2Fv1%2Fdevices/state"),
        (404, "device_not_found"),
    ),
    _app("url_non_utf8_query", lambda c: _get(c, f"/v1/devices/{c.device_id}/telemetry?metric=%ff"), INVALID_KEY),
    _app(
        "query_duplicate_limit",
        lambda c: _get(c, f"/v1/devices/{c.device_id}/telemetry?limit=1&limit=99999"),
        INVALID_KEY,
        "the last value of a repeated query parameter counts",
    ),
    # --- methods
    _server("method_put_telemetry", lambda c: _get(c, "/v1/telemetry", "PUT"), 405, GATEWAY_405),
    _server("method_get_telemetry", lambda c: _get(c, "/v1/telemetry"), 405, GATEWAY_405),
    _server("method_delete_telemetry", lambda c: _get(c, "/v1/telemetry", "DELETE"), 405, GATEWAY_405),
    _server("method_patch_device_list", lambda c: _get(c, "/v1/devices", "PATCH"), 405, GATEWAY_405),
    _server("method_head_state", lambda c: _get(c, f"/v1/devices/{c.device_id}/state", "HEAD"), 405, GATEWAY_405),
    _server(
        "method_trace",
        lambda c: _get(c, "/v1/telemetry", "TRACE"),
        501,
        "Python's http.server has no TRACE (or unknown-method) handler: 501; API Gateway refuses it itself",
    ),
    # --- framing
    _server(
        "content_length_not_a_number",
        _framed(b"Content-Length: abc"),
        None,
        "the local server's handler fails on int('abc') and drops the connection: no answer, nothing stored",
    ),
    _app("content_length_negative", _framed(b"Content-Length: -5"), (400, "malformed_payload"), "no body is read"),
    _app("content_length_shorter_than_body", _framed(b"Content-Length: 5"), (400, "malformed_payload")),
    _app(
        "transfer_encoding_chunked",
        _framed(b"Transfer-Encoding: chunked", body=b'18\r\n{"temp": 1, "hum": 2.5}\r\n0\r\n\r\n'),
        (400, "malformed_payload"),
        "the local server does not decode chunked bodies: the app sees an empty body",
    ),
    _app(
        "header_name_with_space",
        lambda c: _request(
            "POST", "/v1/telemetry", [_bearer(c), b"X Bad: 1", b"Content-Type: application/json"], b'{"temp": 1}'
        ),
        (400, "malformed_payload"),
        "the local server stops reading headers at the malformed line: no Content-Length, an empty body",
    ),
]

# Requests the local server cannot model faithfully; not sent (see docs/RELIABILITY.md).
NOT_MODELLED = {
    "content_length_longer_than_body": "http.server reads what arrived when the client half-closes and passes "
    "a complete body on; API Gateway waits for the declared length and times out",
    "content_length_duplicate_differing": "http.server keeps the first of two differing Content-Length headers; "
    "RFC 9112 says reject (API Gateway/CloudFront do)",
}


@dataclass
class Tally:
    sent: int = 0
    passed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def add(self, status: int | None, ok: bool) -> None:
        self.sent += 1
        self.passed += int(ok)
        key = str(status) if status is not None else "no answer"
        self.by_status[key] = self.by_status.get(key, 0) + 1


def _body_case(client: Client, token: str, device_id: str, case: BadInput, thingsboard: bool) -> list[str]:
    path = f"/api/v1/{token}/telemetry" if thingsboard else "/v1/telemetry"
    answer = client.request(
        "POST", path, None if thingsboard else token, content=case.body, content_type=case.content_type
    )
    problems: list[str] = []
    if answer.status_code != case.status:
        problems.append(f"status {answer.status_code}, expected {case.status}: {answer.text[:200]!r}")
    code = error_code(answer)
    if code != case.code:
        problems.append(f"error.code {code!r}, expected {case.code!r}")
    if case.detail_code is not None and code is not None:
        details = [d.get("code") for d in answer.json()["error"].get("details", [])]
        if case.detail_code not in details:
            problems.append(f"no detail {case.detail_code!r} in {details}")
    if not client.nothing_stored(device_id):
        problems.append("something was stored")
    return problems


def _request_case(client: Client, port: int, ctx: Ctx, other_id: str, case: RequestCase) -> tuple[RawAnswer, list[str]]:
    other_before = client.readings(other_id)
    answer = raw_http(HOST, port, case.build(ctx), shutdown_write=case.shutdown_write)
    problems: list[str] = []
    if answer.status != case.status:
        problems.append(f"status {answer.status} ({answer.note}), expected {case.status}: {answer.body[:200]!r}")
    if case.code is not None and answer.json_code() != case.code:
        problems.append(f"error.code {answer.json_code()!r}, expected {case.code!r}")
    if case.status is not None and case.status >= 500 and case.origin == "app":
        problems.append("a 5xx from the app")
    if not client.nothing_stored(ctx.device_id):
        problems.append("something was stored on the device")
    other_after = client.readings(other_id)
    if case.stored_on_other:
        if [(r["metric"], r["ts"]) for r in other_after] != [("temp", ctx.now_ms)]:
            problems.append(f"the accepted write did not land once on the first token's device: {other_after[:3]}")
    elif other_after != other_before:
        problems.append("the other device's data changed")
    return answer, problems


def run(work: Path) -> PartResult:
    result = PartResult("bad input")
    with local_stack(work / "stack") as stack, Client(stack.api_url, stack.admin_token) as client:
        body_device = client.create_device("corpus-body")
        header_device = client.create_device("corpus-headers")
        other_device = client.create_device("corpus-other")
        body_tally, request_tally = Tally(), Tally()
        failed: dict[str, list[str]] = {}
        for case in BAD_INPUTS:
            for thingsboard in (False, True):
                problems = _body_case(client, body_device["token"], body_device["id"], case, thingsboard)
                body_tally.add(case.status, not problems)
                if problems:
                    failed[f"{case.id}{' (thingsboard path)' if thingsboard else ''}"] = problems
        ctx = Ctx(
            token=header_device["token"],
            other_token=other_device["token"],
            admin=stack.admin_token,
            device_id=header_device["id"],
            now_ms=int(time.time() * 1000),
        )
        rows: list[dict[str, Any]] = []
        for request_case in REQUEST_CASES:
            answer, problems = _request_case(client, stack.api_port, ctx, other_device["id"], request_case)
            request_tally.add(answer.status, not problems)
            rows.append(
                {
                    "id": request_case.id,
                    "status": answer.status,
                    "code": answer.json_code(),
                    "origin": request_case.origin,
                    "note": request_case.note or answer.note,
                    "ok": not problems,
                }
            )
            if problems:
                failed[request_case.id] = problems
    distinct = len(BAD_INPUTS) + len(REQUEST_CASES)
    result.figures = {
        "distinct_cases": distinct,
        "body_cases": len(BAD_INPUTS),
        "request_cases": len(REQUEST_CASES),
        "requests_sent": body_tally.sent + request_tally.sent,
        "passed": body_tally.passed + request_tally.passed,
        "answers_by_status": _merge(body_tally.by_status, request_tally.by_status),
        "answered_by_local_server": sum(1 for c in REQUEST_CASES if c.origin == "server"),
    }
    result.details = {"request_cases": rows, "failed": failed, "not_modelled": NOT_MODELLED}
    result.notes = [f"not sent: {name}: {why}" for name, why in NOT_MODELLED.items()]
    result.check(distinct >= 60, f"only {distinct} distinct cases (at least 60 wanted)")
    for name, problems in failed.items():
        result.fail(f"{name}: {'; '.join(problems)}")
    return result


def _merge(*tallies: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for tally in tallies:
        for key, count in tally.items():
            out[key] = out.get(key, 0) + count
    return dict(sorted(out.items()))
