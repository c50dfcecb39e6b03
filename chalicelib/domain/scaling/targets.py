"""Scaling targets of a stage: `targets.json` (templated with the stage), or an override."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _templated(value: Any, stage: str) -> Any:
    if isinstance(value, str):
        return value.replace("{stage}", stage)
    if isinstance(value, list):
        return [_templated(v, stage) for v in value]
    if isinstance(value, dict):
        return {k: _templated(v, stage) for k, v in value.items()}
    return value


def load_targets_config(stage: str, path: str = "") -> dict[str, Any]:
    """The stage's scaling configuration: SCALING_FILE if set, else <stage>.json, else targets.json."""
    candidates = [Path(path)] if path else [HERE / f"{stage}.json", HERE / "targets.json"]
    for candidate in candidates:
        if candidate.exists():
            doc: dict[str, Any] = _templated(json.loads(candidate.read_text()), stage)
            return doc
    raise FileNotFoundError(f"no scaling configuration for stage {stage!r} (tried {candidates})")


def alarm_name(stage: str, target: str, direction: str) -> str:
    """The stage's alarm of a target's policy: iotcloud-<stage>-<target>-scale-<up|down>."""
    return f"iotcloud-{stage}-{target}-scale-{direction}"
