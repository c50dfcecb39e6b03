"""The ingest function's memory (the Function URL door), chosen from what bench.measure measured.

In Lambda a function gets CPU in proportion to its memory (one vCPU at 1,769 MB), so a request's
duration is its CPU time (measured in process outside the AWS calls, on one core standing in for
a Graviton core) scaled by that share, plus the time inside its AWS calls (moto in process
standing in for DynamoDB's round trips, a few milliseconds each); its price is duration x memory.
Of the memories whose modelled mean stays within LATENCY_TARGET_MS, the fastest one that costs
at most PRICE_SLACK more than the cheapest is chosen: a few percent of a small compute line buys
shorter requests and a cold start (an import is CPU work) that is not many times slower.
"""

from __future__ import annotations

from typing import Any

MEMORY_OPTIONS_MB = (128, 256, 512, 1024)
FULL_VCPU_MB = 1769  # Lambda: one vCPU's worth of CPU at this memory size
LATENCY_TARGET_MS = 100.0  # what a device waits for its acknowledgement, at most, modelled mean
PRICE_SLACK = 0.25  # how much more than the cheapest option a faster one may cost


def modelled_duration_ms(app_ms: float, aws_ms: float, memory_mb: int) -> float:
    """A request's duration in Lambda at `memory_mb`: its CPU time at that CPU share, plus its AWS calls' time."""
    return app_ms * max(1.0, FULL_VCPU_MB / memory_mb) + aws_ms


def memory_choice(app_ms: float, aws_ms: float, gb_second_usd: float) -> dict[str, Any]:
    """Each memory option's modelled duration and compute price per million requests, and the choice."""
    options = []
    for memory in MEMORY_OPTIONS_MB:
        duration = modelled_duration_ms(app_ms, aws_ms, memory)
        usd = duration / 1000 * memory / 1024 * gb_second_usd * 1e6
        options.append({"memory_mb": memory, "duration_ms": duration, "compute_usd_per_million_requests": usd})
    fitting = [o for o in options if o["duration_ms"] <= LATENCY_TARGET_MS] or options[-1:]
    cheapest = min(o["compute_usd_per_million_requests"] for o in fitting)
    affordable = [o for o in fitting if o["compute_usd_per_million_requests"] <= cheapest * (1 + PRICE_SLACK)]
    chosen = min(affordable, key=lambda o: o["duration_ms"])
    return {
        "method": (
            f"duration = CPU ms outside AWS calls x max(1, {FULL_VCPU_MB} MB / memory) + ms inside AWS calls "
            f"(moto in process), both measured; of the memories with a modelled mean within "
            f"{LATENCY_TARGET_MS:g} ms, the fastest costing at most {PRICE_SLACK:.0%} more than the cheapest"
        ),
        "app_ms": app_ms,
        "aws_ms": aws_ms,
        "options": options,
        "chosen_mb": chosen["memory_mb"],
    }
