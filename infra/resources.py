"""The CloudFormation resources `chalice package --merge-template` adds: what bootstrap makes.

    python -m infra.resources --stage prod --out build/prod/resources.json

The template is built from the same sources as `infra.bootstrap`, so both paths
make the same resources:

- tables from the PynamoDB models (keys, GSIs and projections, stream, TTL), named as
  the stage's environment variables say;
- the bucket and the queue from bootstrap's constants (encryption, public access
  block, lifecycle; queue attributes);
- the scaling scenario (launch template, group, policies), the alarms and the dashboard
  by running `bootstrap_monitoring.ensure_monitoring` against stand-in clients that
  answer "nothing exists yet" and keep every write, each write then translated into
  its resource;
- the SES identity of MAIL_FROM when reports are mailed through SES;
- the ingest function's Function URL (auth NONE: the app checks the device token) and the
  grants it needs, with JSON logs and platform lines at WARN on that hot path.

It also rewires Chalice's event sources: a stream handler subscribes to the table's
stream with `Fn::GetAtt` (Chalice writes the ARN it saw when it loaded app.py), a queue
handler to the queue, and stream and queue mappings get
`FunctionResponseTypes: [ReportBatchItemFailures]` and stream mappings `ParallelizationFactor`
(bootstrap.STREAM_PARALLELIZATION), which Chalice does not set.
Tables and bucket are kept when the stack is deleted (DeletionPolicy Retain):
`python -m infra.bootstrap teardown` removes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from chalice.app import Chalice, DynamoDBEventConfig, KinesisEventConfig, SQSEventConfig
from chalice.config import Config
from chalice.utils import to_cfn_resource_name

from chalicelib.config import Settings
from chalicelib.domain.scaling.targets import load_targets_config
from infra.bootstrap import (
    ARCHIVE_LIFECYCLE,
    BATCH_FAILURES,
    BUCKET_ENCRYPTION,
    PUBLIC_ACCESS_BLOCK,
    QUEUE_ATTRIBUTES,
    STREAM_PARALLELIZATION,
    _key_schema,
    mail_identity,
    stage_tables,
    stage_tags,
    ttl_attribute,
)
from infra.bootstrap_monitoring import ensure_monitoring
from infra.stages import CHALICE_CONFIG, stage_environment, stage_settings

RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
REGION_TOKEN = "${AWS::Region}"


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def table_logical_ids(settings: Settings) -> dict[str, str]:
    """Table name -> logical id, named after the Settings field that holds it (ReadingsTable)."""
    by_name = {
        value: to_cfn_resource_name(field)
        for field, value in vars(settings).items()
        if field.endswith("_table") and isinstance(value, str) and value
    }
    return {name: by_name.get(name) or to_cfn_resource_name(name) + "Table" for name in stage_tables(settings)}


def table_resources(settings: Settings, tags: dict[str, str]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    ids = table_logical_ids(settings)
    for name, model in stage_tables(settings).items():
        if getattr(model.Meta, "billing_mode", None) != "PAY_PER_REQUEST":
            raise ValueError(f"{model.__name__}: only on-demand tables are declared here")
        schema = model._get_schema()
        definitions = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
        for index in schema["global_secondary_indexes"] + schema["local_secondary_indexes"]:
            definitions.update({a["AttributeName"]: a["AttributeType"] for a in index["attribute_definitions"]})
        properties: dict[str, Any] = {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t} for a, t in sorted(definitions.items())],
            "KeySchema": _key_schema(schema["key_schema"]),
        }
        for key, declared in (
            ("GlobalSecondaryIndexes", schema["global_secondary_indexes"]),
            ("LocalSecondaryIndexes", schema["local_secondary_indexes"]),
        ):
            indexes = [
                {
                    "IndexName": index["index_name"],
                    "KeySchema": _key_schema(index["key_schema"]),
                    "Projection": dict(index["projection"]),
                }
                for index in sorted(declared, key=lambda i: str(i["index_name"]))
            ]
            if indexes:
                properties[key] = indexes
        view = getattr(model.Meta, "stream_view_type", None)
        if view:
            properties["StreamSpecification"] = {"StreamViewType": view}
        ttl = ttl_attribute(model)
        if ttl:
            properties["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
        if tags:
            properties["Tags"] = _tags(tags)
        resources[ids[name]] = {"Type": "AWS::DynamoDB::Table", **RETAIN, "Properties": properties}
    return resources


def bucket_resource(settings: Settings, tags: dict[str, str]) -> dict[str, Any]:
    rules = []
    for rule in ARCHIVE_LIFECYCLE["Rules"]:
        rules.append(
            {
                "Id": rule["ID"],
                "Status": rule["Status"],
                "Prefix": rule["Filter"]["Prefix"],
                "Transitions": [
                    {"StorageClass": t["StorageClass"], "TransitionInDays": t["Days"]} for t in rule["Transitions"]
                ],
            }
        )
    properties: dict[str, Any] = {
        "BucketName": settings.archive_bucket,
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": dict(r["ApplyServerSideEncryptionByDefault"])}
                for r in BUCKET_ENCRYPTION["Rules"]
            ]
        },
        "PublicAccessBlockConfiguration": dict(PUBLIC_ACCESS_BLOCK),
        "LifecycleConfiguration": {"Rules": rules},
    }
    if tags:
        properties["Tags"] = _tags(tags)
    return {"Type": "AWS::S3::Bucket", **RETAIN, "Properties": properties}


def queue_resource(settings: Settings, tags: dict[str, str]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "QueueName": settings.call_timeout_queue,
        "VisibilityTimeout": int(QUEUE_ATTRIBUTES["VisibilityTimeout"]),
        "SqsManagedSseEnabled": QUEUE_ATTRIBUTES["SqsManagedSseEnabled"] == "true",
    }
    if tags:
        properties["Tags"] = _tags(tags)
    return {"Type": "AWS::SQS::Queue", "Properties": properties}


# --- Monitoring, by running bootstrap's own code against stand-in clients ---------------------


class _Capture:
    """Stand-in boto3 clients: every describe finds nothing, every write is kept in order."""

    ANSWERS: dict[str, Any] = {
        "describe_launch_templates": {"LaunchTemplates": []},
        "describe_auto_scaling_groups": {"AutoScalingGroups": []},
        "describe_availability_zones": {"AvailabilityZones": [{"ZoneName": "<az0>"}, {"ZoneName": "<az1>"}]},
    }

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, service: str) -> Any:
        capture = self

        class Client:
            def __getattr__(self, operation: str) -> Any:
                def call(**kwargs: Any) -> Any:
                    if operation in capture.ANSWERS:
                        return capture.ANSWERS[operation]
                    if operation.startswith(("describe_", "get_", "list_")):
                        raise NotImplementedError(f"infra.resources: no stand-in answer for {service}.{operation}")
                    capture.writes.append((operation, kwargs))
                    if operation == "put_scaling_policy":
                        return {"PolicyARN": f"<policy:{kwargs['PolicyName']}>"}
                    return {}

                return call

        return Client()


def _az(value: str) -> Any:
    if value.startswith("<az") and value.endswith(">"):
        return {"Fn::Select": [int(value[3:-1]), {"Fn::GetAZs": ""}]}
    return value


def _group_resource(kw: dict[str, Any], template: str) -> dict[str, Any]:
    """The Auto Scaling group of a create_auto_scaling_group call; `template` its launch template's logical id."""
    # CloudFormation takes no "$Latest": the template's latest version number instead.
    return {
        "Type": "AWS::AutoScaling::AutoScalingGroup",
        "Properties": {
            "AutoScalingGroupName": kw["AutoScalingGroupName"],
            "LaunchTemplate": {
                "LaunchTemplateId": {"Ref": template},
                "Version": {"Fn::GetAtt": [template, "LatestVersionNumber"]},
            },
            "MinSize": str(kw["MinSize"]),
            "MaxSize": str(kw["MaxSize"]),
            "DesiredCapacity": str(kw["DesiredCapacity"]),
            "Cooldown": str(kw["DefaultCooldown"]),
            "AvailabilityZones": [_az(z) for z in kw["AvailabilityZones"]],
        },
    }


