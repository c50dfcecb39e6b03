"""Cost arithmetic from the dated price table (chalicelib/pricing.json)."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent.parent / "pricing.json"
SECONDS_PER_MONTH = 30 * 24 * 3600
HOURS_PER_MONTH = 730


@functools.cache
def prices() -> dict[str, Any]:
    """The price table, with its `as_of` date."""
    doc: dict[str, Any] = json.loads(PRICES.read_text())
    return doc


def dynamodb_write_costs(
    mean_wcu_per_s: float, peak_wcu_per_s: float, target_utilization: float = 0.7
) -> dict[str, Any]:
    """Monthly cost of a write load on demand vs provisioned at `target_utilization` of the peak."""
    table = prices()["dynamodb"]
    on_demand = mean_wcu_per_s * SECONDS_PER_MONTH / 1e6 * table["on_demand_write_per_million"]
    provisioned_units = max(1, math.ceil(peak_wcu_per_s / target_utilization))
    provisioned = provisioned_units * HOURS_PER_MONTH * table["provisioned_wcu_hour"]
    return {
        "mean_wcu_per_s": round(mean_wcu_per_s, 3),
        "peak_wcu_per_s": round(peak_wcu_per_s, 3),
        "on_demand_usd_month": round(on_demand, 2),
        "provisioned_wcu": provisioned_units,
        "provisioned_usd_month": round(provisioned, 2),
        "cheaper": "on_demand" if on_demand <= provisioned else "provisioned",
        "prices_as_of": prices()["as_of"],
    }
