"""The local stack under a 100-device fleet, started as a user starts it (issue 13, item 8).

`python -m devstack up` in its own process (what `make up` runs), then the simulator command
the README gives for trying it: 100 devices, one record a second each, batches of 5 (20
requests a second), every acknowledged reading read back (`--verify`). The stack process's
resident memory and thread count are sampled through the run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from devstack.stack import free_port

DEVICES = 100
DURATION_S = 30
INTERVAL_S = 1
BATCH = 5
SAMPLE_S = 0.25
START_TIMEOUT_S = 120


def command(url: str, token: str, report: Path, devices: int = DEVICES, duration: float = DURATION_S) -> list[str]:
    return [
        sys.executable, "-m", "device_sim", "--url", url, "--admin-token", token,
        "--devices", str(devices), "--duration", str(duration), "--interval", str(INTERVAL_S),
        "--batch", str(BATCH), "--verify", "--no-progress", "--report", str(report),
    ]  # fmt: skip


def _status(pid: int) -> tuple[int, int] | None:
    """(VmRSS in kB, threads) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


class _Sampler:
    """Peak RSS and thread count of a process, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_kb = 0
        self.peak_threads = 0
        self.start_rss_kb = (_status(pid) or (0, 0))[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            status = _status(self.pid)
            if status is None:
                return
            self.peak_rss_kb = max(self.peak_rss_kb, status[0])
            self.peak_threads = max(self.peak_threads, status[1])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _start_stack(state_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ports = [str(free_port()) for _ in range(3)]
    stack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--state-dir",
            str(state_dir),
            "up",
            "--api-port",
            ports[0],
            "--moto-port",
            ports[1],
            "--ws-port",
            ports[2],
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    connection = state_dir / "connection.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not connection.exists():
        if stack.poll() is not None or time.monotonic() > deadline:
            stack.kill()
            raise RuntimeError(f"the local stack did not start (exit {stack.poll()})")
        time.sleep(0.2)
    return stack, json.loads(connection.read_text())


def _moto_pid(stack_pid: int) -> int | None:
    """The stack's moto server: its child process running moto.server."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == stack_pid and b"devstack.motoserver" in cmdline:
            return int(entry.name)
    return None


def run(devices: int = DEVICES, duration: float = DURATION_S) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="iotcloud-bench-fleet-") as tmp:
        work = Path(tmp)
        stack, conn = _start_stack(work / "devstack")
        stack_s = time.perf_counter() - started
        try:
            moto = _moto_pid(stack.pid)
            samplers = {"stack": _Sampler(stack.pid), **({"moto": _Sampler(moto)} if moto else {})}
            report = work / "simulator.json"
            done = subprocess.run(
                command(conn["api_url"], conn["admin_token"], report, devices, duration),
                capture_output=True,
                text=True,
                timeout=duration + 600,
            )
            for sampler in samplers.values():
                sampler.stop()
        finally:
            stack.send_signal(signal.SIGTERM)  # devstack up stops everything on SIGTERM
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stack.kill()
        sim = json.loads(report.read_text()) if report.exists() else {}
    verify = sim.get("verify") or {}
    figures: dict[str, Any] = {
        "command": " ".join(command("<api url>", "<admin token>", Path("<report>"), devices, duration)[1:]),
        "devices": devices,
        "duration_s": duration,
        "interval_s": INTERVAL_S,
        "batch": BATCH,
        "requests": sim.get("requests"),
        "readings_sent": sim.get("readings_sent"),
        "readings_acked": sim.get("readings_acked"),
        "transport_errors": sim.get("transport_errors"),
        "answers_503": sim.get("throttled"),
        "server_errors": sim.get("server_errors"),
        "retries": sim.get("retries"),
        "latency_ms": sim.get("latency_ms"),
        "verify_missing": verify.get("missing"),
        "simulator_exit_code": done.returncode,
        "ok": done.returncode == 0 and verify.get("missing") == 0,
        "stack_start_s": round(stack_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    for name, sampler in samplers.items():
        figures[f"{name}_peak_rss_mb"] = round(sampler.peak_rss_kb / 1024, 1)
        figures[f"{name}_start_rss_mb"] = round(sampler.start_rss_kb / 1024, 1)
        figures[f"{name}_peak_threads"] = sampler.peak_threads
    if done.returncode != 0:
        figures["stderr_tail"] = done.stderr[-2000:]
        figures["failures"] = sim.get("failures")
    return {f"devices_{devices}": figures}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
