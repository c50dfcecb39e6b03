"""An in-process fake of the iotcloud HTTP API for tests and offline dry runs.

``FakeServer`` is an ``httpx.MockTransport`` handler implementing the contract the
simulator relies on (provisioning, the four telemetry shapes, idempotency keys,
read-back with cursors, the error envelope), plus hooks to inject failures::

    server = FakeServer()
    server.script_telemetry(503, 503)          # the next two telemetry posts answer 503
    server.script_create(Scripted(0, store=True, drop=True))  # create, then drop the connection
    transport = httpx.MockTransport(server.handle)

It is deliberately small and is *not* the real server: it exists so the simulator's
retry, buffering and verification logic can be tested without a network.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from device_sim.model import DEVICE_ID_RE, MAX_FUTURE_MS, METRIC_RE, MIN_TS_MS, Identity, Value

SENML_NS = "{urn:ietf:params:xml:ns:senml}"


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": message or code, "details": []}}
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class Scripted:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    code: str = ""
    store: bool = False  # process (store) the request anyway before answering
    drop: bool = False  # then drop the connection instead of answering (httpx.ReadError)


@dataclass
class FakeServer:
    admin_token: str = "admin-secret"
    now_ms: Any = None  # callable returning "server now" in ms; default wall clock
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    store: dict[str, dict[Identity, Value]] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    telemetry_script: deque[Scripted] = field(default_factory=deque)
    create_script: deque[Scripted] = field(default_factory=deque)
    rotate_script: deque[Scripted] = field(default_factory=deque)
    requests: list[httpx.Request] = field(default_factory=list)
    telemetry_posts: int = 0
    drop_readings: int = 0  # silently lose this many readings (ack them, don't store)
    duplicate_readings: int = 0  # return this many stored readings twice on read-back
    page_size: int = 0  # cap read-back pages (0: use the request's limit)

    # ------------------------------------------------------------------ hooks

    def script_telemetry(self, *statuses: int, retry_after: str | None = "0") -> None:
        """Queue forced answers for the next telemetry posts (then back to normal)."""
        for status in statuses:
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            self.telemetry_script.append(Scripted(status, headers))

    def script_create(self, *answers: Scripted) -> None:
        """Queue forced outcomes for the next POST /v1/devices (then back to normal)."""
        self.create_script.extend(answers)

    def script_rotate(self, *answers: Scripted) -> None:
        """Queue forced outcomes for the next POST /v1/devices/{id}/token."""
        self.rotate_script.extend(answers)

    def readings_of(self, device_id: str) -> dict[Identity, Value]:
        return self.store.get(device_id, {})

    # ------------------------------------------------------------------ dispatch

    def _now(self) -> int:
        if self.now_ms is not None:
            return int(self.now_ms())
        return time.time_ns() // 1_000_000

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        try:
            if request.method == "POST" and path == "/v1/devices":
                return self._scripted(self.create_script, request, self._create_device)
            m = re.fullmatch(r"/v1/devices/([^/]+)/token", path)
            if request.method == "POST" and m:
                device_id = unquote(m.group(1))
                return self._scripted(self.rotate_script, request, lambda r: self._rotate(r, device_id))
            m = re.fullmatch(r"/v1/devices/([^/]+)", path)
            if request.method == "GET" and m:
                self._require_admin(request)
                device_id = unquote(m.group(1))
                if device_id not in self.devices:
                    raise _Reject(404, "device_not_found", device_id)
                return httpx.Response(200, json=self.devices[device_id])
            if request.method == "POST" and path == "/v1/telemetry":
                device_id = self._device_from_bearer(request)
                return self._telemetry(request, device_id)
            m = re.fullmatch(r"/api/v1/([^/]+)/telemetry", path)
            if request.method == "POST" and m:
                tb_device = self.tokens.get(unquote(m.group(1)))
                if tb_device is None:
                    raise _Reject(401, "unauthorized", "unknown device token")
                return self._telemetry(request, tb_device)
            m = re.fullmatch(r"/v1/devices/([^/]+)/telemetry", path)
            if request.method == "GET" and m:
                device_id = unquote(m.group(1))
                if self.tokens.get(self._bearer(request)) != device_id:
                    self._require_admin(request)  # a device may read its own telemetry
                return self._read(request, device_id)
            return error_response(404, "not_found", f"no route {request.method} {path}")
        except _Reject as exc:
            return error_response(exc.status, exc.code, exc.message)

    def _bearer(self, request: httpx.Request) -> str:
        auth: str = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise _Reject(401, "unauthorized", "missing bearer token")
        return auth[len("Bearer ") :]

    def _require_admin(self, request: httpx.Request) -> None:
        if self._bearer(request) != self.admin_token:
            raise _Reject(401, "unauthorized", "admin token required")

    def _device_from_bearer(self, request: httpx.Request) -> str:
        device_id = self.tokens.get(self._bearer(request))
        if device_id is None:
            raise _Reject(401, "unauthorized", "unknown device token")
        return device_id

    # ------------------------------------------------------------------ provisioning

    @staticmethod
    def _scripted(
        script: deque[Scripted], request: httpx.Request, handler: Callable[[httpx.Request], httpx.Response]
    ) -> httpx.Response:
        """The next scripted outcome of a route, else its normal answer."""
        if not script:
            return handler(request)
        scripted = script.popleft()
        if scripted.store:
            handler(request)
        if scripted.drop:
            raise httpx.ReadError("connection dropped by the fake server", request=request)
        code = scripted.code or f"http_{scripted.status}"
        return error_response(scripted.status, code, "scripted", scripted.headers)

    def _create_device(self, request: httpx.Request) -> httpx.Response:
        self._require_admin(request)
        try:
            body = json.loads(request.content)
        except ValueError as exc:
            raise _Reject(400, "malformed_payload", "bad JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise _Reject(422, "validation_failed", "name required")
        device_id = body.get("id", uuid.uuid4().hex)
        if not isinstance(device_id, str) or not DEVICE_ID_RE.match(device_id):
            raise _Reject(422, "validation_failed", "bad id")
        if device_id in self.devices:  # like the server: ids are unique, names are not
            raise _Reject(409, "device_exists", f"device {device_id!r} already exists")
        token = "dev-" + uuid.uuid4().hex
        device = {
            "id": device_id,
            "name": body["name"],
            "type": body.get("type", ""),
            "attributes": body.get("attributes", {}),
        }
        self.devices[device_id] = device
        self.tokens[token] = device_id
        return httpx.Response(201, json={**device, "token": token})

    def _rotate(self, request: httpx.Request, device_id: str) -> httpx.Response:
        self._require_admin(request)
        if device_id not in self.devices:
            raise _Reject(404, "device_not_found", device_id)
        # The old token stops working at once.
        self.tokens = {t: d for t, d in self.tokens.items() if d != device_id}
        token = "dev-" + uuid.uuid4().hex
        self.tokens[token] = device_id
        return httpx.Response(200, json={"id": device_id, "token": token})

    # ------------------------------------------------------------------ telemetry

    def _telemetry(self, request: httpx.Request, device_id: str) -> httpx.Response:
        self.telemetry_posts += 1
        key = request.headers.get("Idempotency-Key")
        if key and (device_id, key) in self.idempotency:
            return httpx.Response(200, json=self.idempotency[(device_id, key)])
        if self.telemetry_script:
            scripted = self.telemetry_script.popleft()
            if scripted.store:
                self._ingest(request, device_id)
            code = scripted.code or {
                429: "throttled",
                503: "storage_unavailable",
                422: "validation_failed",
            }.get(scripted.status, f"http_{scripted.status}")
            return error_response(scripted.status, code, "scripted", scripted.headers)
        answer = self._ingest(request, device_id)
        if key:
            self.idempotency[(device_id, key)] = answer
        return httpx.Response(200, json=answer)

    def _ingest(self, request: httpx.Request, device_id: str) -> dict[str, Any]:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            readings, records = self._parse_json(request.content)
        elif ctype == "application/senml+json":
            readings, records = self._parse_senml(self._load_json(request.content))
        elif ctype == "application/senml+xml":
            readings, records = self._parse_senml(self._load_xml(request.content))
        else:
            raise _Reject(415, "unsupported_media_type", ctype)
        now = self._now()
        for metric, _unit, ts, value in readings:
            if not METRIC_RE.match(metric):
                raise _Reject(422, "validation_failed", f"bad metric {metric!r}")
            if ts > now + MAX_FUTURE_MS or ts < MIN_TS_MS:
                raise _Reject(422, "validation_failed", f"timestamp {ts} out of range")
            if isinstance(value, float) and not math.isfinite(value):
                raise _Reject(422, "validation_failed", "non-finite value")
        stored = self.store.setdefault(device_id, {})
        for metric, unit, ts, value in readings:
            if self.drop_readings > 0:
                self.drop_readings -= 1
                continue
            stored[(metric, unit, ts)] = value
        return {"accepted": len(readings), "records": records, "ignored": 0}

    @staticmethod
    def _load_json(content: bytes) -> Any:
        try:
            return json.loads(content)
        except ValueError as exc:
            raise _Reject(400, "malformed_payload", "bad JSON") from exc

    def _parse_json(self, content: bytes) -> tuple[list[tuple[str, str, int, Value]], int]:
        data = self._load_json(content)
        if not isinstance(data, list):
            raise _Reject(422, "validation_failed", "expected a list")
        out: list[tuple[str, str, int, Value]] = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
                raise _Reject(422, "validation_failed", "bad record")
            ts = item.get("ts")
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise _Reject(422, "validation_failed", "bad ts")
            for metric, value in item["values"].items():
                out.append((metric, "", ts, value))
        return out, len(data)

    @staticmethod
    def _load_xml(content: bytes) -> list[dict[str, Any]]:
        try:
            root = ET.fromstring(content)
        except ET.ParseError as exc:
            raise _Reject(400, "malformed_payload", "bad XML") from exc
        if root.tag != f"{SENML_NS}sensml":
            raise _Reject(422, "validation_failed", "root must be senml:sensml")
        pack: list[dict[str, Any]] = []
        for el in root:
            entry: dict[str, Any] = {}
            for k, v in el.attrib.items():
                if k in ("v", "t", "bt"):
                    entry[k] = float(v)
                elif k == "vb":
                    entry[k] = v == "true"
                else:
                    entry[k] = v
            pack.append(entry)
        return pack

    def _parse_senml(self, pack: Any) -> tuple[list[tuple[str, str, int, Value]], int]:
        if not isinstance(pack, list):
            raise _Reject(422, "validation_failed", "expected a SenML pack")
        out: list[tuple[str, str, int, Value]] = []
        bn, bt, bu = "", 0.0, ""
        now_s = self._now() / 1000
        for rec in pack:
            if not isinstance(rec, dict):
                raise _Reject(422, "validation_failed", "bad SenML record")
            bn = rec.get("bn", bn)
            bt = rec.get("bt", bt)
            bu = rec.get("bu", bu)
            t = bt + rec.get("t", 0.0)
            if t < 2**28:
                t += now_s
            for key in ("v", "vs", "vb"):
                if key in rec:
                    value: Value = rec[key]
                    break
            else:
                raise _Reject(422, "validation_failed", "no value")
            name = str(bn) + str(rec.get("n", ""))
            unit = str(rec.get("u", bu))
            out.append((name, unit, round(t * 1000), value))
        return out, len(pack)

    # ------------------------------------------------------------------ read-back

    def _read(self, request: httpx.Request, device_id: str) -> httpx.Response:
        if device_id not in self.devices:
            raise _Reject(404, "device_not_found", device_id)
        q = request.url.params
        lo = int(q.get("from", "0"))
        hi = int(q.get("to", str(2**62)))
        limit = int(q.get("limit", "1000"))
        if not 1 <= limit <= 10_000:
            raise _Reject(400, "invalid_parameter", "limit")
        if self.page_size:
            limit = min(limit, self.page_size)
        offset = int(q.get("cursor", "0") or "0")
        metric = q.get("metric")
        rows = [
            {"metric": m, "unit": u, "ts": ts, "value": v}
            for (m, u, ts), v in self.store.get(device_id, {}).items()
            if lo <= ts <= hi and (metric is None or m == metric)
        ]
        rows.sort(key=lambda r: (r["ts"], r["metric"], r["unit"]))
        if self.duplicate_readings:
            extra = rows[: self.duplicate_readings]
            rows = sorted(rows + extra, key=lambda r: (r["ts"], r["metric"], r["unit"]))
        page = rows[offset : offset + limit]
        nxt = str(offset + limit) if offset + limit < len(rows) else None
        return httpx.Response(200, json={"device_id": device_id, "readings": page, "next_cursor": nxt})
