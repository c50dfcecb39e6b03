"""The local stack over real HTTP: moto server, the app served by Chalice's local server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import LocalStack, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("devstack")
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=state_dir) as running:
        yield running


def test_connection_file_names_url_and_admin_token(stack: LocalStack) -> None:
    doc = json.loads((stack.state_dir / "connection.json").read_text())
    assert doc["api_url"] == stack.api_url
    assert doc["admin_token"] == stack.admin_token


def test_device_posts_and_reads_back_over_http(stack: LocalStack) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        created = http.post("/v1/devices", json={"name": "it-1", "type": "thermometer"}, headers=admin)
        assert created.status_code == 201
        device = created.json()
        auth = {"Authorization": f"Bearer {device['token']}"}
        batch = [{"ts": 1764061200000 + i * 1000, "values": {"temp": 20 + i, "ok": True}} for i in range(10)]
        posted = http.post("/v1/telemetry", json=batch, headers=auth)
        assert posted.status_code == 200, posted.text
        assert posted.json()["accepted"] == 20
        senml = '[{"bn":"urn:x:","bt":1764061300,"n":"hum","u":"%RH","v":40}]'
        posted = http.post("/v1/telemetry", content=senml, headers={**auth, "Content-Type": "application/senml+json"})
        assert posted.status_code == 200, posted.text
        tb = http.post(f"/api/v1/{device['token']}/telemetry", json={"ts": 1764061400000, "values": {"temp": 99}})
        assert tb.status_code == 200, tb.text
        readings = http.get(f"/v1/devices/{device['id']}/telemetry", params={"limit": 7}, headers=auth).json()
        assert len(readings["readings"]) == 7 and readings["next_cursor"]
        everything = http.get(f"/v1/devices/{device['id']}/telemetry", headers=admin).json()["readings"]
        assert len(everything) == 22
        assert {"metric": "urn:x:hum", "unit": "%RH", "ts": 1764061300000, "value": 40} in everything
        state = http.get(f"/v1/devices/{device['id']}/state", headers=auth).json()
        assert {(r["metric"], r["value"]) for r in state["latest"]} >= {("temp", 99), ("ok", True)}
        rejected = http.post(
            "/v1/telemetry", content=b'{"temp": NaN}', headers={**auth, "Content-Type": "application/json"}
        )
        assert rejected.status_code == 422
        assert rejected.json()["error"]["code"] == "validation_failed"
        assert http.post("/v1/telemetry", json={"temp": 1}).status_code == 401
