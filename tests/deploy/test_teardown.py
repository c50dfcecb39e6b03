"""Teardown deletes what bootstrap made, and refuses to delete data without --force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.config import Settings
from infra.bootstrap import bootstrap, describe_stage, main, teardown
from infra.stages import stage_settings
from tests.deploy.conftest import Clients


@pytest.fixture
def stage(stage_config: Path, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        settings = stage_settings("test", stage_config)
        bootstrap(settings, clients, stage_config)
        yield settings


def _exists(state: dict[str, Any]) -> dict[str, list[str]]:
    return {kind: sorted(n for n, v in found.items() if v is not None) for kind, found in state.items()}


def test_an_empty_stage_is_deleted_without_force(stage: Settings, clients: Clients) -> None:
    done = teardown(stage, clients)
    assert "deleted table iotcloud-test-readings" in done
    assert "deleted bucket iotcloud-test-archive (0 objects)" in done
    assert "deleted dashboard iotcloud-test" in done
    assert "deleted auto scaling group iotcloud-test-ingest-fleet and its policies" in done
    assert all(names == [] for kind, names in _exists(describe_stage(stage, clients)).items()), done


def test_data_is_kept_without_force_and_deleted_with_it(
    stage: Settings, clients: Clients, stage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients("dynamodb").put_item(TableName=stage.readings_table, Item={"d": {"S": "dev-1"}, "k": {"S": "2026"}})
    clients("s3").put_object(Bucket=stage.archive_bucket, Key="archive/dt=2026-01-01/hour=00/x.jsonl.gz", Body=b"x")
    before = _exists(describe_stage(stage, clients))

    with pytest.raises(RuntimeError, match="refusing") as refused:
        teardown(stage, clients)
    assert "table iotcloud-test-readings holds items" in str(refused.value)
    assert "bucket iotcloud-test-archive holds objects" in str(refused.value)
    args = ["teardown", "--stage", "test", "--config", str(stage_config)]
    assert main(args) == 2
    assert "without --force" in capsys.readouterr().err
    assert main([*args, "--force", "--dry-run"]) == 0
    planned = capsys.readouterr().out
    assert "would delete bucket iotcloud-test-archive and every object in it" in planned
    assert _exists(describe_stage(stage, clients)) == before  # refusals and dry runs delete nothing

    assert main([*args, "--force"]) == 0
    assert "deleted bucket iotcloud-test-archive (1 objects)" in capsys.readouterr().out
    assert all(names == [] for names in _exists(describe_stage(stage, clients)).values())
    assert main(args) == 0
    assert "nothing to delete" in capsys.readouterr().out
