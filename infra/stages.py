"""The stages of .chalice/config.json as deploy tooling reads them (never imported by the app).

Chalice gives each stage's functions the top-level `environment_variables` plus the stage's own;
these helpers read the same file for the tooling that deploys, checks or emulates a stage:
infra (bootstrap, policies, resources), the local stack, the bench and the tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.config import Settings, from_env

CHALICE_CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"

# What decides where this machine's AWS calls go: the operator's shell (or moto, in the tests).
MACHINE_AWS_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


def stage_environment(stage: str, config_file: Path = CHALICE_CONFIG) -> dict[str, str]:
    """The environment variables Chalice gives a stage's functions (top level + stage)."""
    doc = json.loads(config_file.read_text())
    if stage not in doc.get("stages", {}):
        raise KeyError(f"no stage {stage!r} in {config_file}")
    env = dict(doc.get("environment_variables", {}))
    env.update(doc["stages"][stage].get("environment_variables", {}))
    return env


def machine_aws_environment() -> dict[str, str]:
    """This machine's AWS region and endpoint, those of MACHINE_AWS_VARIABLES that are set."""
    return {k: os.environ[k] for k in MACHINE_AWS_VARIABLES if k in os.environ}


def stage_settings(
    stage: str, config_file: Path = CHALICE_CONFIG, overrides: Mapping[str, str] | None = None
) -> Settings:
    """The Settings of a stage as deployed: its environment variables, then `overrides` over them
    (infra.bootstrap passes machine_aws_environment(): the operator's shell decides where resources go)."""
    return from_env({**stage_environment(stage, config_file), **(overrides or {})})


def function_settings(function: str, stage: str = "dev", config_file: Path = CHALICE_CONFIG) -> dict[str, Any]:
    """Memory, timeout and architecture of one function, as Chalice resolves them for a stage."""
    from chalice.config import Config

    config = Config(chalice_stage=stage, config_from_disk=json.loads(config_file.read_text()))
    scoped = config.scope(stage, function)
    return {
        "memory_mb": int(scoped.lambda_memory_size),
        "timeout_s": int(scoped.lambda_timeout),
        "architecture": str(scoped.lambda_architecture or "x86_64"),
    }


def function_timeout_s(function: str, stage: str = "dev") -> int:
    """How long one invocation of a function may run (its configured timeout)."""
    return int(function_settings(function, stage)["timeout_s"])
