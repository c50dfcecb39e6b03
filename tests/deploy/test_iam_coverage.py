"""Every AWS call the app makes in the test suite is allowed by its stage's policy, and nothing more is.

The calls are recorded by tests/deploy/iam_recorder.py (botocore hooks on every client;
attributed to the app, to bootstrap or to the tests by the calling stack). These tests run
after all the others (the `iam_coverage` mark), so they judge the whole suite's calls:

- forward: each call the app made is allowed by the policy file of the stage it ran as;
- reverse: each grant of the policy is used by some call, or by the Lambda service on the
  function's behalf (log streams, reading the stream and the queue of an event source);
- mutation: removing any single action or resource from the policy makes a call fail.

The reverse and mutation checks need the whole suite; run alone, they skip. The calls of
stages other than `test` (the local stack runs as `dev`) are judged by their own policy, and
mapped onto the test stage's names for the reverse check: the policies of all stages are made
by one function of the stage's names (tests/deploy/test_policies.py).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from chalice.app import DynamoDBEventConfig, SQSEventConfig

from chalicelib.domain.rollup_sql import ATHENA_COMPACT_TABLE, ATHENA_LINES_TABLE
from chalicelib.domain.scaling.targets import load_targets_config
from infra.stages import stage_settings
from tests.deploy import iam_recorder
from tests.deploy.conftest import ROOT
from tests.deploy.iam import ACCOUNT, REGION, Policy, Request, UnmappedCallError, requests_of
from tests.deploy.iam_recorder import Call

pytestmark = pytest.mark.iam_coverage
CONFIG = ROOT / ".chalice" / "config.json"
CANONICAL = "test"
# Calls the code makes only in a configuration no deployed stage uses, and why.
LOCAL_ONLY = {
    ("cloudwatch", "PutMetricData", "chalicelib/adapters/metrics.py"): (
        "METRICS_SINK=cloudwatch is the local stack's sink (moto's CloudWatch); in Lambda metrics leave as EMF"
    ),
}


def _config() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(CONFIG.read_text())
    return doc


def stage_policy(stage: str) -> Policy:
    return Policy(json.loads((CONFIG.parent / _config()["stages"][stage]["iam_policy_file"]).read_text()))


def _local_only(call: Call) -> bool:
    return any(
        call.service == service and call.operation == op and call.where.startswith(where)
        for service, op, where in LOCAL_ONLY
    )


@cache
def stage_names(stage: str) -> tuple[str, ...]:
    """The stage's resource names, in an order shared by every stage (so they map one to one)."""
    settings = stage_settings(stage, CONFIG)
    names = [
        value
        for field, value in sorted(vars(settings).items())
        if (field.endswith("_table") or field in ("archive_bucket", "call_timeout_queue", "athena_database")) and value
    ]
    names += [t["resource"] for t in load_targets_config(stage, settings.scaling_file)["targets"]]
    names.append(f"{_config()['app_name']}-{stage}")  # functions: iotcloud-<stage>[-<handler>]
    return tuple(names)


def to_canonical(call: Call) -> Call:
    """The same call, made by the canonical stage (its resource names swapped one for one)."""
    if call.stage == CANONICAL:
        return call
    pairs = sorted(zip(stage_names(call.stage), stage_names(CANONICAL), strict=True), key=lambda p: -len(p[0]))

    def swap(value: str) -> str:
        for old, new in pairs:
            value = re.sub(rf"(?<![\w-]){re.escape(old)}(?=$|[^\w]|-)", new, value)
        return value

    return replace(call, stage=CANONICAL, params=tuple((k, swap(v)) for k, v in call.params))


def service_requests(stage: str) -> list[Request]:
    """What the Lambda service does with the functions' role: write their logs, poll their event sources."""
    from app import app

    prefix = f"{_config()['app_name']}-{stage}"
    functions = [prefix] if app.routes else []
    functions += [f"{prefix}-{s.name}" for s in app.event_sources]
    websocket = {
        "$connect": "websocket_connect",
        "$default": "websocket_message",
        "$disconnect": "websocket_disconnect",
    }
    functions += [f"{prefix}-{websocket[route]}" for route in app.websocket_handlers]
    functions += [f"{prefix}-{f.name}" for f in app.pure_lambda_functions]
    out = []
    for function in functions:
        stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function}:log-stream:2026/01/01/[$LATEST]0"
        out += [
            Request(a, stream, why=f"Lambda logs of {function}") for a in ("logs:CreateLogStream", "logs:PutLogEvents")
        ]
    settings = stage_settings(stage, CONFIG)
    for source in app.event_sources:
        if isinstance(source, DynamoDBEventConfig):
            table = source.stream_arn.split(":table/", 1)[1].split("/stream/", 1)[0]
            table = dict(zip(stage_names(CANONICAL), stage_names(stage), strict=True)).get(table, table)
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2026-01-01T00:00:00.000"
            for action in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"):
                out.append(Request(f"dynamodb:{action}", arn, why=f"event source of {source.name}"))
        elif isinstance(source, SQSEventConfig):
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{settings.call_timeout_queue}"
            for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes"):
                out.append(Request(f"sqs:{action}", arn, why=f"event source of {source.name}"))
    return out + athena_requests(stage)


