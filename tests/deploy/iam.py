"""AWS calls -> the IAM requests they make, and a small evaluator of our policy files.

`requests_of(call)` says which IAM action on which resource (and with which condition
keys) an API call needs: DynamoDB items by table or index, S3 objects by key and
ListBucket by prefix, queues by name, WebSocket connections by API and stage... An
operation with no entry here is an error, so a new kind of call cannot slip through
unjudged: add its entry.

`Policy` evaluates what our policy files use (Allow statements; Action and Resource
with * and ? wildcards; StringEquals/StringLike conditions) and refuses anything else,
so a construct it does not understand fails the test instead of being misjudged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from tests.deploy.iam_recorder import Call

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Request:
    """One IAM authorization request: an action on a resource, with condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    why: str = field(default="", compare=False)

    def __str__(self) -> str:
        keys = "".join(f" [{k}={v}]" for k, v in self.context)
        return f"{self.action} on {self.resource}{keys}" + (f" ({self.why})" if self.why else "")


class UnmappedCallError(Exception):
    """An AWS operation with no IAM mapping in this module."""


def _table(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_S3_OBJECT_ACTIONS = {
    "PutObject": "s3:PutObject",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
}
_STAR_ACTIONS = {
    ("cloudwatch", "GetMetricData"),
    ("cloudwatch", "GetMetricStatistics"),
    ("cloudwatch", "ListMetrics"),
    ("cloudwatch", "DescribeAlarms"),
    ("autoscaling", "DescribeAutoScalingGroups"),
    ("autoscaling", "DescribePolicies"),
}
_ATHENA_QUERY_ACTIONS = {"StartQueryExecution", "GetQueryExecution"}
_WS_METHODS = {"PostToConnection": "POST", "DeleteConnection": "DELETE", "GetConnection": "GET"}


def _s3_requests(op: str, p: dict[str, str], why: str) -> list[Request]:
    bucket = p.get("Bucket", "")
    if op in _S3_OBJECT_ACTIONS:
        return [Request(_S3_OBJECT_ACTIONS[op], f"arn:aws:s3:::{bucket}/{p['Key']}", why=why)]
    if op in ("ListObjectsV2", "ListObjects"):
        return [Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", (("s3:prefix", p.get("Prefix", "")),), why=why)]
    if op == "HeadBucket":
        return [Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", why=why)]
    if op == "DeleteObjects":
        return [Request("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}", why=why) for k in p["Keys"].split(",")]
    return []


def requests_of(call: Call) -> list[Request]:
    """The IAM requests an API call makes (raises UnmappedCallError for an unknown one)."""
    service, op, p = call.service, call.operation, dict(call.params)
    why = call.where
    if service == "dynamodb":
        if op in ("BatchWriteItem", "BatchGetItem"):
            return [Request(f"dynamodb:{op}", _table(t), why=why) for t in p["RequestItems"].split(",")]
        if op == "TransactWriteItems":
            out = []
            for entry in p["TransactItems"].split(","):
                kind, table = entry.split(":", 1)
                out.append(Request(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table(table), why=why))
            return out
        if op == "TransactGetItems":
            return [
                Request("dynamodb:GetItem", _table(e.split(":", 1)[1]), why=why) for e in p["TransactItems"].split(",")
            ]
        if "TableName" in p:
            resource = _table(p["TableName"])
            if "IndexName" in p:
                resource += f"/index/{p['IndexName']}"
            return [Request(f"dynamodb:{op}", resource, why=why)]
    elif service == "s3":
        found = _s3_requests(op, p, why)
        if found:
            return found
    elif service == "athena" and op in _ATHENA_QUERY_ACTIONS:
        # GetQueryExecution names only the execution: IAM checks its workgroup, the
        # stage's own (Settings.athena_workgroup) unless ATHENA_WORKGROUP says otherwise.
        workgroup = p.get("WorkGroup") or f"iotcloud-{call.stage}"
        return [Request(f"athena:{op}", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{workgroup}", why=why)]
    elif (service, op) in _STAR_ACTIONS:
        return [Request(f"{service}:{op}", "*", why=why)]
    elif service == "cloudwatch" and op == "PutMetricData":
        return [Request("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", p.get("Namespace", "")),), why=why)]
    elif service == "autoscaling" and "AutoScalingGroupName" in p:
        group = p["AutoScalingGroupName"]
        resource = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0000:autoScalingGroupName/{group}"
        return [Request(f"autoscaling:{op}", resource, why=why)]
    elif service == "lambda" and "FunctionName" in p:
        name = p["FunctionName"].rsplit(":function:", 1)[-1]
        return [Request(f"lambda:{op}", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}", why=why)]
    elif service == "ses" and op in ("SendRawEmail", "SendEmail"):
        source = p.get("Source", "")
        return [
            Request(
                f"ses:{op}",
                f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{source}",
                (("ses:FromAddress", source),),
                why=why,
            )
        ]
    elif service == "sqs":
        queue = p.get("QueueName") or urlparse(p.get("QueueUrl", "")).path.rsplit("/", 1)[-1]
        if queue:
            return [Request(f"sqs:{op}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", why=why)]
    elif service == "apigatewaymanagementapi" and op in _WS_METHODS:
        # https://<api id>.execute-api.<region>.amazonaws.com/<stage>/@connections/<id> on AWS; the
        # local stack's gateway serves the same paths without the stage (Chalice's stage is "api").
        url = urlparse(p.get("url", ""))
        host = url.hostname or ""
        api = host.split(".", 1)[0] if ".execute-api." in host else "local"
        first = url.path.strip("/").split("/", 1)[0]
        stage = "api" if first in ("", "@connections") else first
        resource = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/{stage}/{_WS_METHODS[op]}/@connections/{p['ConnectionId']}"
        )
        return [Request("execute-api:ManageConnections", resource, why=why)]
    raise UnmappedCallError(f"no IAM mapping for {service} {op} {p}: add one to tests/deploy/iam.py")


# --- The policy evaluator -----------------------------------------------------------------


def _pattern(glob: str, case_sensitive: bool = True) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Grant:
    """One (action pattern, resource pattern) of a statement, with the statement's conditions."""

    sid: str
    action: str
    resource: str
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]

    def allows(self, request: Request) -> bool:
        if not _pattern(self.action, case_sensitive=False).match(request.action):
            return False
        if not _pattern(self.resource).match(request.resource):
            return False
        context = dict(request.context)
        for operator, key, values in self.conditions:
            if key not in context:
                return False
            actual = context[key]
            if operator == "StringEquals" and actual not in values:
                return False
            if operator == "StringLike" and not any(_pattern(v).match(actual) for v in values):
                return False
        return True

    def __str__(self) -> str:
        conditions = "".join(f" if {op} {key} {list(values)}" for op, key, values in self.conditions)
        return f"{self.sid}: {self.action} on {self.resource}{conditions}"


class Policy:
    """An IAM policy document, as far as our policy files use the language."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.grants: list[Grant] = []
        for n, statement in enumerate(document["Statement"]):
            unsupported = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
            if unsupported or statement.get("Effect") != "Allow":
                raise ValueError(f"statement {n}: only Allow with Action/Resource/Condition is evaluated here")
            conditions = []
            for operator, keys in statement.get("Condition", {}).items():
                if operator not in ("StringEquals", "StringLike"):
                    raise ValueError(f"statement {n}: condition operator {operator} is not evaluated here")
                for key, values in keys.items():
                    conditions.append((operator, key, tuple(str(v) for v in _as_list(values))))
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    self.grants.append(Grant(statement.get("Sid", str(n)), action, resource, tuple(conditions)))

    def allows(self, request: Request) -> bool:
        return any(grant.allows(request) for grant in self.grants)

    def denied(self, requests: Iterable[Request]) -> list[Request]:
        return sorted({r for r in requests if not self.allows(r)}, key=str)

    def unused(self, requests: Iterable[Request]) -> list[Grant]:
        """Grants that allow none of the requests: permissions the code never uses."""
        wanted = list(requests)
        return [g for g in self.grants if not any(g.allows(r) for r in wanted)]
