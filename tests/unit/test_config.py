"""Settings: one rule for the names a stage derives from its readings table, whoever builds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib import models
from chalicelib.config import Settings, call_timeout_queue_name, from_env, settings

ENV = {"STAGE": "x", "DEVICES_TABLE": "iotcloud-x-devices", "READINGS_TABLE": "iotcloud-x-readings"}
DERIVED = ("iotcloud-x-aggregates", "iotcloud-x-realtime", "iotcloud-x-alerts", "iotcloud-x-call-timeouts")


def derived(s: Settings) -> tuple[str, str, str, str]:
    return s.aggregates_table, s.realtime_table, s.alerts_table, s.call_timeout_queue


@pytest.fixture
def rebound() -> Iterator[None]:
    """Binding moves every model: give them back the test stage's tables afterwards."""
    yield
    models.bind(settings())


def test_derived_names_follow_one_rule_from_the_environment_or_built_directly() -> None:
    direct = Settings("x", devices_table=ENV["DEVICES_TABLE"], readings_table=ENV["READINGS_TABLE"], archive_bucket="")
    assert derived(from_env(ENV)) == derived(direct) == DERIVED


def test_a_configured_name_wins_over_the_rule() -> None:
    configured = from_env({**ENV, "AGGREGATES_TABLE": "agg", "REALTIME_TABLE": "rt", "ALERTS_TABLE": "al",
                           "CALL_TIMEOUT_QUEUE": "q"})  # fmt: skip
    assert derived(configured) == ("agg", "rt", "al", "q")


def test_the_deploy_time_queue_name_is_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READINGS_TABLE", ENV["READINGS_TABLE"])
    monkeypatch.delenv("CALL_TIMEOUT_QUEUE", raising=False)
    assert call_timeout_queue_name() == from_env(ENV).call_timeout_queue


def test_models_are_bound_to_the_settings_names(rebound: None) -> None:
    bound = from_env(ENV)
    models.bind(bound)
    tables = (models.AggregateModel, models.RealtimeModel, models.AlertModel)
    assert tuple(m.Meta.table_name for m in tables) == DERIVED[:3]
    assert models.DeviceModel.Meta.table_name == "iotcloud-x-devices"
