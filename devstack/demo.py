"""The demo's scripted alert: the rule, and a freezer warm-up fitted to the demo's duration.

The demo runs three freezers beside the fleet; the first one warms up so that the rule
below raises an alert and then clears it, and both happen before the run ends, whatever
duration the demo accepts. The script is computed from the duration and the rule:

- a lead of ``LEAD_READINGS`` normal readings, so the rule sees the freezer cold first;
- the warm-up: the rule's N consecutive readings plus ``SPARE_WARM_READINGS``;
- a tail of ``CLEAR_READINGS`` cold readings (the first one already meets the rule's clear
  condition, the hysteresis) plus ``START_JITTER_READINGS``: a simulated device starts up to
  one interval late (device_sim/fleet.py, ``run_producer``), so it may make one reading fewer.

The minimum duration is the sum; any time beyond it is shared equally between the three
parts, in whole intervals, so a longer demo has a longer, easier-to-watch alert.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from device_sim.profiles import resolve_profile_path

FREEZER_RULE: dict[str, Any] = {
    "name": "freezer too warm",
    "scope": {"type": "freezer"},
    "metric": "temp",
    "condition": {"op": ">", "value": -15},
    "duration": {"readings": 2},
    "clear": {"op": "<", "value": -18},
    "severity": "critical",
    "notify": {"emails": ["ops@localhost.localdomain"]},
}
FREEZER_PROFILE = "freezer-anomaly"  # the built-in profile the demo's freezers start from
FREEZER_METRIC = "temp"
FREEZER_DEVICES = 3
FREEZER_INTERVAL_S = 1.0  # seconds between a freezer's readings in the demo
LEAD_READINGS = 5
SPARE_WARM_READINGS = 1
CLEAR_READINGS = 3
START_JITTER_READINGS = 1


@dataclass(frozen=True)
class WarmUp:
    """When the first freezer warms (seconds after it starts) and for how long."""

    at: float
    duration: float

    @property
    def ends(self) -> float:
        return self.at + self.duration


def readings_to_raise(rule: dict[str, Any], interval: float = FREEZER_INTERVAL_S) -> int:
    """Consecutive readings over the threshold the rule needs before it raises."""
    duration = rule.get("duration") or {}
    if "readings" in duration:
        return int(duration["readings"])
    if "seconds" in duration:  # N seconds from the first reading over: N / interval readings later
        return math.ceil(float(duration["seconds"]) / interval) + 1
    return 1


def minimum_duration(rule: dict[str, Any] = FREEZER_RULE, interval: float = FREEZER_INTERVAL_S) -> float:
    """The shortest demo (seconds) whose scripted alert is both raised and cleared."""
    readings = LEAD_READINGS + readings_to_raise(rule, interval) + SPARE_WARM_READINGS
    readings += CLEAR_READINGS + START_JITTER_READINGS
    return readings * interval


def warm_up(duration: float, rule: dict[str, Any] = FREEZER_RULE, interval: float = FREEZER_INTERVAL_S) -> WarmUp:
    """The warm-up script for a demo of ``duration`` seconds; ValueError below the minimum."""
    shortest = minimum_duration(rule, interval)
    if duration < shortest:
        raise ValueError(f"the demo needs at least {shortest:g} s to raise and clear its scripted alert")
    share = math.floor((duration - shortest) / 3 / interval) * interval
    at = LEAD_READINGS * interval + share
    warm = (readings_to_raise(rule, interval) + SPARE_WARM_READINGS) * interval + share
    return WarmUp(at=at, duration=warm)


def demo_duration(text: str) -> float:
    """argparse type of ``demo --duration``: seconds, at least ``minimum_duration()``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    shortest = minimum_duration()
    if not value >= shortest:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"{text} s is too short: the demo needs at least {shortest:g} s to raise and clear its scripted "
            f"freezer alert ({FREEZER_RULE['name']!r}: {readings_to_raise(FREEZER_RULE)} readings over "
            f"{FREEZER_RULE['condition']['value']}, one every {FREEZER_INTERVAL_S:g} s)"
        )
    return value


def freezer_profile(script: WarmUp, path: Path) -> Path:
    """Write the demo's freezer profile: the built-in one with its anomaly set to ``script``."""
    doc = yaml.safe_load(resolve_profile_path(FREEZER_PROFILE).read_text(encoding="utf-8"))
    (dtype,) = doc["device_types"].values()
    dtype["metrics"][FREEZER_METRIC]["anomaly"].update({"at": script.at, "duration": script.duration})
    doc["name"] = f"{FREEZER_PROFILE}-demo"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Written by `python -m devstack demo`: {FREEZER_PROFILE} with its warm-up fitted to the run.\n"
        + yaml.safe_dump(doc, sort_keys=False),
        encoding="utf-8",
    )
    return path
