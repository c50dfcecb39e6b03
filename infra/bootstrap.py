"""Create, inspect and delete what the app needs besides what `chalice deploy` creates.

`chalice deploy` makes the Lambda functions, the APIs, the schedules and the event
source mappings; this makes the rest, idempotently: the DynamoDB tables (stream, TTL,
GSIs), the archive bucket (encryption, public access block, lifecycle), the queue,
the scaling scenario's alarms and the dashboard, and asks SES to verify the sender.
The local stack runs this same code against moto (`bootstrap(settings, clients)`).

    python -m infra.bootstrap --stage prod --dry-run     # the plan, no AWS call
    python -m infra.bootstrap --stage prod               # ensure, then record for `chalice deploy`
    python -m infra.bootstrap admin-token --stage prod   # a first admin token (printed once)
    python -m infra.bootstrap post-deploy --stage prod   # after `chalice deploy`: batch failure reports
    python -m infra.bootstrap teardown --stage prod [--force] [--dry-run]

Recording: `chalice deploy` loads app.py with the stage's `environment_variables`
(.chalice/config.json), and the archiver subscribes to READINGS_STREAM_ARN read then;
so a real run writes the readings table's stream ARN there. Runs against a custom
endpoint (AWS_ENDPOINT_URL: moto) do not record unless `--record` is given, and
`--no-record` never does. The local stack calls `bootstrap()` directly, which never
records.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.attributes import TTLAttribute
from pynamodb.models import Model

from chalicelib import models
from chalicelib.config import Settings
from chalicelib.domain.rollup_sql import ATHENA_COMPACT_TABLE, ATHENA_LINES_TABLE, athena_ddl
from chalicelib.domain.scaling.targets import alarm_name, load_targets_config
from infra.bootstrap_monitoring import ensure_monitoring
from infra.stages import CHALICE_CONFIG, machine_aws_environment, stage_environment, stage_settings

Clients = Callable[[str], Any]

BUCKET_ENCRYPTION: dict[str, Any] = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ARCHIVE_LIFECYCLE: dict[str, Any] = {
    "Rules": [
        {
            "ID": "archive-to-infrequent-access",
            "Status": "Enabled",
            "Filter": {"Prefix": "archive/"},
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
        }
    ]
}
# A Lambda event source mapping needs the queue's visibility timeout to be at least the
# function's timeout; AWS recommends six times it (functions here run 29 s at most by default).
QUEUE_ATTRIBUTES = {"VisibilityTimeout": "180", "SqsManagedSseEnabled": "true"}
STREAM_ARN_VARIABLE = "READINGS_STREAM_ARN"
ADMIN_HASHES_VARIABLE = "ADMIN_TOKEN_HASHES"
BATCH_FAILURES = ["ReportBatchItemFailures"]
# Concurrent batches per stream shard (Lambda's maximum, 10). Records of one partition key (a
# device) still go in order to one batch at a time, so per-device order holds; a shard's
# throughput is no longer one consumer invocation's (bench capacity: the live handler per shard).
STREAM_PARALLELIZATION = 10
STREAM_SOURCES = ("dynamodb_event", "kinesis_event")
_NOT_FOUND = {
    "ResourceNotFoundException",
    "ResourceNotFound",
    "NoSuchBucket",
    "NotFound",
    "404",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidLaunchTemplateName.NotFoundException",
}


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _NOT_FOUND


# --- What a stage is made of -----------------------------------------------------------------


@contextlib.contextmanager
def _bound(settings: Settings) -> Iterator[None]:
    """Bind the models to a stage for a while, then put back what they pointed at."""
    saved = [(m, m.Meta.table_name, m.Meta.region, m.Meta.host, m._connection) for m in models.ALL_MODELS]
    models.bind(settings)
    try:
        yield
    finally:
        for model, table, region, host, connection in saved:
            model.Meta.table_name, model.Meta.region, model.Meta.host = table, region, host
            model._connection = connection


def stage_tables(settings: Settings) -> dict[str, type[Model]]:
    """The stage's table names, each with the model that defines it."""
    with _bound(settings):
        return {m.Meta.table_name: m for m in models.ALL_MODELS}


