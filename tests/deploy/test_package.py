"""`chalice package` of the prod stage (infra.package): the template, cfn-lint, and the Lambda zip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from chalice.config import Config

from infra.package import RUNTIME_PROVIDED, TARGET_ZIP_BYTES, zip_report
from tests.deploy.conftest import ROOT

STAGE = "prod"
# cfn-lint findings accepted on purpose, by rule id, with the reason. None today.
ACCEPTED_WARNINGS: dict[str, str] = {}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the packaging once for the module, into a directory of its own (runs may overlap)."""
    out = tmp_path_factory.mktemp("package") / STAGE
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    subprocess.run(
        [sys.executable, "-m", "infra.package", "--stage", STAGE, "--out", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=240,
    )
    return out


@pytest.fixture(scope="module")
def sam(packaged: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads((packaged / "sam.json").read_text())
    return template


@pytest.fixture(scope="module")
def config_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return doc


def _functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def test_cfn_lint_finds_no_errors(packaged: Path) -> None:
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", str(packaged / "sam.json")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    findings = json.loads(lint.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    unexpected = [f for f in findings if f["Level"] != "Error" and f["Rule"]["Id"] not in ACCEPTED_WARNINGS]
    assert errors == [], json.dumps(errors, indent=1)[:4000]
    assert unexpected == [], json.dumps(unexpected, indent=1)[:4000]


def test_merge_template_is_in_the_package(packaged: Path, sam: dict[str, Any]) -> None:
    merged = json.loads((packaged / "resources.json").read_text())
    for logical, resource in merged["Resources"].items():
        if "Type" in resource:
            assert sam["Resources"][logical] == resource, logical
    assert {"DevicesTable", "ReadingsTable", "ArchiveBucket", "Dashboard"} <= set(sam["Resources"])


def test_stream_and_queue_handlers_are_wired_with_getatt_and_report_batch_failures(sam: dict[str, Any]) -> None:
    mappings = 0
    for logical, function in _functions(sam).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "DynamoDB":
                mappings += 1
                assert event["Properties"]["Stream"] == {"Fn::GetAtt": ["ReadingsTable", "StreamArn"]}, logical
                assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
            elif event["Type"] == "SQS":
                mappings += 1
                assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
                assert "CallTimeoutQueue" in function["DependsOn"]
    assert mappings >= 1


def test_every_function_has_its_memory_timeout_architecture_tags_and_log_retention(
    sam: dict[str, Any], config_doc: dict[str, Any]
) -> None:
    functions = _functions(sam)
    log_groups = {k: v for k, v in sam["Resources"].items() if v["Type"] == "AWS::Logs::LogGroup"}
    logged = {}
    for group in log_groups.values():
        name = group["Properties"]["LogGroupName"]["Fn::Sub"]
        assert name.startswith("/aws/lambda/${") and name[len("/aws/lambda/${") : -1] in functions, name
        logged[name[len("/aws/lambda/${") : -1]] = group["Properties"]["RetentionInDays"]
    assert set(logged) == set(functions)
    for logical, function in functions.items():
        props = function["Properties"]
        handler = props["Handler"].split(".", 1)[1]
        name = "api_handler" if handler == "app" else handler
        config = Config(chalice_stage=STAGE, function_name=name, config_from_disk=config_doc)
        assert props["MemorySize"] == config.lambda_memory_size, logical
        assert props["Timeout"] == config.lambda_timeout, logical
        assert props["Architectures"] == [config.lambda_architecture] == ["arm64"], logical
        assert {"app": "iotcloud", "stage": STAGE}.items() <= props["Tags"].items(), logical
        assert logged[logical] == config.log_retention_in_days == 90, logical
    assert functions["APIHandler"]["Properties"]["MemorySize"] == 1024
    assert functions["Rollups"]["Properties"]["Timeout"] == 900


def test_every_role_holds_exactly_the_stage_policy(sam: dict[str, Any]) -> None:
    policy = json.loads((ROOT / ".chalice" / f"policy-{STAGE}.json").read_text())
    roles = [v for v in sam["Resources"].values() if v["Type"] == "AWS::IAM::Role"]
    assert roles
    for role in roles:
        assert [p["PolicyDocument"] for p in role["Properties"]["Policies"]] == [policy]
        assert role["Properties"].get("ManagedPolicyArns") in (None, [])


def test_zip_is_small_and_holds_nothing_the_runtime_provides(packaged: Path) -> None:
    report = zip_report(packaged / "deployment.zip", "arm64")
    assert report["zip_bytes"] < TARGET_ZIP_BYTES, report
    assert report["runtime_provided"] == [] and report["foreign"] == [], report
    with zipfile.ZipFile(packaged / "deployment.zip") as z:
        tops = {n.split("/", 1)[0].split("-", 1)[0].lower() for n in z.namelist()}
    assert not tops & {"boto3", "botocore", "s3transfer", "moto", "duckdb", "yaml", "httpx", "cryptography"}
    assert {"app.py", "chalicelib", "pynamodb", "aws_lambda_powertools", "defusedxml"} <= tops | {"app.py"}


RUNTIME_CHECK = r"""
import json, sys
from types import SimpleNamespace
import app
context = SimpleNamespace(function_name="iotcloud-prod", memory_limit_in_mb=1024, aws_request_id="1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:iotcloud-prod",
                          get_remaining_time_in_millis=lambda: 29000, log_group_name="", log_stream_name="")
event = {"resource": "/v1/openapi.json", "path": "/v1/openapi.json", "httpMethod": "GET",
         "headers": {"Host": "example.execute-api.us-east-1.amazonaws.com"}, "multiValueHeaders": {},
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/v1/openapi.json", "httpMethod": "GET", "stage": "api",
                            "path": "/api/v1/openapi.json", "requestId": "1", "identity": {"sourceIp": "192.0.2.1"}}}
answer = app.app(event, context)
from chalicelib import wiring
metrics = wiring.metrics()
metrics.add("ReadingsIngested", 1)
metrics.flush()  # EMF through aws_lambda_powertools, to stdout
print(json.dumps({"status": answer["statusCode"], "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_zip_runs_on_a_runtime_that_has_only_boto3(packaged: Path, tmp_path: Path) -> None:
    """Unzipped, with only boto3 and its dependencies beside it (as in Lambda), app.py serves a request."""
    code = tmp_path / "task"
    with zipfile.ZipFile(packaged / "deployment.zip") as z:
        z.extractall(code)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    provided = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"}
    assert {p.replace("python-", "") for p in RUNTIME_PROVIDED} >= {p.removesuffix(".py") for p in provided}
    for name in provided:
        (runtime / name).symlink_to(site / name)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "METRICS_SINK": "emf",
        **json.loads((ROOT / ".chalice" / "config.json").read_text())["environment_variables"],
        **json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]["environment_variables"],
    }
    prelude = f"import sys; sys.path[:0] = [{str(code)!r}, {str(runtime)!r}]\n"
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + RUNTIME_CHECK],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["status"] == 200
    assert any('"_aws"' in line for line in lines[:-1])  # the EMF document
    assert not set(result["modules"]) & {"duckdb", "yaml", "jsonschema", "moto", "httpx", "rich", "cryptography"}