def _policy_resource(kw: dict[str, Any], group: str) -> dict[str, Any]:
    """The scaling policy of a put_scaling_policy call; `group` its group's logical id."""
    return {
        "Type": "AWS::AutoScaling::ScalingPolicy",
        "Properties": {
            "AutoScalingGroupName": {"Ref": group},
            "PolicyType": kw["PolicyType"],
            "AdjustmentType": kw["AdjustmentType"],
            "ScalingAdjustment": kw["ScalingAdjustment"],
            "Cooldown": str(kw["Cooldown"]),
        },
    }


def monitoring_resources(settings: Settings) -> dict[str, Any]:
    capture = _Capture()
    config = load_targets_config(settings.stage, settings.scaling_file)
    ensure_monitoring(capture, settings.stage, REGION_TOKEN, config)
    resources: dict[str, Any] = {}
    ids: dict[str, str] = {}  # names of things made -> logical ids
    prefix = f"iotcloud-{settings.stage}-"

    def logical(name: str, suffix: str) -> str:
        return to_cfn_resource_name(name.removeprefix(prefix)) + suffix

    for operation, kw in capture.writes:
        if operation == "create_launch_template":
            lid = logical(kw["LaunchTemplateName"], "LaunchTemplate")
            ids[kw["LaunchTemplateName"]] = lid
            resources[lid] = {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateName": kw["LaunchTemplateName"],
                    "LaunchTemplateData": kw["LaunchTemplateData"],
                },
            }
        elif operation == "create_auto_scaling_group":
            lid = logical(kw["AutoScalingGroupName"], "Group")
            ids[kw["AutoScalingGroupName"]] = lid
            resources[lid] = _group_resource(kw, ids[kw["LaunchTemplate"]["LaunchTemplateName"]])
        elif operation == "put_scaling_policy":
            # CloudFormation names scaling policies itself; alarms reach them by Ref (their ARN).
            lid = logical(kw["PolicyName"], "Policy")
            ids[f"<policy:{kw['PolicyName']}>"] = lid
            resources[lid] = _policy_resource(kw, ids[kw["AutoScalingGroupName"]])
        elif operation == "put_metric_alarm":
            properties = dict(kw)
            properties["AlarmActions"] = [{"Ref": ids[a]} if a in ids else a for a in kw.get("AlarmActions", [])]
            resources[logical(kw["AlarmName"], "Alarm")] = {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}
        elif operation == "put_dashboard":
            body = kw["DashboardBody"]
            if "${" in body.replace(REGION_TOKEN, ""):
                raise ValueError("the dashboard body holds ${...}, which Fn::Sub would read")
            resources["Dashboard"] = {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardName": kw["DashboardName"], "DashboardBody": {"Fn::Sub": body}},
            }
        else:
            raise NotImplementedError(f"infra.resources: no CloudFormation resource for {operation}")
    return resources


