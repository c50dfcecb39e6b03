"""Rich output: the live progress panel and the final summary table."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from device_sim.report import Stats


@dataclass(eq=False)
class LiveProgress:
    """Refreshes a small panel of counters while the fleet runs."""

    stats: Stats
    console: Console
    _: KW_ONLY
    devices: int
    duration: float | None
    total_records: int | None
    buffered: Callable[[], int]
    started: float = field(default_factory=time.monotonic, init=False)
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20), init=False)

    def _rate(self) -> float:
        now = time.monotonic()
        self._window.append((now, self.stats.readings_acked))
        first_t, first_n = self._window[0]
        if now - first_t <= 0:
            return 0.0
        return (self.stats.readings_acked - first_n) / (now - first_t)

    def render(self) -> RenderableType:
        s = self.stats
        elapsed = time.monotonic() - self.started
        if self.total_records:
            bar = ProgressBar(total=self.total_records, completed=s.records_generated, width=40)
            caption = f"{s.records_generated}/{self.total_records} records"
        elif self.duration:
            bar = ProgressBar(total=self.duration, completed=min(elapsed, self.duration), width=40)
            caption = f"{elapsed:.0f}/{self.duration:.0f} s"
        else:
            bar = ProgressBar(total=None, width=40)
            caption = f"{elapsed:.0f} s"
        table = Table.grid(padding=(0, 2))
        for _ in range(6):
            table.add_column(justify="right")
        rejected = sum(s.rejected_expected.values()) + sum(s.rejected_unexpected.values())
        table.add_row(
            Text("sent", style="bold"),
            Text("acked", style="bold"),
            Text("rejected", style="bold"),
            Text("retried", style="bold"),
            Text("buffered", style="bold"),
            Text("readings/s", style="bold"),
        )
        table.add_row(
            str(s.records_sent),
            str(s.records_acked),
            str(rejected),
            str(s.retries),
            str(self.buffered()),
            f"{self._rate():.1f}",
        )
        header = Text.assemble(
            ("device_sim ", "bold cyan"),
            f"{self.devices} devices  ",
            (f"5xx {s.server_errors}  throttled {s.throttled}  net {s.transport_errors}", "dim"),
        )
        bar_line = Table.grid(padding=(0, 1))
        bar_line.add_row(bar, Text(caption))
        return Group(header, bar_line, table)

    async def run(self, done: asyncio.Event, refresh: float = 0.25) -> None:
        with Live(self.render(), console=self.console, refresh_per_second=8, transient=False) as live:
            while not done.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=refresh)
                live.update(self.render())


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def summary_table(report: Mapping[str, Any]) -> Table:
    """The end-of-run table (a subset of the JSON report)."""
    table = Table(title="device_sim report", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("devices", report["devices"]),
        ("format", report["format"]),
        ("duration_s", report["duration_s"]),
        ("records sent / acked", f"{report['records_sent']} / {report['records_acked']}"),
        ("readings sent / acked", f"{report['readings_sent']} / {report['readings_acked']}"),
        ("requests", report["requests"]),
        ("retries", report["retries"]),
        ("throttled (429/503)", report["throttled"]),
        ("server errors (5xx)", report["server_errors"]),
        ("transport errors", report["transport_errors"]),
        ("rejected expected", _fmt(report["rejected_expected_by_code"])),
        ("rejected unexpected", _fmt(report["rejected_unexpected_by_code"])),
        ("dropped (buffer full)", report["dropped_buffer"]),
        ("unsent at end", report["records_unsent"]),
        ("faults", _fmt(report["faults"])),
        ("latency p50/p95/p99/max ms", " / ".join(_fmt(v) for v in report["latency_ms"].values())),
        ("readings/s", report["readings_per_second"]),
    ]
    wamp = report.get("wamp")
    if wamp:
        rows[2:2] = [("transport", f"wamp {report.get('ws_url') or ''}".strip())]
        rows.extend(
            [
                ("wamp connected / reconnects", f"{wamp['connected']} / {wamp['reconnects']}"),
                ("wamp published", wamp["published"]),
                ("wamp publish errors", _fmt(wamp["publish_errors_by_code"])),
                ("wamp calls answered", _fmt(wamp["calls"])),
            ]
        )
    verify = report.get("verify")
    if verify:
        for key in (
            "readings_expected",
            "readings_found",
            "missing",
            "duplicated",
            "unexpected",
            "value_mismatches",
            "errors",
        ):
            rows.append((f"verify {key}", verify.get(key)))
    for name, value in rows:
        table.add_row(name, _fmt(value))
    status = "[green]OK[/green]" if report["ok"] else "[red]FAILED[/red]"
    table.add_row("result", status)
    return table