def athena_requests(stage: str) -> list[Request]:
    """What Athena does with the caller's credentials for the rollup's queries (ROLLUP_ENGINE=athena;
    the local stack's DuckDB stands in for it, so these are not recorded calls): read the Glue tables,
    find the bucket, scan the compaction, write the result files (the app reads them itself)."""
    s = stage_settings(stage, CONFIG)
    db, bucket = s.athena_database, s.archive_bucket
    results = s.athena_output.removeprefix("s3://").rstrip("/")
    why = "Athena, for the rollup's queries"
    database = [f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog", f"arn:aws:glue:{REGION}:{ACCOUNT}:database/{db}"]
    tables = [f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{db}/{t}" for t in (ATHENA_LINES_TABLE, ATHENA_COMPACT_TABLE)]
    # (GetDatabase is checked on the catalog and the database; GetTable on those and the table.)
    out = [Request("glue:GetDatabase", arn, why=why) for arn in database]
    out += [Request("glue:GetTable", arn, why=why) for arn in database + tables]
    out.append(Request("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}", why=why))
    out.append(Request("s3:PutObject", f"arn:aws:s3:::{results}/q-1.csv", why=why))
    out.append(Request("s3:GetObject", f"arn:aws:s3:::{bucket}/compact/dt=2026-01-01/hour=00/part-0.parquet", why=why))
    return out


def app_requests(calls: Iterable[Call]) -> tuple[list[Request], list[str]]:
    requests, unmapped = [], []
    for call in calls:
        if _local_only(call):
            continue
        try:
            requests += requests_of(call)
        except UnmappedCallError as e:
            unmapped.append(str(e))
    return requests, sorted(set(unmapped))


def _whole_suite() -> None:
    if not iam_recorder.whole_suite_collected():
        pytest.skip("judging what the policy allows but the code never does needs the whole suite")


def test_recording_worked() -> None:
    assert iam_recorder.ERRORS == []
    calls = iam_recorder.app_calls()
    if iam_recorder.whole_suite_collected():
        # Both client families are hooked: boto3's (S3) and PynamoDB's own session (DynamoDB).
        assert {c.service for c in calls} >= {"dynamodb", "s3"}, calls


def test_every_call_the_app_makes_is_allowed_by_its_stage_policy() -> None:
    denied: list[str] = []
    unmapped: list[str] = []
    by_stage: dict[str, list[Call]] = {}
    for call in iam_recorder.app_calls():
        by_stage.setdefault(call.stage, []).append(call)
    for stage, calls in sorted(by_stage.items()):
        assert stage in _config()["stages"], f"calls made as unknown stage {stage!r}: {calls[:3]}"
        requests, missing = app_requests(calls)
        unmapped += missing
        denied += [f"[{stage}] {r}" for r in stage_policy(stage).denied(requests)]
    assert unmapped == []
    assert denied == [], "the policy does not allow:\n" + "\n".join(denied)


def test_local_only_calls_stay_local() -> None:
    for stage, values in _config()["stages"].items():
        env = {**_config().get("environment_variables", {}), **values.get("environment_variables", {})}
        assert env.get("METRICS_SINK", "emf") == "emf", stage


def _canonical_requests() -> list[Request]:
    requests, unmapped = app_requests(to_canonical(c) for c in iam_recorder.app_calls())
    assert unmapped == []
    return requests + service_requests(CANONICAL)


def test_the_policy_allows_nothing_the_code_never_does() -> None:
    _whole_suite()
    unused = stage_policy(CANONICAL).unused(_canonical_requests())
    assert unused == [], "granted but never used:\n" + "\n".join(map(str, unused))


def _without(document: dict[str, Any], index: int, key: str, value: str) -> dict[str, Any]:
    mutated = copy.deepcopy(document)
    statement = mutated["Statement"][index]
    statement[key] = [v for v in statement[key] if v != value]
    if not statement[key]:
        del mutated["Statement"][index]
    return mutated


def test_removing_any_action_or_resource_from_the_policy_fails_a_call() -> None:
    _whole_suite()
    requests = _canonical_requests()
    document = json.loads((CONFIG.parent / _config()["stages"][CANONICAL]["iam_policy_file"]).read_text())
    assert Policy(document).denied(requests) == []
    unnoticed = []
    for index, statement in enumerate(document["Statement"]):
        for key in ("Action", "Resource"):
            for value in statement[key]:
                if not Policy(_without(document, index, key, value)).denied(requests):
                    unnoticed.append(f"{statement['Sid']}: {key} {value}")
    assert unnoticed == [], "removing these broke no call:\n" + "\n".join(unnoticed)


def test_a_policy_without_batch_writes_fails_the_ingest_path(api: Any, device: dict[str, Any]) -> None:
    """Self-contained: whatever else ran, one telemetry request needs dynamodb:BatchWriteItem on readings."""
    with iam_recorder.listening() as calls:
        assert api.post(device["token"], {"temp": 21.5}).status_code == 200
    requests, unmapped = app_requests(c for c in calls if c.origin == "app")
    assert unmapped == []
    path: Path = CONFIG.parent / _config()["stages"][CANONICAL]["iam_policy_file"]
    document = json.loads(path.read_text())
    assert Policy(document).denied(requests) == []
    index = next(
        i
        for i, s in enumerate(document["Statement"])
        if "dynamodb:BatchWriteItem" in s["Action"]
        and any(r.endswith(":table/iotcloud-test-readings") for r in s["Resource"])
    )
    denied = Policy(_without(document, index, "Action", "dynamodb:BatchWriteItem")).denied(requests)
    assert [str(r).split(" (")[0] for r in denied] == [
        f"dynamodb:BatchWriteItem on arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/iotcloud-test-readings"
    ]
