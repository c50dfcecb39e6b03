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

from infra.package import (
    LAMBDA_RUNTIME,
    RUNTIME_PROVIDED,
    TARGET_ZIP_BYTES,
    RuntimeMismatch,
    check_builder,
    function_runtimes,
    locked_requirements,
    problems_of,
    zip_report,
)
from tests.deploy.conftest import ROOT

STAGE = "prod"
# cfn-lint findings accepted on purpose, by rule id, with the reason. None today.
ACCEPTED_WARNINGS: dict[str, str] = {}


def _package(out: Path) -> Path:
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
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the packaging once for the module, into a directory of its own (runs may overlap)."""
    return _package(tmp_path_factory.mktemp("package") / STAGE)


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
    assert {"app.py", "chalicelib", "pynamodb", "defusedxml", "jinja2"} <= tops | {"app.py"}
    # Powertools is not a runtime dependency (docs/DEPLOY.md: the app writes EMF itself).
    assert "aws_lambda_powertools" not in tops
    assert problems_of(report) == []


def test_zip_holds_no_deploy_tooling(packaged: Path) -> None:
    """The deploy/teardown CLI and the SQL document generator live in infra/, which is not packaged."""
    with zipfile.ZipFile(packaged / "deployment.zip") as z:
        names = z.namelist()
    assert any(n.startswith("chalicelib/") for n in names)
    tooling = [n for n in names if n.startswith("infra/") or any(t in n for t in ("bootstrap", "analytics_sql"))]
    assert tooling == []


def test_every_function_runs_on_the_chosen_runtime(sam: dict[str, Any]) -> None:
    runtimes = function_runtimes(sam)
    assert set(_functions(sam)) <= set(runtimes) and len(runtimes) >= 5
    assert set(runtimes.values()) == {LAMBDA_RUNTIME}


def test_the_builder_must_be_the_runtimes_python() -> None:
    check_builder((3, 11), "python3.11")
    with pytest.raises(RuntimeMismatch, match=r"runtime is python3\.11 .* this is Python 3\.12"):
        check_builder((3, 12), "python3.11")
    with pytest.raises(RuntimeMismatch, match=r"Python 3\.13"):
        check_builder((3, 11), "python3.13")
    # and the command line refuses, before it builds anything
    with pytest.raises(RuntimeMismatch):
        check_builder((3, 10))


def test_zip_ships_bytecode_for_the_runtime_next_to_every_module(packaged: Path) -> None:
    """/var/task is read-only: without these, every cold start would compile every module from source."""
    tag = f"cpython-{LAMBDA_RUNTIME.removeprefix('python').replace('.', '')}"
    with zipfile.ZipFile(packaged / "deployment.zip") as z:
        names = z.namelist()
        pyc = z.read(f"chalicelib/__pycache__/wiring.{tag}.pyc")
        infos = z.infolist()
    assert f"__pycache__/app.{tag}.pyc" in names
    modules = [n for n in names if n.endswith(".py")]
    assert len([n for n in names if n.endswith(f".{tag}.pyc")]) == len(modules)
    # PEP 552 header: flags 0b01 = hash-based, not checked against the source (no mtimes involved)
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_two_builds_make_the_same_zip(packaged: Path, tmp_path: Path) -> None:
    """Same sources and lock, same zip: file order, timestamps, modes and bytecode are fixed."""
    again = _package(tmp_path / STAGE)
    first, second = zip_report(packaged / "deployment.zip"), zip_report(again / "deployment.zip")
    assert first["sha256"] == second["sha256"], "rebuilt zip differs (did a source change between the builds?)"


def test_lambda_requirements_come_from_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "# generated\n"
        "boto3==1.44.5 \\\n    --hash=sha256:aa\n    # via -r requirements.in\n"
        "pynamodb==6.1.0 \\\n    --hash=sha256:bb \\\n    --hash=sha256:cc\n"
        "typing-extensions==4.16.0 ; python_full_version < '3.11' \\\n    --hash=sha256:dd\n"
        "Jinja2==3.1.6 --hash=sha256:ee\n"
    )
    assert locked_requirements(lock, "arm64") == [
        "jinja2==3.1.6 --hash=sha256:ee",
        "pynamodb==6.1.0 --hash=sha256:bb --hash=sha256:cc",
    ]
    lock.write_text("pynamodb>=6 --hash=sha256:bb\n")
    with pytest.raises(ValueError, match="not pinned"):
        locked_requirements(lock)


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
metrics.flush()  # an EMF document, to stdout
import logging
logging.getLogger("iotcloud").error("served", extra={"route": "/v1/openapi.json"})  # Chalice's handler: ERROR
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
        "AWS_LAMBDA_FUNCTION_NAME": "iotcloud-prod",  # app.py installs the JSON log format in Lambda
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
    logged = [json.loads(line) for line in lines[:-1] if line.startswith("{") and '"_aws"' not in line]
    served = next(doc for doc in logged if doc["message"] == "served")
    # the request id the middleware bound from the Lambda context, the extra field, the logger
    assert served["request_id"] == "1" and served["route"] == "/v1/openapi.json" and served["logger"] == "iotcloud"
    assert not set(result["modules"]) & {"duckdb", "yaml", "jsonschema", "moto", "httpx", "rich", "cryptography"}


def test_the_ingest_function_has_a_public_url_with_both_grants_and_quiet_platform_logs(sam: dict[str, Any]) -> None:
    resources = sam["Resources"]
    ingest = resources["Ingest"]
    assert ingest["Properties"]["Handler"] == "app.ingest"
    assert ingest["Properties"]["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "WARN",
    }
    urls = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::Url"}
    assert list(urls.values()) == [
        {
            "Type": "AWS::Lambda::Url",
            "Properties": {"TargetFunctionArn": {"Fn::GetAtt": ["Ingest", "Arn"]}, "AuthType": "NONE"},
        }
    ]
    grants = sorted(
        (
            v["Properties"]["Action"],
            json.dumps({k: p for k, p in v["Properties"].items() if k != "Action"}, sort_keys=True),
        )
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::Permission" and v["Properties"].get("FunctionName") == {"Ref": "Ingest"}
    )
    assert grants == [
        (
            "lambda:InvokeFunction",
            json.dumps(
                {"FunctionName": {"Ref": "Ingest"}, "InvokedViaFunctionUrl": True, "Principal": "*"}, sort_keys=True
            ),
        ),
        (
            "lambda:InvokeFunctionUrl",
            json.dumps(
                {"FunctionName": {"Ref": "Ingest"}, "FunctionUrlAuthType": "NONE", "Principal": "*"}, sort_keys=True
            ),
        ),
    ]
    assert sam["Outputs"]["IngestFunctionUrl"] == {"Value": {"Fn::GetAtt": [next(iter(urls)), "FunctionUrl"]}}