# --- Chalice's event sources --------------------------------------------------------------------


def load_app(stage: str, config_file: Path = CHALICE_CONFIG) -> Chalice:
    """Import app.py as `chalice package` does: with the stage's environment variables set.

    It changes os.environ, and app.py is imported once per process: call it from a
    process of its own (the command line does).
    """
    os.environ.update(stage_environment(stage, config_file))
    from app import app

    return app


def event_source_overrides(app: Chalice, settings: Settings, tables: dict[str, str]) -> dict[str, Any]:
    """Partial function resources that Chalice's template is deep-merged with."""
    functions: dict[str, Any] = {}
    for source in app.event_sources:
        override: dict[str, Any] = {}
        properties: dict[str, Any] = {"FunctionResponseTypes": BATCH_FAILURES}
        if isinstance(source, DynamoDBEventConfig):
            kind = "dynamodb"
            table = source.stream_arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
            if table in tables:
                properties["Stream"] = {"Fn::GetAtt": [tables[table], "StreamArn"]}
            properties["ParallelizationFactor"] = STREAM_PARALLELIZATION
        elif isinstance(source, SQSEventConfig):
            kind = "sqs"
            # Chalice writes the queue's ARN with Fn::Sub from its name, and a deep merge
            # cannot take that key away: make the function wait for the queue instead.
            if source.queue and source.queue == settings.call_timeout_queue:
                override["DependsOn"] = ["CallTimeoutQueue"]
        elif isinstance(source, KinesisEventConfig):
            kind = "kinesis"
        else:
            continue
        function = to_cfn_resource_name(source.name)
        event = to_cfn_resource_name(f"{source.name}-{kind}-event-source")
        functions[function] = {**override, "Properties": {"Events": {event: {"Properties": properties}}}}
    return functions


