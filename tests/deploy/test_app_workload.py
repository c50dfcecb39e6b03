"""App paths that run only with a deployed stage's configuration, so the IAM coverage test sees them.

The rest of the suite runs the scaling report with the scenario's own targets; a deployed
stage runs it with chalicelib/domain/scaling/targets.json, whose DynamoDB and Lambda targets make
the report read a table's and a function's capacity.
"""

from __future__ import annotations

from chalicelib import wiring
from chalicelib.domain.scaling.targets import load_targets_config
from tests.deploy.conftest import Clients


def test_scheduled_scaling_report_with_the_stage_targets(aws: None, clients: Clients) -> None:
    settings = wiring.bound_settings()
    assert not settings.scaling_file
    kinds = {t["kind"] for t in load_targets_config(settings.stage)["targets"]}
    assert kinds == {"asg", "dynamodb", "lambda"}
    clients("s3").create_bucket(Bucket=settings.archive_bucket)
    run = wiring.scaling_report_job().run("schedule")
    skipped = {s["kind"] for s in run.report["skipped"]}
    assert {"dynamodb", "lambda"} <= skipped  # on demand, and no reserved concurrency: nothing to scale
