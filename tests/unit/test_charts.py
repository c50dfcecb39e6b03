from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from chalicelib.domain.charts import ChartPanel, multi_target_chart
from chalicelib.domain.scaling.config import AlarmSpec, Policy, Target
from chalicelib.domain.scaling.periods import PeriodStats
from chalicelib.domain.scaling.policy import capacity_timeline
from tests.unit.scaling_runs import successive_runs

NS = {"svg": "http://www.w3.org/2000/svg"}
T0 = 1_795_597_200_000  # 2026-11-25T09:00:00Z
MIN = 60_000


def stats_of(*means: float | None) -> list[PeriodStats]:
    return [
        PeriodStats(T0 + i * MIN, 0, None, None, None) if v is None else PeriodStats(T0 + i * MIN, 5, v, v + 5, v + 10)
        for i, v in enumerate(means)
    ]


def one_target_chart(
    title: str,
    stats: list[PeriodStats],
    up: float,
    down: float,
    capacities: list[tuple[int, int]],
    width: int = 800,
    height: int = 360,
) -> str:
    """A report's chart of one target (what jobs.scaling_report draws for a one-target stage)."""
    return multi_target_chart([ChartPanel(title, stats, up, down, capacities)], width, height, title=title)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def paths(root: ET.Element, cls: str) -> list[ET.Element]:
    return [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == cls]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


def subpaths(d: str) -> int:
    return len(re.findall(r"M", d))


def test_chart_is_a_standalone_svg_with_thresholds_and_one_path_per_series():
    stats = stats_of(80.0, 80.0, 80.0, 30.0, 30.0, 30.0)
    svg = one_target_chart("ingest fleet", stats, 70, 40, [(T0, 2), (T0 + 2 * MIN, 3), (T0 + 5 * MIN, 2)])
    root = parse(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 800 360"
    assert root.get("font-family") == "sans-serif"
    labels = texts(root)
    assert "scale-up 70%" in labels
    assert "scale-down 40%" in labels
    assert "ingest fleet" in labels
    assert {"09:00", "09:02", "09:04", "09:06"} <= set(labels)
    assert "UTC" in labels
    for cls in ("series-mean", "series-p95", "series-capacity"):
        (path,) = paths(root, cls)
        assert subpaths(path.get("d", "")) == 1
    (dots,) = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "series-max"]
    assert len(list(dots)) == 6
    assert "no data" not in labels


def test_capacity_is_a_step_line():
    svg = one_target_chart("t", stats_of(50.0, 50.0, 50.0), 70, 40, [(T0, 2), (T0 + MIN, 3)])
    (path,) = paths(parse(svg), "series-capacity")
    d = path.get("d", "")
    assert re.fullmatch(r"M[\d.]+ [\d.]+ H[\d.]+ V[\d.]+ H[\d.]+", d), d


def test_none_periods_split_the_line():
    svg = one_target_chart("gaps", stats_of(50.0, 55.0, None, 60.0, 65.0), 70, 40, [(T0, 2)])
    root = parse(svg)
    for cls in ("series-mean", "series-p95"):
        (path,) = paths(root, cls)
        assert subpaths(path.get("d", "")) == 2


def test_absent_periods_split_the_line_too():
    stats = stats_of(50.0, 55.0, 60.0)
    stats = [stats[0], stats[1], PeriodStats(T0 + 5 * MIN, 3, 60.0, 61.0, 62.0), PeriodStats(T0 + 6 * MIN, 3, 1, 2, 3)]
    (path,) = paths(parse(one_target_chart("t", stats, 70, 40, [])), "series-mean")
    assert subpaths(path.get("d", "")) == 2


def test_a_lone_point_is_still_drawn():
    (path,) = paths(parse(one_target_chart("t", stats_of(None, 50.0, None), 70, 40, [])), "series-mean")
    assert path.get("d", "").endswith("h0")


def test_no_data_is_drawn_as_such():
    for stats in ([], stats_of(None, None, None)):
        root = parse(one_target_chart("empty", stats, 70, 40, []))
        assert "no data" in texts(root)
        assert "scale-up 70%" in texts(root)
        assert paths(root, "series-mean") == []
        assert paths(root, "series-p95") == []


def test_text_is_xml_escaped():
    title = 'fleet <a> & "b"'
    svg = one_target_chart(title, stats_of(10.0), 70, 40, [])
    root = parse(svg)
    assert title in texts(root)
    assert root.get("aria-label") == title


def test_output_is_deterministic_and_scales_beyond_100_percent():
    stats = stats_of(120.0, 180.0, 90.0)
    first = one_target_chart("t", stats, 70, 40, [(T0, 1)])
    assert first == one_target_chart("t", list(stats), 70, 40, [(T0, 1)])
    assert "200%" in texts(parse(first))  # the axis grows past 100 % to fit the max (190 %)


def test_chart_of_successive_runs():
    policy = Policy(AlarmSpec(">", 70), AlarmSpec("<", 40))
    target = Target("ingest", "asg", "iot-ingest", policy)
    stats = stats_of(80.0, 80.0, 80.0, 30.0, 30.0, 30.0)
    steps = capacity_timeline(successive_runs(target, stats, 2), 2, T0)
    svg = one_target_chart("ingest", stats, 70, 40, steps, width=640, height=300)
    root = parse(svg)
    assert root.get("viewBox") == "0 0 640 300"
    (path,) = paths(root, "series-capacity")
    assert path.get("d", "").count("V") == 2  # up to 3, back to 2


def test_multi_target_chart_stacks_panels():
    panels = [
        ChartPanel("ingest", stats_of(80.0, 30.0), 70, 40, [(T0, 2)]),
        ChartPanel("readings table", stats_of(None, None), 80, 30),
    ]
    root = parse(multi_target_chart(panels, width=800, panel_height=300))
    assert root.get("viewBox") == "0 0 800 600"
    nested = [e for e in root if e.tag == "{http://www.w3.org/2000/svg}svg"]
    assert [e.get("y") for e in nested] == ["0", "300"]
    assert "no data" in texts(root)
    assert "scale-up 80%" in texts(root)
    assert "no data" in texts(parse(multi_target_chart([])))
