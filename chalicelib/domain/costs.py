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


def tiered_cost(quantity: float, tiers: list[list[float | None]]) -> float:
    """Cost of `quantity` units under tiered prices `[[cumulative upper bound or None, price per unit], ...]`."""
    total = 0.0
    below = 0.0
    for bound, price in tiers:
        top = quantity if bound is None else min(quantity, bound)
        if top > below:
            total += (top - below) * float(price or 0.0)
        if bound is None or quantity <= bound:
            break
        below = bound
    return total


def lambda_cost(
    invocations: float, duration_ms: float, memory_mb: int, architecture: str = "arm64"
) -> dict[str, float]:
    """Requests and compute of `invocations` each lasting `duration_ms`, billed per started millisecond."""
    table = prices()["lambda"]
    billed_ms = max(1, math.ceil(duration_ms))
    gb_seconds = invocations * billed_ms / 1000 * memory_mb / 1024
    rate = table["gb_second_arm"] if architecture == "arm64" else table["gb_second_x86"]
    requests_usd = invocations / 1e6 * table["requests_per_million"]
    return {"gb_seconds": gb_seconds, "requests_usd": requests_usd, "compute_usd": gb_seconds * rate}


def dynamodb_on_demand_usd(write_units: float, read_units: float) -> float:
    """On-demand cost of write request units and read request units."""
    table = prices()["dynamodb"]
    writes: float = write_units / 1e6 * table["on_demand_write_per_million"]
    return float(writes + read_units / 1e6 * table["on_demand_read_per_million"])


def iot_core_messages(payload_bytes: int, topic_bytes: int = 0) -> int:
    """Messages AWS IoT Core meters for one publish: payload plus topic, in 5 KB increments."""
    increment = int(prices()["iot_core"]["message_increment_bytes"])
    return max(1, math.ceil((payload_bytes + topic_bytes) / increment))