def ttl_attribute(model: type[Model]) -> str | None:
    """The DynamoDB name of the model's TTL attribute, if it has one."""
    for attribute in model.get_attributes().values():
        if isinstance(attribute, TTLAttribute):
            return str(attribute.attr_name)
    return None


def stage_tags(stage: str, config_file: Path = CHALICE_CONFIG) -> dict[str, str]:
    """The stage's tags from .chalice/config.json (top level, then the stage's): Chalice tags the functions."""
    try:
        doc = json.loads(config_file.read_text())
    except OSError:
        return {}
    tags = dict(doc.get("tags", {}))
    tags.update(doc.get("stages", {}).get(stage, {}).get("tags", {}))
    return {str(k): str(v) for k, v in tags.items()}


def asg_targets(settings: Settings) -> list[dict[str, Any]]:
    return [t for t in load_targets_config(settings.stage, settings.scaling_file)["targets"] if t["kind"] == "asg"]


def alarm_names(settings: Settings) -> list[str]:
    config = load_targets_config(settings.stage, settings.scaling_file)
    return [alarm_name(settings.stage, t["name"], d) for t in config["targets"] for d in ("up", "down")]


def mail_identity(settings: Settings) -> str | None:
    """The SES identity reports are sent from (None: no mail, or mail over SMTP)."""
    if not settings.mail_from or settings.smtp_host:
        return None
    return parseaddr(settings.mail_from)[1] or None


def plan(settings: Settings) -> list[str]:
    """What bootstrap makes sure exists, in order."""
    steps = []
    for name, model in stage_tables(settings).items():
        details = ["on demand"]
        indexes = sorted(i.Meta.index_name for i in model._indexes.values())
        if indexes:
            details.append("GSIs " + ", ".join(indexes))
        if getattr(model.Meta, "stream_view_type", None):
            details.append(f"stream {model.Meta.stream_view_type}")
        ttl = ttl_attribute(model)
        if ttl:
            details.append(f"TTL on {ttl}")
        steps.append(f"DynamoDB table {name} ({'; '.join(details)})")
    if settings.archive_bucket:
        steps.append(
            f"S3 bucket {settings.archive_bucket} "
            "(SSE-S3, public access blocked, archive/ to Standard-IA after 30 days)"
        )
    if settings.call_timeout_queue:
        visibility = QUEUE_ATTRIBUTES["VisibilityTimeout"]
        steps.append(f"SQS queue {settings.call_timeout_queue} (SSE, visibility timeout {visibility} s)")
    groups = [t["resource"] for t in asg_targets(settings)]
    if groups:
        steps.append(f"EC2 launch template, Auto Scaling group and +/- policies: {', '.join(groups)}")
    steps.append(f"CloudWatch alarms {', '.join(alarm_names(settings))}")
    steps.append(f"CloudWatch dashboard iotcloud-{settings.stage}")
    identity = mail_identity(settings)
    if identity:
        steps.append(f"SES identity {identity} (verification requested if not verified)")
    if settings.rollup_engine == "athena":
        steps.append(
            f"Athena: Glue database {settings.athena_database} with tables {ATHENA_LINES_TABLE} and "
            f"{ATHENA_COMPACT_TABLE} (partition projection), workgroup {settings.athena_workgroup} "
            f"(results at {settings.athena_output})"
        )
    return steps


# --- Ensure -----------------------------------------------------------------------------------


def ensure_tables(settings: Settings) -> None:
    """Create the stage's DynamoDB tables from the models if missing, and wait until they are active."""
    with _bound(settings):
        for model in models.ALL_MODELS:
            if not model.exists():
                model.create_table(wait=True)


def _key_schema(keys: Any) -> list[dict[str, str]]:
    return sorted(keys, key=lambda k: k["KeyType"] != "HASH")