def chalice_fixes(app: Chalice, stage: str, config_file: Path) -> dict[str, Any]:
    """Chalice 1.34 names the REST handler's log group after `ApiHandler`, but the function is `APIHandler`."""
    doc = json.loads(config_file.read_text())
    retention = Config(chalice_stage=stage, function_name="api_handler", config_from_disk=doc).log_retention_in_days
    if not app.routes or not retention:
        return {}
    return {"ApiHandlerLogGroup": {"Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${APIHandler}"}}}}


# Platform lines (START, END, REPORT) are INFO: WARN keeps Lambda's own errors (timeouts, crashes)
# and drops the ~270 bytes a request of lines nobody reads (Lambda's metrics hold the durations).
HOT_PATH_LOGGING = {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"}


def function_url_resources(app: Chalice) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ingest function's public HTTPS URL (chalicelib/api/function_url.py): the URL, the two
    grants a URL without IAM auth needs (since October 2025 lambda:InvokeFunctionUrl and
    lambda:InvokeFunction, the latter only through the URL), its log settings; and the output."""
    from chalicelib.api.function_url import FUNCTION_NAME  # the app's module: loaded with the app

    if not any(f.name == FUNCTION_NAME for f in app.pure_lambda_functions):
        return {}, {}
    function = to_cfn_resource_name(FUNCTION_NAME)
    target = {"Ref": function}
    resources = {
        function: {"Properties": {"LoggingConfig": HOT_PATH_LOGGING}},
        f"{function}Url": {
            "Type": "AWS::Lambda::Url",
            "Properties": {"TargetFunctionArn": {"Fn::GetAtt": [function, "Arn"]}, "AuthType": "NONE"},
        },
        f"{function}UrlPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunctionUrl",
                "FunctionName": target,
                "Principal": "*",
                "FunctionUrlAuthType": "NONE",
            },
        },
        f"{function}UrlInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": target,
                "Principal": "*",
                "InvokedViaFunctionUrl": True,
            },
        },
    }
    outputs = {"IngestFunctionUrl": {"Value": {"Fn::GetAtt": [f"{function}Url", "FunctionUrl"]}}}
    return resources, outputs


def merge_template(stage: str, config_file: Path = CHALICE_CONFIG, app: Chalice | None = None) -> dict[str, Any]:
    """The merge template of a stage."""
    settings = stage_settings(stage, config_file)
    tags = stage_tags(stage, config_file)
    resources = table_resources(settings, tags)
    outputs: dict[str, Any] = {}
    ids = table_logical_ids(settings)
    for lid in ids.values():
        outputs[f"{lid}Name"] = {"Value": {"Ref": lid}}
        if "StreamSpecification" in resources[lid]["Properties"]:
            outputs[f"{lid}StreamArn"] = {"Value": {"Fn::GetAtt": [lid, "StreamArn"]}}
    if settings.archive_bucket:
        resources["ArchiveBucket"] = bucket_resource(settings, tags)
        outputs["ArchiveBucketName"] = {"Value": {"Ref": "ArchiveBucket"}}
    if settings.call_timeout_queue:
        resources["CallTimeoutQueue"] = queue_resource(settings, tags)
        outputs["CallTimeoutQueueUrl"] = {"Value": {"Ref": "CallTimeoutQueue"}}
    resources.update(monitoring_resources(settings))
    identity = mail_identity(settings)
    if identity:
        resources["MailIdentity"] = {"Type": "AWS::SES::EmailIdentity", "Properties": {"EmailIdentity": identity}}
    app = app or load_app(stage, config_file)
    door, door_outputs = function_url_resources(app)
    outputs.update(door_outputs)
    overrides = {**event_source_overrides(app, settings, ids), **chalice_fixes(app, stage, config_file), **door}
    clash = set(overrides) & set(resources)
    if clash:
        raise ValueError(f"logical ids used twice: {sorted(clash)}")
    resources.update(overrides)
    return {"Resources": resources, "Outputs": outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.resources", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--config", type=Path, default=CHALICE_CONFIG)
    parser.add_argument("--out", type=Path, help="write here (default: standard output)")
    args = parser.parse_args(argv)
    text = json.dumps(merge_template(args.stage, args.config), indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
