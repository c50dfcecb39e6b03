"""The simulator against the local stack, with faults injected: nothing acknowledged is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.reconcile import archive_counts, archived_identities, download_archive, stored_identities
from devstack.stack import LocalStack, free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fmt", ["json", "senml-xml"])
def test_fleet_with_faults_loses_nothing_and_archives_everything_once(tmp_path: Path, fmt: str) -> None:
    report = tmp_path / "report.json"
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=tmp_path) as stack:
        command = [
            sys.executable, "-m", "device_sim",
            "--url", stack.api_url, "--admin-token", stack.admin_token,
            "--devices", "12", "--count", "40", "--interval", "0.05", "--batch", "10", "--format", fmt,
            "--duplicate-rate", "0.2", "--malformed-rate", "0.2", "--clock-skew", "900", "--skew-rate", "0.25",
            "--burst-rate", "0.2", "--seed", "5", "--no-progress", "--verify", "--report", str(report),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(report.read_text())
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