def reconcile_tables(dynamodb: Any, settings: Settings, tags: dict[str, str]) -> None:
    """Bring tables that already existed up to the models: stream, TTL, missing GSIs, tags.

    A table whose key schema differs cannot be fixed in place: that is an error.
    """
    for name, model in stage_tables(settings).items():
        table = dynamodb.describe_table(TableName=name)["Table"]
        schema = model._get_schema()
        if _key_schema(table["KeySchema"]) != _key_schema(schema["key_schema"]):
            raise RuntimeError(f"table {name} exists with another key schema: {table['KeySchema']}")
        view = getattr(model.Meta, "stream_view_type", None)
        stream = table.get("StreamSpecification") or {}
        if view and (not stream.get("StreamEnabled") or stream.get("StreamViewType") != view):
            if stream.get("StreamEnabled"):
                raise RuntimeError(f"table {name} streams {stream.get('StreamViewType')}, the app needs {view}")
            dynamodb.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
            dynamodb.get_waiter("table_exists").wait(TableName=name)
        existing = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        for index in schema["global_secondary_indexes"]:
            if index["index_name"] in existing:
                continue
            definitions = {a["AttributeName"]: a for a in schema["attribute_definitions"]}
            wanted = {k["AttributeName"] for k in index["key_schema"]}
            # DynamoDB creates one index per UpdateTable, and the next only once it is active.
            dynamodb.update_table(
                TableName=name,
                AttributeDefinitions=[definitions[a] for a in sorted(wanted)],
                GlobalSecondaryIndexUpdates=[
                    {
                        "Create": {
                            "IndexName": index["index_name"],
                            "KeySchema": _key_schema(index["key_schema"]),
                            "Projection": index["projection"],
                        }
                    }
                ],
            )
            _wait_for_indexes(dynamodb, name)
        ttl = ttl_attribute(model)
        if ttl:
            current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or current.get("AttributeName") != ttl:
                dynamodb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
                )
        if tags:
            arn = table["TableArn"]
            have = {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])}
            missing = {k: v for k, v in tags.items() if have.get(k) != v}
            if missing:
                dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in missing.items()])


def _wait_for_indexes(dynamodb: Any, table: str, attempts: int = 600) -> None:
    import time

    for _ in range(attempts):
        described = dynamodb.describe_table(TableName=table)["Table"]
        if all(i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in described.get("GlobalSecondaryIndexes", [])):
            return
        time.sleep(2)
    raise TimeoutError(f"the indexes of {table} did not become active")


def ensure_bucket(s3: Any, settings: Settings, tags: dict[str, str] | None = None) -> None:
    """Create the archive bucket if missing, encrypted, private, with its lifecycle (and tags)."""
    bucket = settings.archive_bucket
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as e:
        if not _not_found(e):
            raise RuntimeError(f"bucket {bucket} exists but is not this account's ({e})") from e
        if settings.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": settings.region})
    current = describe_bucket(s3, bucket) or {}
    if current.get("encryption") != _encryption_view(BUCKET_ENCRYPTION):
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=BUCKET_ENCRYPTION)
    if current.get("public_access") != PUBLIC_ACCESS_BLOCK:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    if current.get("lifecycle") != ARCHIVE_LIFECYCLE["Rules"]:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=ARCHIVE_LIFECYCLE)
    if tags and any(current.get("tags", {}).get(k) != v for k, v in tags.items()):
        merged = {**current.get("tags", {}), **tags}
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in merged.items()]})


def ensure_queue(sqs: Any, settings: Settings, tags: dict[str, str]) -> None:
    """The WAMP call-timeout queue (CreateQueue is idempotent for identical attributes)."""
    try:
        url = sqs.get_queue_url(QueueName=settings.call_timeout_queue)["QueueUrl"]
    except ClientError as e:
        if not _not_found(e):
            raise
        sqs.create_queue(QueueName=settings.call_timeout_queue, Attributes=QUEUE_ATTRIBUTES, tags=tags)
        return
    have = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_ATTRIBUTES))["Attributes"]
    changed = {k: v for k, v in QUEUE_ATTRIBUTES.items() if have.get(k) != v}
    if changed:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)


def ensure_workgroup(athena: Any, settings: Settings) -> None:
    """The stage's Athena workgroup: results at ATHENA_OUTPUT, enforced, with CloudWatch metrics."""
    configuration = {
        "ResultConfiguration": {"OutputLocation": settings.athena_output},
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
    }
    try:  # AWS answers a missing workgroup with InvalidRequestException (moto: with no WorkGroup)
        found = "WorkGroup" in athena.get_work_group(WorkGroup=settings.athena_workgroup)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "InvalidRequestException":
            raise
        found = False
    if not found:
        athena.create_work_group(
            Name=settings.athena_workgroup,
            Configuration=configuration,
            Description=f"iotcloud {settings.stage}: the hourly rollup's queries",
        )


