"""The IAM policy of each stage's Lambda functions: .chalice/policy-<stage>.json.

    python -m infra.policies            # write the policy of every stage in .chalice/config.json
    python -m infra.policies --check    # exit 1 if a policy file is not what this makes

`autogen_policy` is off: Chalice gives every function the stage's policy file. Each
statement below names the actions the app's code performs, on the stage's own
resources only: its tables (by name, and their indexes one by one), the readings
stream, the bucket's prefixes, the queue, its log groups, the scaling targets of
chalicelib/domain/scaling/targets.json (read always, changed only for targets in `apply` mode). The names
come from the stage's environment variables, so a renamed table moves its permissions.

tests/deploy/test_iam_coverage.py checks both directions against every AWS call the
test suite sees the app make: each call must be allowed, and each grant must be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain.rollup_sql import ATHENA_COMPACT_TABLE, ATHENA_LINES_TABLE
from chalicelib.domain.scaling.targets import load_targets_config
from infra.bootstrap import stage_tables
from infra.stages import CHALICE_CONFIG, stage_settings

# What the code does to each table (by the model that defines it), and to its indexes.
# (TransactWriteItems needs the actions of its parts: PutItem, UpdateItem, DeleteItem.)
TABLE_ACTIONS: dict[str, list[str]] = {
    "DeviceModel": ["GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"],
    "ReadingChunkModel": ["BatchWriteItem", "Query"],
    "AggregateModel": ["GetItem", "PutItem", "BatchWriteItem", "Query", "DeleteItem"],
    "AlertModel": ["GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"],
    "RealtimeModel": ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "Query"],
}
INDEX_ACTIONS: dict[str, list[str]] = {
    "DeviceModel": ["Query"],
    "AlertModel": ["Query"],
}
# What the code does under each prefix of the archive bucket.
# (Athena reads and writes with the caller's credentials: the archive and its Parquet compaction,
# and the query results at ATHENA_OUTPUT; UNLOAD's target is emptied first.)
OBJECT_ACTIONS: dict[str, list[str]] = {
    "s3:GetObject": ["archive/", "compact/", "reports/"],
    "s3:PutObject": ["archive/", "compact/", "reports/"],
    "s3:DeleteObject": ["compact/"],
}
LIST_PREFIXES = ["archive/", "compact/"]
# The Athena engine of the hourly rollup (both engines are allowed, so switching ROLLUP_ENGINE needs
# no new policy): its queries in the stage's workgroup, the Glue database and tables they read.
ATHENA_ACTIONS = ["athena:StartQueryExecution", "athena:GetQueryExecution"]  # rows: the result CSV in S3
# What the Lambda service does with the function's role for its event sources.
STREAM_READ = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
LOG_WRITE = ["logs:CreateLogStream", "logs:PutLogEvents"]
QUEUE_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
# What the code does with the call-timeout queue, and with WebSocket connections (by HTTP method).
QUEUE_ACTIONS = ["sqs:GetQueueUrl", "sqs:SendMessage"]
CONNECTION_METHODS = ["POST", "DELETE"]
# What the scaling report reads and, for targets in `apply` mode, changes.
TARGET_ACTIONS: dict[str, tuple[str, str]] = {
    "asg": ("autoscaling:DescribeAutoScalingGroups", "autoscaling:SetDesiredCapacity"),
    "dynamodb": ("dynamodb:DescribeTable", "dynamodb:UpdateTable"),
    "lambda": ("lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency"),
}
UNSCOPED = {"autoscaling:DescribeAutoScalingGroups", "cloudwatch:GetMetricData"}  # no resource-level permissions


def _table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:*:*:table/{name}"


def _target_arn(kind: str, resource: str) -> str:
    if kind == "asg":
        return f"arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{resource}"
    if kind == "dynamodb":
        return _table_arn(resource)
    return f"arn:aws:lambda:*:*:function:{resource}"


def _statement(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def _sid(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").split("-") if part)


def stage_policy(stage: str, config_file: Path = CHALICE_CONFIG) -> dict[str, Any]:
    """The policy document of a stage."""
    doc = json.loads(config_file.read_text())
    settings: Settings = stage_settings(stage, config_file)
    function_prefix = f"{doc['app_name']}-{stage}"
    statements = [
        _statement(
            "Logs",
            LOG_WRITE,
            [
                f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_prefix}:*",
                f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_prefix}-*:*",
            ],
        )
    ]
    statements += _table_statements(settings, function_prefix)
    if settings.call_timeout_queue:
        queue = f"arn:aws:sqs:*:*:{settings.call_timeout_queue}"
        statements.append(_statement("CallTimeoutQueue", sorted(set(QUEUE_ACTIONS + QUEUE_CONSUME)), [queue]))
    # The WebSocket API's id is known only once deployed: any API of the account, this stage's name.
    api_stage = doc["stages"][stage].get("api_gateway_stage") or doc.get("api_gateway_stage", "api")
    statements.append(
        _statement(
            "WebSocketConnections",
            ["execute-api:ManageConnections"],
            [f"arn:aws:execute-api:*:*:*/{api_stage}/{method}/@connections/*" for method in CONNECTION_METHODS],
        )
    )
    if settings.archive_bucket:
        bucket = f"arn:aws:s3:::{settings.archive_bucket}"
        for action, prefixes in OBJECT_ACTIONS.items():
            sid = "Archive" + action.split(":", 1)[1].removesuffix("Object")
            statements.append(_statement(sid, [action], [f"{bucket}/{p}*" for p in prefixes]))
        statements.append(
            _statement(
                "ArchiveList",
                ["s3:ListBucket"],
                [bucket],
                Condition={"StringLike": {"s3:prefix": [f"{p}*" for p in LIST_PREFIXES]}},
            )
        )
        statements.append(_statement("ArchiveBucketLocation", ["s3:GetBucketLocation"], [bucket]))
        statements += _athena_statements(settings)
    statements += _scaling_statements(load_targets_config(stage, settings.scaling_file)["targets"])
    statements.append(_statement("ReportMail", ["ses:SendRawEmail"], ["arn:aws:ses:*:*:identity/*"]))
    return {"Version": "2012-10-17", "Statement": statements}


def _table_statements(settings: Settings, function_prefix: str) -> list[dict[str, Any]]:
    """Per table what the app does to it and to its indexes; the readings stream, if a table has one."""
    out: list[dict[str, Any]] = []
    streams = []
    for name, model in stage_tables(settings).items():
        key = model.__name__
        if key not in TABLE_ACTIONS:
            raise KeyError(f"infra/policies.py: declare what the app does to {key} ({name}) in TABLE_ACTIONS")
        label = _sid(name.removeprefix(function_prefix + "-")) + "Table"
        out.append(_statement(label, [f"dynamodb:{a}" for a in TABLE_ACTIONS[key]], [_table_arn(name)]))
        indexes = sorted(index.Meta.index_name for index in model._indexes.values())
        if indexes and INDEX_ACTIONS.get(key):
            out.append(
                _statement(
                    label.removesuffix("Table") + "Indexes",
                    [f"dynamodb:{a}" for a in INDEX_ACTIONS[key]],
                    [f"{_table_arn(name)}/index/{index}" for index in indexes],
                )
            )
        if getattr(model.Meta, "stream_view_type", None):
            streams.append(f"{_table_arn(name)}/stream/*")
    if streams:
        out.append(_statement("ReadingsStream", STREAM_READ, streams))
    return out


def _athena_statements(settings: Settings) -> list[dict[str, Any]]:
    """The rollup's Athena queries: start, watch and read them in the workgroup; the Glue catalog they read."""
    db = settings.athena_database
    database = ["arn:aws:glue:*:*:catalog", f"arn:aws:glue:*:*:database/{db}"]
    tables = [f"arn:aws:glue:*:*:table/{db}/{t}" for t in (ATHENA_LINES_TABLE, ATHENA_COMPACT_TABLE)]
    results = settings.athena_output.removeprefix("s3://").rstrip("/")
    return [
        _statement("AthenaResults", ["s3:GetObject", "s3:PutObject"], [f"arn:aws:s3:::{results}/*"]),
        _statement("AthenaQueries", ATHENA_ACTIONS, [f"arn:aws:athena:*:*:workgroup/{settings.athena_workgroup}"]),
        # (Glue checks GetDatabase on the catalog and the database, GetTable on those and the table.)
        _statement("AthenaDatabase", ["glue:GetDatabase"], database),
        _statement("AthenaTables", ["glue:GetTable"], database + tables),
    ]


