"""Hand-written SVG charts for scaling reports (no plotting library: import time matters).

``multi_target_chart`` draws one panel per target, stacked: utilization % per period (mean
line, lighter p95 line, max dots) against a left axis, the scale-up and scale-down
thresholds, and capacity (``(ts_ms, capacity)`` steps, each holding until the next) as a
step line against a right axis, with UTC HH:MM time labels and a legend. A period without
data breaks the lines; with no data at all the axes, thresholds and a "no data" note are
drawn. The output depends only on the input (fixed number formatting, no ids from the
clock or randomness), so it can be compared byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.domain.scaling.periods import PeriodStats

_Scale = Callable[[float], float]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_MS = 60_000
_TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_MAX_TIME_TICKS = 8
_DEFAULT_PERIOD_MS = 60_000

MEAN_COLOR = "#1f77b4"
P95_COLOR = "#9ecae1"
MAX_COLOR = "#08519c"
CAPACITY_COLOR = "#ff7f0e"
UP_COLOR = "#d62728"
DOWN_COLOR = "#2ca02c"
GRID_COLOR = "#e5e5e5"
TEXT_COLOR = "#333333"

_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 56, 36, 62


@dataclass(frozen=True)
class ChartPanel:
    """One target's chart inputs, for ``multi_target_chart``."""

    title: str
    stats: Sequence[PeriodStats]
    up_threshold: float
    down_threshold: float
    capacities: Sequence[tuple[int, int]] = ()


def multi_target_chart(
    panels: Sequence[ChartPanel], width: int = 800, panel_height: int = 300, title: str = "Scaling report"
) -> str:
    """Several targets' charts stacked in one SVG document, one panel each."""
    if not panels:
        return _document(title, width, panel_height, _no_data_only(title, width, panel_height))
    body: list[str] = []
    for index, panel in enumerate(panels):
        y = index * panel_height
        body.append(f'<svg x="0" y="{y}" width="{width}" height="{panel_height}" viewBox="0 0 {width} {panel_height}">')
        body.extend(_panel(panel, width, panel_height))
        body.append("</svg>")
    return _document(title, width, panel_height * len(panels), body)