def ensure_athena_tables(athena: Any, settings: Settings, wait_s: float = 120.0) -> list[str]:
    """The rollup's Glue database and tables (ROLLUP_ENGINE=athena), by Athena DDL; each waited for.

    The statements are idempotent (IF NOT EXISTS); returns their execution ids.
    """
    from chalicelib.adapters.athena import AthenaQueries

    ensure_workgroup(athena, settings)
    out = []
    queries = AthenaQueries(athena, None, settings.athena_workgroup, settings.athena_output, settings.athena_database)
    statements = [f"CREATE DATABASE IF NOT EXISTS {settings.athena_database}", *athena_ddl(settings.archive_bucket)]
    for sql in statements:
        execution = queries.start(sql)
        deadline = time.monotonic() + wait_s
        state = queries.state(execution)
        while not state.done and time.monotonic() < deadline:
            time.sleep(1.0)
            state = queries.state(execution)
        if state.state != "SUCCEEDED":
            raise RuntimeError(f"Athena DDL {sql.splitlines()[0]!r}: {state.state} {state.reason}")
        out.append(execution)
    return out


def ensure_mail_identity(ses: Any, settings: Settings) -> None:
    """SES sends only from verified identities: request verification of MAIL_FROM.

    On AWS this mails a verification link (and in the SES sandbox recipients must be
    verified too); moto verifies at once.
    """
    address = mail_identity(settings)
    if address is None:
        return
    status = ses.get_identity_verification_attributes(Identities=[address])["VerificationAttributes"]
    if status.get(address, {}).get("VerificationStatus") not in ("Success", "Pending"):
        ses.verify_email_identity(EmailAddress=address)


def bootstrap(settings: Settings, clients: Clients, config_file: Path = CHALICE_CONFIG) -> dict[str, Any]:
    """Ensure every resource of the stage exists; `clients(service)` gives boto3 clients.

    Returns the alarms, dashboard and groups made, and the readings table's stream ARN.
    Tags come from the stage's `tags` in `config_file`.
    """
    tags = stage_tags(settings.stage, config_file)
    ensure_tables(settings)
    dynamodb = clients("dynamodb")
    reconcile_tables(dynamodb, settings, tags)
    if settings.archive_bucket:
        ensure_bucket(clients("s3"), settings, tags)
    if settings.call_timeout_queue:
        ensure_queue(clients("sqs"), settings, tags)
    ensure_mail_identity(clients("ses"), settings)
    if settings.rollup_engine == "athena" and settings.archive_bucket:
        ensure_athena_tables(clients("athena"), settings)
    config = load_targets_config(settings.stage, settings.scaling_file)
    made = ensure_monitoring(clients, settings.stage, settings.region, config)
    stream = dynamodb.describe_table(TableName=settings.readings_table)["Table"].get("LatestStreamArn")
    return {**made, "readings_stream_arn": stream}


# --- Inspect ----------------------------------------------------------------------------------


def _encryption_view(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"SSEAlgorithm": r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]} for r in config.get("Rules", [])]


def _optional(call: Callable[[], Any], default: Any = None) -> Any:
    try:
        return call()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if _not_found(e) or code.startswith("NoSuch") or code.endswith("NotFound") or code.endswith("NotFoundError"):
            return default
        raise