def _scaling_statements(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scaling report's reads of its metrics and of each target, and changes of `apply` targets."""
    out: list[dict[str, Any]] = []
    if targets:
        out.append(_statement("ScalingMetrics", ["cloudwatch:GetMetricData"], ["*"]))
    for target in targets:
        read, change = TARGET_ACTIONS[target["kind"]]
        actions = [read] + ([change] if target.get("mode", "report") == "apply" else [])
        scoped = [a for a in actions if a not in UNSCOPED]
        if read in UNSCOPED:
            out.append(_statement(f"Scaling{_sid(target['name'])}Read", [read], ["*"]))
        if scoped:
            out.append(
                _statement(f"Scaling{_sid(target['name'])}", scoped, [_target_arn(target["kind"], target["resource"])])
            )
    return out


def policy_files(config_file: Path = CHALICE_CONFIG) -> dict[Path, str]:
    """Every stage's policy file and the text it should hold."""
    doc = json.loads(config_file.read_text())
    out = {}
    for stage, values in doc["stages"].items():
        name = values.get("iam_policy_file")
        if name:
            out[config_file.parent / name] = json.dumps(stage_policy(stage, config_file), indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.policies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CHALICE_CONFIG)
    parser.add_argument("--check", action="store_true", help="exit 1 if a policy file differs; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in policy_files(args.config).items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"{path} is stale: run `python -m infra.policies` (make policies)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
