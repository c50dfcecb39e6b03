"""Shared fixtures: the test stage's environment, moto, the Chalice test client."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.domain.tokens import hash_token
from infra.stages import stage_environment
from tests.deploy import iam_recorder

# Before any botocore session exists: record every AWS call the suite makes (tests/deploy).
iam_recorder.install()

# The WAMP router harness fixtures (`h`, `make_harness`), over the requesting module's `make_kit`.
pytest_plugins = ["tests.contracts.router_harness"]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(iam_recorder, "iam_recorder")


ADMIN_TOKEN = "iota_test-admin-token-0123456789abcdef"

# The test stage's variables, set for the whole session so every code path (the
# test client's calls and direct adapter calls) sees the same tables.
_ENV = {
    **stage_environment("test"),
    "ADMIN_TOKEN_HASHES": hash_token(ADMIN_TOKEN),
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}
os.environ.update(_ENV)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in decorator mode with the test stage's tables and bucket created."""
    from moto import mock_aws

    from chalicelib import wiring
    from infra.bootstrap import ensure_tables

    with mock_aws():
        wiring.reset()
        ensure_tables(wiring.bound_settings())
        yield
        wiring.reset()


def _sent(
    token: str | None, body: Any, raw: bytes | None, content_type: str | None, headers: dict[str, str] | None
) -> tuple[dict[str, str], bytes]:
    """The headers and body a test request sends: the bearer token, the type of a body, JSON or raw bytes."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if content_type is not None and (body is not None or raw is not None):
        h["Content-Type"] = content_type
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return h, payload


@dataclass(frozen=True)
class DoorAnswer:
    """A Function URL answer as the tests read HTTP answers: status, headers, body bytes."""

    status_code: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def of(cls, answer: dict[str, Any]) -> DoorAnswer:
        assert set(answer) <= {"statusCode", "headers", "body", "isBase64Encoded", "cookies"}, answer
        body = answer.get("body") or ""
        data = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        return cls(int(answer["statusCode"]), dict(answer.get("headers") or {}), data)


class Api:
    """A thin helper over chalice.test.Client speaking JSON with bearer tokens."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.admin = ADMIN_TOKEN

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        h, payload = _sent(token, body, raw, content_type, headers)
        return self.client.http.request(method, path, headers=h, body=payload)

    def door(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> DoorAnswer:
        """The same request through the Function URL door: the `ingest` function given the
        Function URL's event (payload format 2.0), as AWS invokes it, with its configured timeout
        (chalice.test's invoke gives every function 3 s, less than one DynamoDB attempt's budget)."""
        from chalice.local import LambdaContext

        from app import app
        from chalicelib.api.function_url import FUNCTION_NAME
        from devstack.function_url import function_url_event
        from infra.stages import function_timeout_s

        h, payload = _sent(token, body, raw, content_type, headers)
        raw_path, _, raw_query = path.partition("?")
        event = function_url_event(method, raw_path, raw_query, h, payload)
        context = LambdaContext(FUNCTION_NAME, memory_size=0, max_runtime_ms=function_timeout_s(FUNCTION_NAME) * 1000)
        return DoorAnswer.of(app.handler_map[FUNCTION_NAME](event, context))

    def create_device(self, name: str = "sensor", **extra: Any) -> dict[str, Any]:
        answer = self.request("POST", "/v1/devices", self.admin, {"name": name, **extra})
        assert answer.status_code == 201, answer.body
        return json.loads(answer.body)

    def post(
        self,
        token: str,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        return self.request("POST", "/v1/telemetry", token, body, raw, content_type, headers)

    def readings(self, device_id: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every reading of a device, following cursors."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            qs = "&".join(f"{k}={v}" for k, v in query.items())
            answer = self.request("GET", f"/v1/devices/{device_id}/telemetry?{qs}", token or self.admin)
            assert answer.status_code == 200, answer.body
            doc = json.loads(answer.body)
            out.extend(doc["readings"])
            cursor = doc["next_cursor"]
            if not cursor:
                return out


@pytest.fixture
def api(aws: None) -> Iterator[Api]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="test") as client:
        yield Api(client)


@pytest.fixture
def device(api: Api) -> dict[str, Any]:
    return api.create_device("thermo-1", type="thermometer")