def describe_bucket(s3: Any, bucket: str) -> dict[str, Any] | None:
    if _optional(lambda: s3.head_bucket(Bucket=bucket), False) is False:
        return None
    encryption = _optional(lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"], {})
    return {
        "encryption": _encryption_view(encryption),
        "public_access": _optional(
            lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"], {}
        ),
        "lifecycle": _optional(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"], []),
        "tags": {t["Key"]: t["Value"] for t in _optional(lambda: s3.get_bucket_tagging(Bucket=bucket)["TagSet"], [])},
    }


def describe_table(dynamodb: Any, name: str) -> dict[str, Any] | None:
    table = _optional(lambda: dynamodb.describe_table(TableName=name)["Table"])
    if table is None:
        return None
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
    return {
        "keys": _key_schema(table["KeySchema"]),
        "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
        "billing": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
        "gsis": {
            i["IndexName"]: {"keys": _key_schema(i["KeySchema"]), "projection": i["Projection"]}
            for i in table.get("GlobalSecondaryIndexes", [])
        },
        "stream": table.get("StreamSpecification"),
        "stream_arn": table.get("LatestStreamArn"),
        "ttl": {"status": ttl.get("TimeToLiveStatus"), "attribute": ttl.get("AttributeName")},
        "tags": {t["Key"]: t["Value"] for t in tags},
    }


_ALARM_FIELDS = (
    "Threshold",
    "ComparisonOperator",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "TreatMissingData",
    "ActionsEnabled",
    "Metrics",
)


def describe_alarms(cloudwatch: Any, names: list[str]) -> dict[str, Any]:
    """The fields bootstrap sets on each alarm (None for a missing one)."""
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", [])}
    return {
        name: (
            {k: found[name].get(k) for k in _ALARM_FIELDS}
            | {"AlarmActions": sorted(found[name].get("AlarmActions", []))}
            if name in found
            else None
        )
        for name in names
    }


def describe_groups(autoscaling: Any, ec2: Any, targets: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scaling scenario's groups (sizes, policies) and launch templates (None for missing ones)."""
    groups: dict[str, Any] = {}
    templates: dict[str, Any] = {}
    for target in targets:
        group = target["resource"]
        found_groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        groups[group] = None
        if found_groups:
            g = found_groups[0]
            policies = autoscaling.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]
            groups[group] = {
                "min": g["MinSize"],
                "max": g["MaxSize"],
                "policies": sorted((p["PolicyName"], p.get("ScalingAdjustment"), p.get("Cooldown")) for p in policies),
            }
        template = target["asg"]["launch_template"]
        found_templates = ec2.describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": [template]}]
        )["LaunchTemplates"]
        templates[template] = {"exists": True} if found_templates else None
    return groups, templates


def describe_stage(settings: Settings, clients: Clients) -> dict[str, Any]:
    """Everything bootstrap manages, as it is now (None for what does not exist)."""
    dynamodb, cloudwatch = clients("dynamodb"), clients("cloudwatch")
    state: dict[str, Any] = {"tables": {name: describe_table(dynamodb, name) for name in stage_tables(settings)}}
    if settings.archive_bucket:
        state["bucket"] = {settings.archive_bucket: describe_bucket(clients("s3"), settings.archive_bucket)}
    if settings.call_timeout_queue:
        sqs = clients("sqs")
        url = _optional(lambda: sqs.get_queue_url(QueueName=settings.call_timeout_queue)["QueueUrl"])
        attributes = None
        if url:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_ATTRIBUTES))["Attributes"]
        state["queue"] = {settings.call_timeout_queue: attributes}
    state["alarms"] = describe_alarms(cloudwatch, alarm_names(settings))
    dashboard = f"iotcloud-{settings.stage}"
    body = _optional(lambda: cloudwatch.get_dashboard(DashboardName=dashboard)["DashboardBody"])
    state["dashboard"] = {dashboard: json.loads(body) if body else None}
    state["groups"], state["launch_templates"] = describe_groups(
        clients("autoscaling"), clients("ec2"), asg_targets(settings)
    )
    identity = mail_identity(settings)
    if identity:
        status = clients("ses").get_identity_verification_attributes(Identities=[identity])["VerificationAttributes"]
        state["mail_identity"] = {identity: status.get(identity, {}).get("VerificationStatus")}
    return state


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two describe_stage() results, one line per resource."""
    lines = []
    for kind in sorted(set(before) | set(after)):
        old, new = before.get(kind) or {}, after.get(kind) or {}
        for name in sorted(set(old) | set(new)):
            a, b = old.get(name), new.get(name)
            if a == b:
                continue
            if a is None:
                lines.append(f"created {kind} {name}")
            elif b is None:
                lines.append(f"deleted {kind} {name}")
            elif isinstance(a, dict) and isinstance(b, dict):
                fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                lines.append(f"updated {kind} {name}: {', '.join(fields)}")
            else:
                lines.append(f"updated {kind} {name}: {a!r} -> {b!r}")
    return lines


# --- Teardown ---------------------------------------------------------------------------------


def data_held(settings: Settings, clients: Clients) -> list[str]:
    """The stage's tables and bucket that hold data (teardown refuses those without --force)."""
    dynamodb = clients("dynamodb")
    held = []
    for name in stage_tables(settings):
        scanned = _optional(functools.partial(dynamodb.scan, TableName=name, Limit=1, Select="COUNT"))
        if scanned and scanned.get("Count", 0):
            held.append(f"table {name} holds items")
    if settings.archive_bucket:
        s3 = clients("s3")
        listed = _optional(lambda: s3.list_object_versions(Bucket=settings.archive_bucket, MaxKeys=1))
        if listed and (listed.get("Versions") or listed.get("DeleteMarkers")):
            held.append(f"bucket {settings.archive_bucket} holds objects")
    if settings.call_timeout_queue:
        sqs = clients("sqs")
        url = _optional(lambda: sqs.get_queue_url(QueueName=settings.call_timeout_queue)["QueueUrl"])
        if url:
            counts = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if any(int(v) for v in counts.values()):
                held.append(f"queue {settings.call_timeout_queue} holds messages")
    return held


