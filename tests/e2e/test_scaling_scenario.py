"""The seed's AutoScaling scenario, end to end on the local stack (time compressed).

A group of desired capacity 1 with +1/-1 policies, 70 %/40 % alarms over 2 periods and a
cooldown; the simulator drives load above one instance's capacity; the report job
scales up to 2 and takes no second step inside the cooldown; the load stops and, after
the cooldown, it scales back to 1. Reports, charts and mails of the run agree.
"""

from __future__ import annotations

import email
import subprocess
import sys
import time
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, free_port

pytestmark = pytest.mark.integration
SCENARIO = Path(__file__).resolve().parent.parent / "fixtures" / "scaling-scenario.json"
PROFILE = SCENARIO.parent / "scenario-profile.yaml"
GROUP = "iotcloud-dev-ingest-fleet"


def _desired(stack: LocalStack) -> int:
    groups = stack.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])


def test_group_scales_up_under_load_and_back_down_after_cooldown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALING_FILE", str(SCENARIO))
    with LocalStack(api_port=free_port(), moto_port=free_port(), state_dir=tmp_path) as stack:
        assert stack.emulator is not None
        assert _desired(stack) == 1
        # 8 devices x 1 record/s x 5 metrics = 40 readings/s: 100 % of one instance, 50 % of two.
        load = subprocess.Popen(
            [sys.executable, "-m", "device_sim", "--url", stack.api_url, "--admin-token", stack.admin_token,
             "--devices", "8", "--interval", "1", "--batch", "2", "--duration", "45", "--no-progress",
             "--profile", str(PROFILE),
             "--report", str(tmp_path / "load.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        runs: list[dict[str, Any]] = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < 150:
                time.sleep(5)
                result = stack.emulator.run_job("scaling_report")
                runs.append({"t": time.monotonic() - started, "capacity": _desired(stack), **result})
                scaled_down = any(r["capacity"] == 2 for r in runs) and runs[-1]["capacity"] == 1
                if scaled_down and load.poll() is not None:
                    break
        finally:
            load.wait(timeout=60)

        capacities = [r["capacity"] for r in runs]
        assert max(capacities) == 2, capacities  # one step up, never a second inside the cooldown
        up_at = next(r["t"] for r in runs if r["capacity"] == 2)
        down_at = next(r["t"] for r in runs if r["t"] > up_at and r["capacity"] == 1)
        assert down_at - up_at >= 30 - 5  # not before the cooldown (5 s: the job's own cadence)
        assert capacities[-1] == 1

        admin = {"Authorization": f"Bearer {stack.admin_token}"}
        with httpx.Client(base_url=stack.api_url, timeout=10) as http:
            listed: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = http.get(
                    "/v1/reports", params={"limit": 7, **({"cursor": cursor} if cursor else {})}, headers=admin
                ).json()
                listed += page["reports"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            assert [r["id"] for r in listed] == sorted((r["report"] for r in runs), reverse=True)
            actions = []
            for run in runs:
                report = http.get(f"/v1/reports/{run['report']}", headers=admin).json()
                (target,) = report["targets"]
                actions.append(target["decision"]["action"])
                assert target["capacity"]["after"] == run["capacity"]
                assert target["applied"] == (target["decision"]["action"] != "hold")
                chart = http.get(f"/v1/reports/{run['report']}/chart", headers=admin)
                assert chart.headers["content-type"].startswith("image/svg+xml")
                assert "<svg" in chart.text
            assert actions.count("scale_up") == 1 and actions.count("scale_down") == 1
            cooldown_holds = [
                http.get(f"/v1/reports/{r['report']}", headers=admin).json()["targets"][0]["decision"]
                for r in runs
                if up_at < r["t"] < up_at + 25
            ]
            assert all(d["action"] == "hold" for d in cooldown_holds)

        mails = sorted((tmp_path / "mail").glob("*.eml"))
        assert len(mails) == len(runs)
        subjects = [email.message_from_bytes(m.read_bytes(), policy=policy.default)["subject"] for m in mails]
        assert sum("scale up" in s for s in subjects) == 1
        assert sum("scale down" in s for s in subjects) == 1
