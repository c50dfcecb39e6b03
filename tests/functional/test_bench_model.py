"""The AWS IoT Core baseline of `make bench`: one DynamoDB item per message, priced from its real size."""

from __future__ import annotations

import math

import pytest

from bench.model import iot_core_message_item, iot_core_per_million
from chalicelib.domain.costs import prices


def measured(batch: int) -> dict[str, float]:
    return {"readings_per_request": 5 * batch, "records_per_request": batch}


@pytest.mark.parametrize("batch", [1, 10, 100])
def test_the_action_writes_one_item_per_message_of_the_messages_size(batch: int) -> None:
    item = iot_core_message_item(batch)
    assert item["write_units"] == max(1, math.ceil(item["item_bytes"] / 1024))
    figures = iot_core_per_million(measured(batch), basic_ingest=False)
    publishes = 1_000_000 / (5 * batch)
    assert figures["units"]["actions_executed"] == publishes  # one action per message, not per reading
    assert figures["units"]["dynamodb_write_units"] == publishes * item["write_units"]


def test_a_bigger_message_is_a_bigger_item() -> None:
    assert iot_core_message_item(100)["write_units"] > iot_core_message_item(1)["write_units"] == 1


def test_basic_ingest_pays_no_messaging_and_otherwise_the_same() -> None:
    standard = iot_core_per_million(measured(1), basic_ingest=False)
    basic = iot_core_per_million(measured(1), basic_ingest=True)
    assert basic["usd"]["messaging"] == 0
    assert standard["usd"]["messaging"] == pytest.approx(200_000 / 1e6 * prices()["iot_core"]["messages_per_million"])
    assert standard["usd_total"] - basic["usd_total"] == pytest.approx(standard["usd"]["messaging"])


def test_the_ingest_functions_memory_is_the_fastest_within_a_quarter_of_the_cheapest() -> None:
    from bench.door import memory_choice

    # CPU-light, I/O-bound: the smallest memory is cheapest, the next costs less than 25 % more.
    light = memory_choice(app_ms=0.7, aws_ms=2.5, gb_second_usd=0.0000133334)
    assert light["chosen_mb"] == 256
    # CPU-heavy: small memories are too slow for the latency target, and larger ones cost the same CPU.
    heavy = memory_choice(app_ms=40.0, aws_ms=5.0, gb_second_usd=0.0000133334)
    assert heavy["chosen_mb"] == 1024
    assert all(o["duration_ms"] > 100 for o in heavy["options"] if o["memory_mb"] < 1024)