def _empty_bucket(s3: Any, bucket: str) -> int:
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True})
        deleted += len(doomed)
    return deleted


def teardown(settings: Settings, clients: Clients, *, force: bool = False, dry_run: bool = False) -> list[str]:
    """Delete what bootstrap made for the stage; returns what it did (or would do).

    Refuses (RuntimeError, nothing deleted) while a table, the bucket or the queue holds
    data, unless `force`; a dry run says so and lists what `force` would delete. The SES
    identity stays: it may serve other apps, and verifying it again takes a person.
    """
    held = data_held(settings, clients)
    refusal = "refusing to delete data without --force: " + "; ".join(held)
    if held and not force and not dry_run:
        raise RuntimeError(refusal)
    state = describe_stage(settings, clients)
    verb = "would delete" if dry_run else "deleted"
    done: list[str] = [f"{refusal} (a dry run: what --force would delete follows)"] if held and not force else []
    for delete in (_delete_monitoring, _delete_scaling, _delete_queue, _delete_bucket, _delete_tables):
        done += delete(state, clients, verb, dry_run)
    return done


def _existing(described: dict[str, Any]) -> list[str]:
    """The names describe_stage found (it maps each name to its description, or None when absent)."""
    return [name for name, found in described.items() if found is not None]


def _delete_monitoring(state: dict[str, Any], clients: Clients, verb: str, dry_run: bool) -> list[str]:
    """The stage's alarms and dashboard."""
    done: list[str] = []
    cloudwatch = clients("cloudwatch")
    alarms = _existing(state["alarms"])
    if alarms:
        if not dry_run:
            cloudwatch.delete_alarms(AlarmNames=alarms)
        done += [f"{verb} alarm {name}" for name in alarms]
    for name in _existing(state["dashboard"]):
        if not dry_run:
            cloudwatch.delete_dashboards(DashboardNames=[name])
        done.append(f"{verb} dashboard {name}")
    return done


def _delete_scaling(state: dict[str, Any], clients: Clients, verb: str, dry_run: bool) -> list[str]:
    """The scenario's auto scaling groups (with their policies) and launch templates."""
    done: list[str] = []
    autoscaling, ec2 = clients("autoscaling"), clients("ec2")
    for group in _existing(state["groups"]):
        if not dry_run:
            autoscaling.delete_auto_scaling_group(AutoScalingGroupName=group, ForceDelete=True)
        done.append(f"{verb} auto scaling group {group} and its policies")
    for template in _existing(state["launch_templates"]):
        if not dry_run:
            ec2.delete_launch_template(LaunchTemplateName=template)
        done.append(f"{verb} launch template {template}")
    return done


def _delete_queue(state: dict[str, Any], clients: Clients, verb: str, dry_run: bool) -> list[str]:
    done: list[str] = []
    for queue in _existing(state.get("queue", {})):
        if not dry_run:
            sqs = clients("sqs")
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])
        done.append(f"{verb} queue {queue}")
    return done


