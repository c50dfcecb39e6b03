"""domain.state: the late bound, the tail's start, the forward-only merge, when a container folds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from chalice.config import Config

from chalicelib.domain.chunks import HOUR_MS, encode, hour_bucket
from chalicelib.domain.readings import Reading
from chalicelib.domain.state import (
    FOLD_INTERVAL_MS,
    LATE_FOLD_MS,
    MAX_REQUEST_MS,
    FoldedState,
    LazyFolds,
    is_late,
    merge,
    tail_from,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_764_061_200_000  # an hour start
MIN = 60_000


@dataclass(frozen=True)
class Chunk:
    data: bytes
    received_at: int


def chunk(received_at: int, *readings: Reading) -> Chunk:
    return Chunk(encode(list(readings)), received_at)


def r(metric: str, ts: int, value: float | str = 1.0) -> Reading:
    return Reading(metric, "", ts, value)


@pytest.mark.parametrize("stage", ["dev", "prod", "test"])
def test_max_request_is_the_timeout_of_every_function_that_ingests(stage: str) -> None:
    doc = json.loads((ROOT / ".chalice" / "config.json").read_text())
    if stage not in doc["stages"]:
        pytest.skip(f"no stage {stage}")
    config = Config(chalice_stage=stage, config_from_disk=doc)
    # The REST API, the WebSocket router (WAMP publishes ingest), the Function URL door.
    for function in ("api_handler", "ws_message", "ingest"):
        assert config.scope(stage, function).lambda_timeout * 1000 <= MAX_REQUEST_MS, function
    assert config.scope(stage, "api_handler").lambda_timeout * 1000 == MAX_REQUEST_MS


def test_a_reading_older_than_the_bound_is_late() -> None:
    assert not is_late([r("a", T0 - LATE_FOLD_MS)], T0)
    assert is_late([r("a", T0), r("b", T0 - LATE_FOLD_MS - 1)], T0)
    assert not is_late([], T0)


def test_a_long_batch_is_late_only_when_a_series_newest_reading_is() -> None:
    from chalicelib.domain.chunks import latest_per_series

    hours = [r("a", T0 - k * 60_000) for k in range(100)]  # 100 minutes of one series, newest now
    assert not is_late(latest_per_series(hours).values(), T0)
    assert is_late(latest_per_series([*hours, r("b", T0 - LATE_FOLD_MS - 1)]).values(), T0)


def test_the_tail_starts_at_the_mark_or_the_registration() -> None:
    never = FoldedState("d", created_at=T0)
    assert tail_from(never) == T0 - LATE_FOLD_MS - MAX_REQUEST_MS
    folded = FoldedState("d", created_at=T0, folded_at=T0 + 3 * HOUR_MS)
    assert tail_from(folded) == T0 + 3 * HOUR_MS - LATE_FOLD_MS - MAX_REQUEST_MS
    assert hour_bucket(tail_from(folded)) == hour_bucket(T0 + 2 * HOUR_MS)  # 15.5 min back: the hour before


def test_merge_keeps_the_newest_per_series_and_moves_last_seen_and_the_mark_forward() -> None:
    state = FoldedState("d", T0, {("a", ""): r("a", T0 + 5 * MIN, 5)}, last_seen=T0 + 6 * MIN, state_ts=T0 + 5 * MIN)
    merged = merge(state, [chunk(T0 + 2 * MIN, r("a", T0 + MIN, 1), r("b", T0 + MIN, 2))])
    assert merged.latest == {("a", ""): r("a", T0 + 5 * MIN, 5), ("b", ""): r("b", T0 + MIN, 2)}
    assert merged.last_seen == T0 + 6 * MIN  # never back
    assert merged.folded_at == T0 + 2 * MIN
    assert merged.state_ts == T0 + 5 * MIN
    assert merge(merged, [chunk(T0 + 2 * MIN, r("a", T0 + MIN, 1))]) == merged  # folding twice changes nothing


def test_of_two_readings_at_one_time_the_later_request_wins_in_any_order() -> None:
    first, second = chunk(T0 + MIN, r("a", T0, "old")), chunk(T0 + 2 * MIN, r("a", T0, "new"))
    empty = FoldedState("d", T0)
    assert merge(empty, [first, second]).latest[("a", "")].value == "new"
    assert merge(empty, [second, first]).latest[("a", "")].value == "new"


def test_a_container_folds_on_first_sight_then_once_per_interval() -> None:
    folds = LazyFolds()
    assert folds.due("d", T0 + MIN, {("a", "")})
    folds.folded("d", FoldedState("d", T0, {("a", ""): r("a", T0)}, folded_at=T0 + MIN))
    assert not folds.due("d", T0 + MIN + FOLD_INTERVAL_MS - 1, {("a", "")})
    assert folds.due("d", T0 + MIN + FOLD_INTERVAL_MS, {("a", "")})
    assert folds.due("other", T0 + MIN, {("a", "")})


def test_a_container_folds_at_once_for_a_new_hour_or_a_new_series() -> None:
    folds = LazyFolds()
    mark = T0 + HOUR_MS - 2 * MIN
    folds.folded("d", FoldedState("d", T0, {("a", ""): r("a", T0)}, folded_at=mark))
    assert not folds.due("d", mark + MIN, {("a", "")})
    assert folds.due("d", mark + MIN, {("a", ""), ("b", "")})
    assert folds.due("d", mark + 2 * MIN, {("a", "")})  # the next hour: the active-hour key moves
    assert not folds.due("d", mark - MIN, {("a", "")})  # an older request (the mark is ahead of it)
