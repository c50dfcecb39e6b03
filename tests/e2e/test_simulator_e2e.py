"""The simulator against the local stack, with faults injected: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from device_sim.config import SimConfig
from device_sim.profiles import load_profile
from device_sim.runner import run_simulation
from devstack.reconcile import archive_counts, archived_identities, download_archive, stored_identities
from devstack.stack import LocalStack, free_port

pytestmark = pytest.mark.integration


# Both doors: the REST API, and the ingest function's Function URL (the ThingsBoard shape puts
# the token in the path, the others in the Authorization header).
@pytest.mark.parametrize(
    ("fmt", "door"), [("json", "api"), ("senml-xml", "api"), ("json", "function-url"), ("thingsboard", "function-url")]
)
def test_fleet_with_faults_loses_nothing_and_archives_everything_once(tmp_path: Path, fmt: str, door: str) -> None:
    report = tmp_path / "report.json"
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=tmp_path) as stack:
        ingest = ["--ingest-url", stack.function_url] if door == "function-url" else []
        command = [
            sys.executable, "-m", "device_sim",
            "--url", stack.api_url, "--admin-token", stack.admin_token, *ingest,
            "--devices", "12", "--count", "40", "--interval", "0.05", "--batch", "10", "--format", fmt,
            "--duplicate-rate", "0.2", "--malformed-rate", "0.2", "--clock-skew", "900", "--skew-rate", "0.25",
            "--burst-rate", "0.2", "--seed", "5", "--no-progress", "--verify", "--report", str(report),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(report.read_text())
        assert result["ingest_url"] == (stack.function_url if door == "function-url" else stack.api_url)
        # Every telemetry post went through the chosen door, and only those.
        assert stack.function_url_invocations == (result["requests"] if door == "function-url" else 0)
        assert result["verify"]["missing"] == 0
        assert result["verify"]["duplicated"] == 0
        assert result["server_errors"] == 0
        assert result["rejected_unexpected"] == 0
        assert result["rejected_expected"] > 0  # the injected faults were refused...
        assert result["faults"]["duplicates_acked"] > 0  # ...and the duplicates harmless
        assert stack.emulator is not None
        stack.emulator.drain(timeout=60)
        conn = stack.connection()
        stored = stored_identities(stack.client("dynamodb"), conn["readings_table"])
        assert len(stored) == result["readings_acked"]
        files = download_archive(stack.client("s3"), conn["archive_bucket"], tmp_path / "archive")
        assert archived_identities(files) == stored
        assert archive_counts(files)["duplicated"] == 0


class DropAfterCreate(httpx.AsyncBaseTransport):
    """Real HTTP, except that the first `drops` answers of POST /v1/devices are read from the
    server (the device is created) and then lost, as a connection reset would lose them."""

    def __init__(self, drops: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.drops = drops
        self.dropped: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        creating = request.method == "POST" and request.url.path == "/v1/devices"
        if creating and response.status_code == 201 and self.drops > 0:
            self.drops -= 1  # before the next await: creates run concurrently
            self.dropped.append(json.loads(request.content)["id"])
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset after the device was created", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_provisioning_survives_lost_create_answers_without_duplicates(tmp_path: Path) -> None:
    devices = 6
    faults = DropAfterCreate(drops=3)
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=tmp_path) as stack:
        cfg = SimConfig(
            profile=load_profile("default"), url=stack.api_url, admin_token=stack.admin_token, devices=devices,
            count=4, interval=0.0, batch=2, progress=False, verify=True, retry_base=0.01, retry_cap=0.05,
        )  # fmt: skip
        report = asyncio.run(run_simulation(cfg, transport=faults))
        listed = httpx.get(
            f"{stack.api_url}/v1/devices", headers={"Authorization": f"Bearer {stack.admin_token}"}, timeout=10
        ).json()["devices"]
    assert len(faults.dropped) == 3
    assert report["exit_code"] == 0, report["failures"]
    assert len(listed) == devices  # no device created twice
    assert set(faults.dropped) <= {d["id"] for d in listed}
    # Every device, the three whose first token was lost included, sent with a token that works.
    assert report["records_acked"] == devices * 4 and report["rejected_by_code"] == {}
    assert report["verify"]["checked_devices"] == devices and report["verify"]["missing"] == 0