def _delete_bucket(state: dict[str, Any], clients: Clients, verb: str, dry_run: bool) -> list[str]:
    """The bucket, emptied first (every object version)."""
    done: list[str] = []
    for bucket in _existing(state.get("bucket", {})):
        s3 = clients("s3")
        if dry_run:
            done.append(f"{verb} bucket {bucket} and every object in it")
        else:
            objects = _empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
            done.append(f"{verb} bucket {bucket} ({objects} objects)")
    return done


def _delete_tables(state: dict[str, Any], clients: Clients, verb: str, dry_run: bool) -> list[str]:
    """The tables, each waited for until it is gone."""
    done: list[str] = []
    dynamodb = clients("dynamodb")
    for table in _existing(state["tables"]):
        if not dry_run:
            dynamodb.delete_table(TableName=table)
            dynamodb.get_waiter("table_not_exists").wait(TableName=table)
        done.append(f"{verb} table {table}")
    return done


# --- After `chalice deploy` -------------------------------------------------------------------


def deployed_event_sources(stage: str, project_dir: Path) -> list[dict[str, Any]]:
    """The event source mappings `chalice deploy` made for a stage (.chalice/deployed/<stage>.json)."""
    path = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `chalice deploy --stage {stage}` first")
    resources = json.loads(path.read_text()).get("resources", [])
    kinds = ("dynamodb_event", "sqs_event", "kinesis_event")
    return [r for r in resources if r.get("resource_type") in kinds and r.get("event_uuid")]


def report_batch_failures(lambda_client: Any, mappings: list[dict[str, Any]]) -> list[str]:
    """Make stream and queue mappings honour `batchItemFailures`, and stream mappings take
    STREAM_PARALLELIZATION batches per shard at once (Chalice sets neither)."""
    done = []
    for mapping in mappings:
        uuid = mapping["event_uuid"]
        current = lambda_client.get_event_source_mapping(UUID=uuid)
        changes: dict[str, Any] = {}
        if BATCH_FAILURES[0] not in current.get("FunctionResponseTypes", []):
            changes["FunctionResponseTypes"] = BATCH_FAILURES
        stream = mapping.get("resource_type") in STREAM_SOURCES
        if stream and current.get("ParallelizationFactor", 1) != STREAM_PARALLELIZATION:
            changes["ParallelizationFactor"] = STREAM_PARALLELIZATION
        if not changes:
            continue
        lambda_client.update_event_source_mapping(UUID=uuid, **changes)
        done.append(f"{mapping['name']}: " + ", ".join(f"{k} {v}" for k, v in changes.items()))
    return done


# --- .chalice/config.json ---------------------------------------------------------------------


def record_environment(stage: str, values: dict[str, str | None], config_file: Path = CHALICE_CONFIG) -> bool:
    """Set (or, for None, remove) variables of a stage's environment_variables; True if the file changed."""
    doc = json.loads(config_file.read_text())
    env = doc["stages"][stage].setdefault("environment_variables", {})
    before = dict(env)
    for name, value in values.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if env == before:
        return False
    config_file.write_text(json.dumps(doc, indent=2) + "\n")
    return True


def _boto_clients(settings: Settings) -> Clients:
    import boto3

    made: dict[str, Any] = {}

    def clients(service: str) -> Any:
        if service not in made:
            made[service] = boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url)
        return made[service]

    return clients


def _recording(args: argparse.Namespace, settings: Settings) -> bool:
    return bool(args.record) if args.record is not None else settings.aws_endpoint_url is None


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    """A subcommand's parser ("" for the default, ensure) with the options every subcommand takes."""
    parser = argparse.ArgumentParser(prog=f"python -m infra.bootstrap {command}".rstrip(), description=description)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--config", type=Path, default=CHALICE_CONFIG, help="the Chalice config (%(default)s)")
    return parser