def _document(title: str, width: int, height: int, body: Sequence[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img" '
        f'aria-label="{escape(title)}">'
    )
    lines = [
        head,
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    lines.extend(body)
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def _no_data_only(title: str, width: int, height: int) -> list[str]:
    return [
        f'<text x="{_LEFT}" y="22" font-size="14" font-weight="bold" fill="{TEXT_COLOR}">{escape(title)}</text>',
        f'<text class="no-data" x="{_f(width / 2)}" y="{_f(height / 2)}" text-anchor="middle" '
        f'font-size="14" fill="#888888">no data</text>',
    ]


@dataclass(frozen=True)
class _Frame:
    """A panel's plot area and its three scales: utilization % (left), capacity (right), time."""

    x0: float
    x1: float
    y0: float
    y1: float
    u_step: float
    u_max: float
    c_step: int
    c_max: int
    t_start: int
    t_end: int

    def uy(self, v: float) -> float:
        return self.y1 - (v / self.u_max) * (self.y1 - self.y0)

    def cy(self, c: float) -> float:
        return self.y1 - (c / self.c_max) * (self.y1 - self.y0)

    def tx(self, t: float) -> float:
        return self.x0 + (t - self.t_start) / (self.t_end - self.t_start) * (self.x1 - self.x0)


def _frame(
    panel: ChartPanel, width: int, height: int, stats: Sequence[PeriodStats], period_ms: int, values: Sequence[float]
) -> _Frame:
    x0, x1 = float(_LEFT), float(width - _RIGHT)
    y0, y1 = float(_TOP), float(height - _BOTTOM)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("chart too small")
    top = max([100.0, panel.up_threshold, panel.down_threshold, *values])
    u_step = _nice_step(top, 5)
    caps = sorted(panel.capacities)
    c_top = max([c for _, c in caps], default=1)
    c_step = max(1, math.ceil((c_top + 1) / 5))
    if stats:
        t_start, t_end = stats[0].start_ms, stats[-1].start_ms + period_ms
    elif caps:
        t_start, t_end = caps[0][0], caps[-1][0] + _DEFAULT_PERIOD_MS
    else:
        t_start, t_end = 0, _DEFAULT_PERIOD_MS
    return _Frame(
        x0, x1, y0, y1, u_step, math.ceil(top / u_step) * u_step, c_step,
        math.ceil((c_top + 1) / c_step) * c_step, t_start, t_end,
    )  # fmt: skip


def _panel(panel: ChartPanel, width: int, height: int) -> list[str]:
    stats = sorted(panel.stats, key=lambda s: s.start_ms)
    period_ms = _period_ms(stats)
    values = [v for s in stats for v in (s.mean, s.p95, s.maximum) if v is not None]
    f = _frame(panel, width, height, stats, period_ms, values)
    out = [
        f'<text x="{_f(f.x0)}" y="22" font-size="14" font-weight="bold" fill="{TEXT_COLOR}">'
        f"{escape(panel.title)}</text>"
    ]
    out += _left_axis(f)
    out += _right_axis(f, width)
    out += _time_axis(f, bool(stats or panel.capacities))
    out += _thresholds(f, panel)
    steps = _step_path(sorted(panel.capacities), f.t_start, f.t_end, f.tx, f.cy)
    if steps:
        out.append(
            f'<path class="series-capacity" d="{steps}" fill="none" stroke="{CAPACITY_COLOR}" stroke-width="1.8"/>'
        )
    out += _utilization(f, stats, period_ms) if values else _no_data(f)
    out += _legend(f, panel, height)
    return out


def _left_axis(f: _Frame) -> list[str]:
    """The grid and the left axis (utilization %)."""
    out = ['<g class="axis-left">']
    for k in range(round(f.u_max / f.u_step) + 1):
        v = k * f.u_step
        y = f.uy(v)
        out.append(f'<line x1="{_f(f.x0)}" y1="{_f(y)}" x2="{_f(f.x1)}" y2="{_f(y)}" stroke="{GRID_COLOR}"/>')
        out.append(f'<text x="{_f(f.x0 - 6)}" y="{_f(y + 4)}" text-anchor="end" fill="{TEXT_COLOR}">{_pct(v)}</text>')
    out.append(_axis_title(14, _f((f.y0 + f.y1) / 2), -90, TEXT_COLOR, "utilization %"))
    out.append("</g>")
    return out


def _right_axis(f: _Frame, width: int) -> list[str]:
    """The right axis (capacity)."""
    out = ['<g class="axis-right">']
    for c in range(0, f.c_max + 1, f.c_step):
        out.append(f'<text x="{_f(f.x1 + 6)}" y="{_f(f.cy(c) + 4)}" fill="{CAPACITY_COLOR}">{c}</text>')
    out.append(_axis_title(width - 12, _f((f.y0 + f.y1) / 2), 90, CAPACITY_COLOR, "capacity"))
    out.append("</g>")
    return out


def _axis_title(x: int, y: str, angle: int, color: str, title: str) -> str:
    """A vertical axis's title at (x, y), turned by `angle` degrees about that point."""
    return (
        f'<text x="{x}" y="{y}" text-anchor="middle" fill="{color}" transform="rotate({angle} {x} {y})">{title}</text>'
    )


def _time_axis(f: _Frame, ticks: bool) -> list[str]:
    """The time axis (UTC HH:MM ticks when there is anything to place) and the plot's frame."""
    out = ['<g class="axis-time">']
    if ticks:
        step_ms = _time_step_ms(f.t_end - f.t_start)
        first_tick = -(-f.t_start // step_ms) * step_ms
        for t in range(first_tick, f.t_end + 1, step_ms):
            x = f.tx(t)
            out.append(f'<line x1="{_f(x)}" y1="{_f(f.y1)}" x2="{_f(x)}" y2="{_f(f.y1 + 4)}" stroke="{TEXT_COLOR}"/>')
            out.append(
                f'<text x="{_f(x)}" y="{_f(f.y1 + 16)}" text-anchor="middle" fill="{TEXT_COLOR}">{_hhmm(t)}</text>'
            )
        out.append(f'<text x="{_f(f.x1)}" y="{_f(f.y1 + 30)}" text-anchor="end" fill="{TEXT_COLOR}">UTC</text>')
    out.append(
        f'<rect x="{_f(f.x0)}" y="{_f(f.y0)}" width="{_f(f.x1 - f.x0)}" height="{_f(f.y1 - f.y0)}" '
        'fill="none" stroke="#999999"/>'
    )
    out.append("</g>")
    return out


def _thresholds(f: _Frame, panel: ChartPanel) -> list[str]:
    """The scale-up and scale-down thresholds, dashed."""
    out: list[str] = []
    for cls, label, value, color in (
        ("threshold-up", f"scale-up {_pct(panel.up_threshold)}", panel.up_threshold, UP_COLOR),
        ("threshold-down", f"scale-down {_pct(panel.down_threshold)}", panel.down_threshold, DOWN_COLOR),
    ):
        y = f.uy(value)
        out.append(f'<g class="{cls}">')
        out.append(
            f'<line x1="{_f(f.x0)}" y1="{_f(y)}" x2="{_f(f.x1)}" y2="{_f(y)}" stroke="{color}" '
            f'stroke-width="1.2" stroke-dasharray="6 4"/>'
        )
        out.append(f'<text x="{_f(f.x1 - 4)}" y="{_f(y - 4)}" text-anchor="end" fill="{color}">{escape(label)}</text>')
        out.append("</g>")
    return out


def _utilization(f: _Frame, stats: Sequence[PeriodStats], period_ms: int) -> list[str]:
    """The utilization series: the p95 and mean lines, the max dots."""
    out: list[str] = []
    for cls, attr, color, stroke_width in (
        ("series-p95", "p95", P95_COLOR, "1.5"),
        ("series-mean", "mean", MEAN_COLOR, "2"),
    ):
        d = _line_path(stats, attr, period_ms, f.tx, f.uy)
        if d:
            out.append(
                f'<path class="{cls}" d="{d}" fill="none" stroke="{color}" stroke-width="{stroke_width}" '
                f'stroke-linejoin="round" stroke-linecap="round"/>'
            )
    out.append(f'<g class="series-max" fill="{MAX_COLOR}">')
    for s in stats:
        if s.maximum is not None:
            out.append(f'<circle cx="{_f(f.tx(s.start_ms + period_ms / 2))}" cy="{_f(f.uy(s.maximum))}" r="2.2"/>')
    out.append("</g>")
    return out


def _no_data(f: _Frame) -> list[str]:
    return [
        f'<text class="no-data" x="{_f((f.x0 + f.x1) / 2)}" y="{_f((f.y0 + f.y1) / 2)}" text-anchor="middle" '
        f'font-size="14" fill="#888888">no data</text>'
    ]


def _legend(f: _Frame, panel: ChartPanel, height: int) -> list[str]:
    ly = height - 14.0
    out = ['<g class="legend">']
    x = f.x0
    for label, kind, color in (
        ("mean", "line", MEAN_COLOR),
        ("p95", "line", P95_COLOR),
        ("max", "dot", MAX_COLOR),
        ("capacity (right axis)", "line", CAPACITY_COLOR),
        (f"scale-up {_pct(panel.up_threshold)}", "dash", UP_COLOR),
        (f"scale-down {_pct(panel.down_threshold)}", "dash", DOWN_COLOR),
    ):
        if kind == "dot":
            out.append(f'<circle cx="{_f(x + 9)}" cy="{_f(ly - 4)}" r="2.5" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="6 4"' if kind == "dash" else ""
            out.append(
                f'<line x1="{_f(x)}" y1="{_f(ly - 4)}" x2="{_f(x + 18)}" y2="{_f(ly - 4)}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
            )
        out.append(f'<text x="{_f(x + 22)}" y="{_f(ly)}" fill="{TEXT_COLOR}">{escape(label)}</text>')
        x += 40 + 6.4 * len(label)
    out.append("</g>")
    return out


def _line_path(stats: Sequence[PeriodStats], attr: str, period_ms: int, tx: _Scale, uy: _Scale) -> str:
    """One path for a series; a missing period (None, or absent from ``stats``) starts a new subpath."""
    parts: list[str] = []
    previous_start: int | None = None
    run = 0
    for s in stats:
        value: float | None = getattr(s, attr)
        if value is None:
            previous_start, run = None, _close_run(parts, run)
            continue
        contiguous = previous_start is not None and s.start_ms - previous_start <= period_ms
        if not contiguous:
            run = _close_run(parts, run)
        x, y = _f(tx(s.start_ms + period_ms / 2)), _f(uy(value))
        parts.append(f"{'L' if contiguous else 'M'}{x} {y}")
        run += 1
        previous_start = s.start_ms
    _close_run(parts, run)
    return " ".join(parts)


def _close_run(parts: list[str], run: int) -> int:
    # A lone point draws nothing as a path; a zero-length segment with round caps shows as a dot.
    if run == 1:
        parts.append("h0")
    return 0


def _step_path(caps: Sequence[tuple[int, int]], t_start: int, t_end: int, tx: _Scale, cy: _Scale) -> str:
    """Each capacity holds from its time to the next one's, clipped to the time axis."""
    segments = []
    for i, (ts, capacity) in enumerate(caps):
        following = caps[i + 1][0] if i + 1 < len(caps) else t_end
        begin, end = max(ts, t_start), min(following, t_end)
        if end > begin:
            segments.append((begin, end, capacity))
    parts: list[str] = []
    for begin, end, capacity in segments:
        y = _f(cy(capacity))
        parts.append(f"V{y}" if parts else f"M{_f(tx(begin))} {y}")
        parts.append(f"H{_f(tx(end))}")
    return " ".join(parts)


def _period_ms(stats: Sequence[PeriodStats]) -> int:
    gaps = [b.start_ms - a.start_ms for a, b in zip(stats, stats[1:], strict=False) if b.start_ms > a.start_ms]
    return min(gaps) if gaps else _DEFAULT_PERIOD_MS


def _nice_step(top: float, ticks: int) -> float:
    raw = top / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10.0 * magnitude


def _time_step_ms(span_ms: int) -> int:
    for minutes in _TICK_MINUTES:
        if span_ms / (minutes * _MINUTE_MS) <= _MAX_TIME_TICKS:
            return minutes * _MINUTE_MS
    days = math.ceil(span_ms / (_MAX_TIME_TICKS * 1440 * _MINUTE_MS))
    return days * 1440 * _MINUTE_MS


def _hhmm(ts_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%H:%M")


def _pct(value: float) -> str:
    return f"{value:g}%"


def _f(value: float) -> str:
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def escape(text: str) -> str:
    """Text made safe for SVG element content and double-quoted attributes."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )
