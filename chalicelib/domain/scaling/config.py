"""The scaling vocabulary and a stage's typed configuration: alarms, policies, metrics, targets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

from chalicelib.domain.scaling.formatting import num

MissingData: TypeAlias = Literal["missing", "ignore", "breaching", "notBreaching"]
Comparison: TypeAlias = Literal[">", ">=", "<", "<="]
Statistic: TypeAlias = Literal["Average", "Maximum", "p95"]
AlarmStateValue: TypeAlias = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
Action: TypeAlias = Literal["scale_up", "scale_down", "hold"]
TargetKind: TypeAlias = Literal["asg", "dynamodb", "lambda"]
Mode: TypeAlias = Literal["report", "apply"]
TriggerKind: TypeAlias = Literal["schedule", "alarm"]
Trend: TypeAlias = Literal["rising", "flat", "falling", "insufficient_data"]


OK: AlarmStateValue = "OK"
ALARM: AlarmStateValue = "ALARM"
INSUFFICIENT_DATA: AlarmStateValue = "INSUFFICIENT_DATA"


COMPARISONS: dict[str, str] = {
    ">": "greater than",
    ">=": "greater than or equal to",
    "<": "less than",
    "<=": "less than or equal to",
}
_MISSING_DATA = ("missing", "ignore", "breaching", "notBreaching")
_STATISTICS = {"Average": "mean", "Maximum": "maximum", "p95": "p95"}
_KINDS = ("asg", "dynamodb", "lambda")
_MODES = ("report", "apply")


@dataclass(frozen=True)
class AlarmSpec:
    """A CloudWatch metric alarm on a target's utilization %.

    ``datapoints_to_alarm`` (M) defaults to ``evaluation_periods`` (N). ``evaluation_range``
    is how many recent periods CloudWatch looks back over when some are missing: the docs
    don't publish it ("depends on the length of the alarm period and ... resolution") and
    their examples use 5 for N = 3, so the default is N + 2.
    """

    # Declared in the order of the JSON form (to_dict), which the reports pin.
    comparison: Comparison
    threshold: float
    statistic: Statistic = "Average"
    period_s: int = 60
    evaluation_periods: int = 2
    datapoints_to_alarm: int | None = None
    evaluation_range: int | None = None
    missing_data: MissingData = "missing"

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {sorted(COMPARISONS)}, not {self.comparison!r}")
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        if self.period_s <= 0:
            raise ValueError("period_s must be positive")
        if self.evaluation_periods < 1:
            raise ValueError("evaluation_periods must be at least 1")
        if not 1 <= self.datapoints_required <= self.evaluation_periods:
            raise ValueError("datapoints_to_alarm must be between 1 and evaluation_periods")
        if self.missing_data not in _MISSING_DATA:
            raise ValueError(f"missing_data must be one of {list(_MISSING_DATA)}, not {self.missing_data!r}")
        if self.statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {list(_STATISTICS)}, not {self.statistic!r}")
        if self.range_periods < self.evaluation_periods:
            raise ValueError("evaluation_range must be at least evaluation_periods")

    @property
    def datapoints_required(self) -> int:
        """M: breaching datapoints needed for ALARM."""
        return self.evaluation_periods if self.datapoints_to_alarm is None else self.datapoints_to_alarm

    @property
    def range_periods(self) -> int:
        """The evaluation range: periods looked back over when data is missing."""
        return self.evaluation_periods + 2 if self.evaluation_range is None else self.evaluation_range

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the alarming side of the threshold."""
        if self.comparison == ">":
            return value > self.threshold
        if self.comparison == ">=":
            return value >= self.threshold
        if self.comparison == "<":
            return value < self.threshold
        return value <= self.threshold

    def describe(self) -> str:
        """E.g. ``Average > 70% for 2 of 2 periods of 60 s (missing data: missing)``."""
        return (
            f"{self.statistic} {self.comparison} {num(self.threshold)}% for {self.datapoints_required} of "
            f"{self.evaluation_periods} periods of {self.period_s} s (missing data: {self.missing_data})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field, in order, with M and the evaluation range resolved."""
        return {**asdict(self), "datapoints_to_alarm": self.datapoints_required, "evaluation_range": self.range_periods}


@dataclass(frozen=True)
class Policy:
    """Two simple scaling policies (ChangeInCapacity) sharing one cooldown and bounds."""

    scale_up: AlarmSpec
    scale_down: AlarmSpec
    step_up: int = 1
    step_down: int = 1
    cooldown_s: int = 180
    min_capacity: int = 1
    max_capacity: int = 10

    def __post_init__(self) -> None:
        if self.scale_up.period_s != self.scale_down.period_s:
            raise ValueError("both alarms must use the same period (they read the same per-period stats)")
        if self.step_up < 1 or self.step_down < 1:
            raise ValueError("steps must be at least 1")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        if not 0 <= self.min_capacity <= self.max_capacity:
            raise ValueError("need 0 <= min_capacity <= max_capacity")

    @property
    def period_s(self) -> int:
        """The alarms' common period."""
        return self.scale_up.period_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "scale_up": self.scale_up.to_dict(),
            "scale_down": self.scale_down.to_dict(),
            "step_up": self.step_up,
            "step_down": self.step_down,
            "cooldown_s": self.cooldown_s,
            "min_capacity": self.min_capacity,
            "max_capacity": self.max_capacity,
        }


@dataclass(frozen=True)
class MetricQuery:
    """Which CloudWatch metric holds a target's load (read by the metrics adapter)."""

    namespace: str
    metric_name: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    stat: str = "Sum"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "namespace": self.namespace,
            "metric_name": self.metric_name,
            "dimensions": dict(sorted(self.dimensions.items())),
            "stat": self.stat,
        }


@dataclass(frozen=True)
class Target:
    """One scalable resource: an Auto Scaling group, a provisioned table, a function's concurrency.

    ``capacity_per_unit`` is the load one capacity unit handles (readings/s per instance,
    write units per provisioned unit, ...): utilization = load / (capacity * per unit) * 100.
    """

    name: str
    kind: TargetKind
    resource: str
    policy: Policy
    mode: Mode = "report"
    capacity_per_unit: float = 1.0
    metric: MetricQuery | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {list(_KINDS)}, not {self.kind!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, not {self.mode!r}")
        if not (math.isfinite(self.capacity_per_unit) and self.capacity_per_unit > 0):
            raise ValueError("capacity_per_unit must be a positive number")

    def total_capacity(self, capacity: int) -> float:
        """The load ``capacity`` units handle at 100 %."""
        return capacity * self.capacity_per_unit
