"""The policy files are what infra.policies makes, and grant narrowly."""

from __future__ import annotations

import json

from infra.policies import UNSCOPED, main, policy_files
from tests.deploy.conftest import ROOT


def test_policy_files_are_up_to_date() -> None:
    assert main(["--check"]) == 0, "run `make policies`"


def test_policies_name_actions_and_resources_of_their_stage_only() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    files = policy_files()
    assert {p.name for p in files} == {f"policy-{stage}.json" for stage in config["stages"]}
    for path, text in files.items():
        stage = path.stem.removeprefix("policy-")
        others = [s for s in config["stages"] if s != stage]
        for statement in json.loads(text)["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in statement["Action"]:
                assert "*" not in action, (path.name, action)
            for resource in statement["Resource"]:
                if resource == "*":
                    assert set(statement["Action"]) <= UNSCOPED, (path.name, statement["Sid"])
                else:
                    # (Glue names take no hyphens; every Glue call is also checked on the account's catalog)
                    own = f"iotcloud-{stage}" in resource or f"/iotcloud_{stage}" in resource
                    assert (
                        own
                        or resource.endswith((":catalog",))
                        or any(k in resource for k in (":execute-api:", ":identity/"))
                    ), (path.name, resource)
                    assert not any(f"iotcloud-{other}" in resource for other in others)
