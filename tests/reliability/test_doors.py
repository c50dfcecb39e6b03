"""`python -m reliability` runs the telemetry parts once per door, the others once."""

from __future__ import annotations

import pytest

from reliability.__main__ import _runs, main
from reliability.common import part_name


def test_telemetry_parts_run_through_every_door_and_the_rest_once() -> None:
    assert _runs(["auth", "faults", "load"], ["api", "function-url"]) == [
        ("auth", "api"),
        ("faults", "api"),
        ("faults", "function-url"),
        ("load", "api"),
        ("load", "function-url"),
    ]
    assert _runs(["faults"], ["function-url"]) == [("faults", "function-url")]


def test_a_part_through_the_function_url_is_named_for_it() -> None:
    assert part_name("faults", "api") == "faults"
    assert part_name("load", "function-url") == "load (function-url)"


def test_an_unknown_door_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--parts", "faults", "--doors", "mqtt"])
    assert caught.value.code == 2
