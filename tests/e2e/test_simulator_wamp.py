"""The simulator's WAMP mode against the local stack: devices publish telemetry over WebSocket
sessions (stored exactly like HTTP posts, checked by --verify), answer HTTP commands through
their registered procedures, and reconnect without losing data when the gateway drops them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("simwamp")
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=state) as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack: LocalStack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def simulate(stack: LocalStack, tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "device_sim", "--url", stack.api_url, "--admin-token", stack.admin_token,
        "--transport", "wamp", "--ws-url", stack.ws_url, "--batch", "5", "--interval", "0.05", "--verify",
        "--report", str(tmp_path / "report.json"), "--tokens-file", str(tmp_path / "tokens.json"), "--no-progress",
        *options,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def device_ids(tmp_path: Path, simulator: subprocess.Popen[str], timeout: float = 30) -> list[str]:
    """The ids the simulator provisioned, from its --tokens-file (written before it connects)."""
    tokens = tmp_path / "tokens.json"
    deadline = time.monotonic() + timeout
    while not tokens.exists():
        assert simulator.poll() is None, simulator.communicate()[0]
        assert time.monotonic() < deadline, "the simulator wrote no tokens file"
        time.sleep(0.02)
    return [d["id"] for d in json.loads(tokens.read_text())["devices"]]


def finish(simulator: subprocess.Popen[str], tmp_path: Path) -> dict[str, Any]:
    try:
        output, _ = simulator.communicate(timeout=120)
    finally:
        if simulator.poll() is None:
            simulator.kill()
    assert simulator.returncode == 0, output
    return dict(json.loads((tmp_path / "report.json").read_text()))


def command(admin: httpx.Client, device_id: str, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """POST /v1/devices/{id}/commands as admin, then poll the command until it completes."""
    sent = admin.post(f"/v1/devices/{device_id}/commands", json=body)
    assert sent.status_code == 202, sent.text
    command_id = sent.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        state = admin.get(f"/v1/devices/{device_id}/commands/{command_id}").json()
        if state["status"] in ("done", "failed", "timeout"):
            return dict(state)
        assert time.monotonic() < deadline, f"command {body} still {state['status']}"
        time.sleep(0.05)


def assert_verified(report: dict[str, Any]) -> None:
    verify = report["verify"]
    assert verify["readings_expected"] > 0
    assert verify["readings_found"] == verify["readings_expected"]
    assert (verify["missing"], verify["duplicated"], verify["unexpected"], verify["value_mismatches"]) == (0, 0, 0, 0)
    assert verify["errors"] == 0


def test_wamp_devices_publish_telemetry_and_answer_http_commands(
    stack: LocalStack, admin: httpx.Client, tmp_path: Path
) -> None:
    # --linger keeps the devices online after their 20 records, so the commands always find them.
    simulator = simulate(stack, tmp_path, "--devices", "5", "--count", "20", "--linger", "4")
    target = device_ids(tmp_path, simulator)[0]
    # Sent as soon as the device exists: if it has not registered its procedures yet the command
    # is queued, and the device fetches it over HTTP once it has joined.
    changed = command(admin, target, {"procedure": "set_interval", "kwargs": {"seconds": 0.25}})
    assert (changed["status"], changed["result"]) == ("done", 0.25)
    status = command(admin, target, {"procedure": "get_status"})
    assert status["status"] == "done", status
    result = status["result"]
    assert set(result) == {"device_id", "records_sent", "records_acked", "interval_s", "uptime_s", "buffered"}
    assert (result["device_id"], result["interval_s"]) == (target, 0.25)
    assert 0 <= result["records_acked"] <= result["records_sent"] <= 20
    assert result["uptime_s"] > 0

    report = finish(simulator, tmp_path)
    assert (report["transport"], report["ws_url"]) == ("wamp", stack.ws_url)
    assert (report["records_generated"], report["records_acked"], report["records_unsent"]) == (100, 100, 0)
    assert report["rejected_by_code"] == {}
    assert_verified(report)  # WAMP-published telemetry is stored exactly like an HTTP post
    wamp = report["wamp"]
    assert wamp["connected"] == 5
    assert wamp["published"] == 20  # 5 devices x 20 records / 5 per batch
    assert wamp["publish_errors_by_code"] == {}
    assert wamp["calls"]["set_interval"] >= 1 and wamp["calls"]["get_status"] >= 1
    assert wamp["calls"]["reboot"] == 0


def test_devices_reconnect_when_the_gateway_drops_them_and_lose_nothing(
    stack: LocalStack, admin: httpx.Client, tmp_path: Path
) -> None:
    gateway = stack.gateway
    assert gateway is not None
    before = set(gateway.connection_ids())
    simulator = simulate(
        stack, tmp_path, "--devices", "3", "--count", "120", "--duplicate-rate", "0.2", "--linger", "2"
    )  # fmt: skip
    devices = device_ids(tmp_path, simulator)
    for device_id in devices:  # answered: the device has joined and registered its procedures
        assert command(admin, device_id, {"procedure": "get_status"})["status"] == "done"
    first = set(gateway.connection_ids()) - before
    assert len(first) == 3
    for connection_id in first:  # what API Gateway does after 10 idle minutes or 2 hours
        closed = httpx.delete(f"{stack.ws_management_url}/@connections/{connection_id}", timeout=10)
        assert closed.status_code == 204
    deadline = time.monotonic() + 30
    while len(set(gateway.connection_ids()) - before - first) < 3:  # every device comes back
        assert time.monotonic() < deadline, "the devices did not reconnect"
        time.sleep(0.05)
    for _ in range(10):
        rebooted = command(admin, devices[1], {"procedure": "reboot"})
        # Sent while the router still held the dropped connection's registration (its $disconnect
        # not yet processed), a command fails with no_available_callee instead of being queued.
        if rebooted["status"] != "failed" or rebooted["error"]["error"] != "wamp.error.no_available_callee":
            break
        time.sleep(0.2)
    assert (rebooted["status"], rebooted["result"]) == ("done", {"rebooting": True})

    report = finish(simulator, tmp_path)
    assert (report["records_acked"], report["records_unsent"]) == (360, 0)
    assert_verified(report)
    wamp = report["wamp"]
    assert wamp["connected"] == 3 and wamp["reconnects"] >= 3
    assert wamp["calls"]["reboot"] == 1 and wamp["reboots"] == 1
    assert wamp["calls"]["get_status"] == 3
    assert report["faults"]["duplicates_acked"] == report["faults"]["duplicates_sent"] > 0  # same key: stored once