def _main_ensure(argv: list[str]) -> int:
    parser = _parser("", "ensure a stage's resources")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing (no AWS call)")
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the stream ARN into the stage's environment_variables "
        "(default: yes, unless AWS_ENDPOINT_URL points at another endpoint)",
    )
    args = parser.parse_args(argv)
    settings = stage_settings(args.stage, args.config, overrides=machine_aws_environment())
    for step in plan(settings):
        print(("would ensure " if args.dry_run else "ensure ") + step)
    if args.dry_run:
        return 0
    clients = _boto_clients(settings)
    before = describe_stage(settings, clients)
    made = bootstrap(settings, clients, args.config)
    after = describe_stage(settings, clients)
    for line in changes(before, after) or ["no changes: every resource was in place"]:
        print(line)
    stream = made["readings_stream_arn"]
    if _recording(args, settings):
        changed = record_environment(args.stage, {STREAM_ARN_VARIABLE: stream}, args.config)
        print(f"{'recorded' if changed else 'already recorded'} {STREAM_ARN_VARIABLE}={stream} in {args.config}")
    else:
        print(f"not recorded (--no-record or a custom endpoint): {STREAM_ARN_VARIABLE}={stream}")
    summary = {
        "stage": settings.stage,
        "tables": sorted(stage_tables(settings)),
        "archive_bucket": settings.archive_bucket,
        "readings_stream_arn": stream,
        "alarms": made.get("alarms", []),
        "dashboard": made.get("dashboard"),
    }
    print(json.dumps(summary))
    return 0


def _main_admin_token(argv: list[str]) -> int:
    from chalicelib.domain.tokens import hash_token, new_admin_token

    parser = _parser(
        "admin-token", "make an admin token: print it once, add its SHA-256 to the stage's ADMIN_TOKEN_HASHES"
    )
    parser.add_argument("--replace", action="store_true", help="drop every other admin token of the stage")
    parser.add_argument("--no-record", dest="record", action="store_false", help="only print the token and its hash")
    args = parser.parse_args(argv)
    token = new_admin_token()
    digest = hash_token(token)
    if args.record:
        env = stage_environment(args.stage, args.config)
        hashes = [] if args.replace else [h for h in env.get(ADMIN_HASHES_VARIABLE, "").split(",") if h.strip()]
        record_environment(args.stage, {ADMIN_HASHES_VARIABLE: ",".join([*hashes, digest])}, args.config)
        print(f"added its SHA-256 to {ADMIN_HASHES_VARIABLE} of stage {args.stage} in {args.config}", file=sys.stderr)
        print(f"it works once the stage is deployed again (chalice deploy --stage {args.stage})", file=sys.stderr)
    else:
        print(f"SHA-256: {digest}", file=sys.stderr)
    print("admin token (shown this once, keep it secret):", file=sys.stderr)
    print(token)
    return 0


def _main_post_deploy(argv: list[str]) -> int:
    parser = _parser("post-deploy", "after `chalice deploy`: let stream and queue handlers report batch item failures")
    parser.add_argument("--project-dir", type=Path, default=CHALICE_CONFIG.parent.parent)
    args = parser.parse_args(argv)
    settings = stage_settings(args.stage, args.config, overrides=machine_aws_environment())
    mappings = deployed_event_sources(args.stage, args.project_dir)
    done = report_batch_failures(_boto_clients(settings)("lambda"), mappings)
    for line in done or [f"no changes: {len(mappings)} event source mappings already report batch item failures"]:
        print(line)
    return 0


def _main_teardown(argv: list[str]) -> int:
    parser = _parser("teardown", "delete what bootstrap made for a stage (run `chalice delete` for the rest)")
    parser.add_argument("--force", action="store_true", help="also delete tables, bucket and queue holding data")
    parser.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    settings = stage_settings(args.stage, args.config, overrides=machine_aws_environment())
    clients = _boto_clients(settings)
    try:
        done = teardown(settings, clients, force=args.force, dry_run=args.dry_run)
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        return 2
    for line in done or ["nothing to delete"]:
        print(line)
    if not args.dry_run and _recording(args, settings):
        record_environment(args.stage, {STREAM_ARN_VARIABLE: None}, args.config)
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "ensure": _main_ensure,
    "admin-token": _main_admin_token,
    "post-deploy": _main_post_deploy,
    "teardown": _main_teardown,
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    return _main_ensure(args)


if __name__ == "__main__":
    sys.exit(main())
