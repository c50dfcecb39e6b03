"""The settings of one simulator run (built by the CLI, or directly by tests)."""

from __future__ import annotations

from dataclasses import dataclass

from device_sim.model import FORMATS
from device_sim.profiles import Profile

DEFAULT_URL = "http://127.0.0.1:8000"
TRANSPORTS: tuple[str, ...] = ("http", "wamp")
# Where HTTP telemetry goes: the REST API (--url), or the ingest function's Function URL.
DOORS: tuple[str, ...] = ("api", "function-url")
DEFAULT_REBOOT_PAUSE = 1.0  # seconds a device stops producing after the `reboot` procedure
DEFAULT_DEVICES = 10
DEFAULT_INTERVAL = 1.0
DEFAULT_SKEW_RATE = 0.2  # fraction of devices skewed when --clock-skew is given
DEFAULT_PROVISION_TIMEOUT = 60.0  # seconds provisioning keeps retrying a device
SKEW_TOLERANCE_MS = 5_000  # clock slack when deciding a skewed batch may be refused


@dataclass
class SimConfig:
    profile: Profile
    url: str = DEFAULT_URL
    ingest_url: str | None = None  # telemetry posts go here when set (a Function URL), else to url
    admin_token: str = ""
    devices: int | None = None  # None: sum of profile counts, else DEFAULT_DEVICES
    duration: float = 30.0
    count: int | None = None  # records per device; overrides duration
    interval: float | None = None  # None: per device type, else DEFAULT_INTERVAL
    batch: int = 10
    fmt: str = "json"
    seed: int = 1
    start_ms: int | None = None
    report_path: str | None = None
    verify: bool = False
    concurrency: int = 64
    tokens_file: str | None = None
    progress: bool = True
    duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    clock_skew: float = 0.0  # seconds, max absolute
    skew_rate: float = DEFAULT_SKEW_RATE
    burst_rate: float = 0.0
    buffer_limit: int = 10_000
    timeout: float = 10.0
    max_retries: int = 5
    retry_base: float = 0.2  # backoff base delay, seconds
    retry_cap: float = 10.0  # backoff cap, seconds
    drain_timeout: float = 60.0
    provision_timeout: float = DEFAULT_PROVISION_TIMEOUT
    verify_rechecks: tuple[float, ...] = (1.0, 3.0)  # waits before re-reading missing data
    transport: str = "http"  # "http": POST /v1/telemetry; "wamp": publish over WebSocket
    ws_url: str | None = None  # the WebSocket (WAMP) API, for transport "wamp"
    linger: float = 0.0  # wamp: seconds sessions stay open answering calls after sending
    reboot_pause: float = DEFAULT_REBOOT_PAUSE

    def fleet_size(self) -> int:
        if self.devices is not None:
            return self.devices
        return self.profile.default_devices() or DEFAULT_DEVICES

    def validate(self) -> list[str]:
        """Problems with the settings (empty when valid)."""
        return self._load_problems() + self._timing_problems() + self._transport_problems() + self._fault_problems()

    def _load_problems(self) -> list[str]:
        """The target URL, the wire format and how much is sent."""
        problems: list[str] = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"--url must start with http:// or https://, got {self.url!r}")
        if self.ingest_url is not None and not self.ingest_url.startswith(("http://", "https://")):
            problems.append(f"--ingest-url must start with http:// or https://, got {self.ingest_url!r}")
        if self.fmt not in FORMATS:
            problems.append(f"--format must be one of {', '.join(FORMATS)}")
        if self.devices is not None and self.devices < 1:
            problems.append("--devices must be >= 1")
        if self.count is None and self.duration <= 0:
            problems.append("--duration must be > 0")
        if self.count is not None and self.count < 1:
            problems.append("--count must be >= 1")
        if self.interval is not None and self.interval < 0:
            problems.append("--interval must be >= 0")
        if self.batch < 1:
            problems.append("--batch must be >= 1")
        if self.concurrency < 1:
            problems.append("--concurrency must be >= 1")
        if self.buffer_limit < self.batch:
            problems.append("--buffer-limit must be >= --batch")
        return problems

    def _timing_problems(self) -> list[str]:
        """Timeouts, retries, buffering and the clock."""
        problems: list[str] = []
        if self.timeout <= 0:
            problems.append("--timeout must be > 0")
        if self.max_retries < 0:
            problems.append("--max-retries must be >= 0")
        if self.clock_skew < 0:
            problems.append("--clock-skew must be >= 0 (it is a maximum absolute skew)")
        if self.drain_timeout < 0:
            problems.append("--drain-timeout must be >= 0")
        if self.provision_timeout <= 0:
            problems.append("--provision-timeout must be > 0")
        return problems

    def _transport_problems(self) -> list[str]:
        """The transport and what it needs."""
        problems: list[str] = []
        if self.transport not in TRANSPORTS:
            problems.append(f"--transport must be one of {', '.join(TRANSPORTS)}")
        if self.transport == "wamp":
            if not self.ws_url or not self.ws_url.startswith(("ws://", "wss://")):
                problems.append(f"--ws-url must start with ws:// or wss://, got {self.ws_url!r}")
            if self.fmt != "json":
                problems.append("--transport wamp publishes JSON records: --format must be json")
        if self.ingest_url is not None and self.transport != "http":
            problems.append("--ingest-url and --door function-url apply to --transport http only")
        if self.linger < 0:
            problems.append("--linger must be >= 0")
        if self.linger > 0 and self.transport != "wamp":
            problems.append("--linger applies to --transport wamp only")
        return problems

    def _fault_problems(self) -> list[str]:
        """The fault rates: probabilities."""
        problems: list[str] = []
        for name, value in (
            ("--duplicate-rate", self.duplicate_rate),
            ("--malformed-rate", self.malformed_rate),
            ("--skew-rate", self.skew_rate),
            ("--burst-rate", self.burst_rate),
        ):
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        return problems
