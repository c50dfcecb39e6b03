"""Records every AWS operation made during the test suite, and who made it.

How it works:

- botocore builds every new Session's event handlers from `botocore.handlers.BUILTIN_HANDLERS`
  (moto hooks itself in the same way). Appending a `provide-client-params` handler there,
  before any session exists, puts it on every client created afterwards: boto3's default
  session, the clients `wiring.aws_client` makes, and the botocore session PynamoDB keeps
  per thread. `provide-client-params` fires in `BaseClient._make_api_call` for every
  operation, paginated or not, with the caller's parameters, before anything is sent, so
  an attempt that AWS (or moto) refuses is recorded too: it needed the permission.
- Who made a call is read from the Python stack of the calling thread (the hook runs
  there): a call with a frame of `infra/` (bootstrap and the packaging) on the stack is
  the operator's (bootstrap runs with the operator's credentials, not the Lambda role);
  otherwise the innermost frame that belongs to the project decides: `app.py` or
  `chalicelib/` is the app, anything else (tests, devstack's stream and schedule
  emulation, the simulator) is not. Threads the app starts have the app's frames at the
  top of their stacks, so they count as the app.
- The stage is the one the process runs as at call time (`STAGE`): the functional tests
  run as `test`, the local stack as `dev`.

The hook never raises: a failure to record is kept and reported by the coverage test.
The coverage test (test_iam_coverage.py) is moved to the end of the run so it sees
the whole suite's calls.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PREFIX = str(ROOT) + os.sep
COVERAGE_MARK = "iam_coverage"

# The parameters that name a resource or a condition key; everything else is dropped.
_KEPT = (
    "TableName",
    "IndexName",
    "Bucket",
    "Key",
    "Prefix",
    "FunctionName",
    "AutoScalingGroupName",
    "Source",
    "Namespace",
    "StreamArn",
    "QueueUrl",
    "QueueName",
    "ConnectionId",
    "WorkGroup",
)


@dataclass(frozen=True)
class Call:
    """One distinct AWS operation made by some code."""

    origin: str  # app | bootstrap | other
    stage: str
    service: str  # botocore's service name: dynamodb, s3, cloudwatch, autoscaling, lambda, ses
    operation: str  # CamelCase, as in the API reference: PutItem, ListObjectsV2
    params: tuple[tuple[str, str], ...]
    where: str  # the innermost frame of that origin, path:function
    entry: str  # the outermost project frame: the test, or the devstack thread, that led here

    def param(self, name: str) -> str | None:
        return dict(self.params).get(name)


CALLS: set[Call] = set()
ERRORS: list[str] = []
LISTENERS: list[list[Call]] = []  # every call, in order, while a `listening()` block runs
STATE: dict[str, Any] = {"installed": False, "whole_suite": False, "lock": threading.Lock()}


def _origin(frame: Any) -> tuple[str, str, str]:
    """(origin, innermost app frame or innermost project frame, outermost project frame)."""
    kinds: list[tuple[str, str]] = []  # innermost first
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_PREFIX) and "site-packages" not in filename:
            rel = filename[len(_PREFIX) :]
            where = f"{rel}:{frame.f_code.co_name}"
            if rel.startswith("infra/"):
                kinds.append(("bootstrap", where))
            elif rel == "app.py" or rel.startswith("chalicelib/"):
                kinds.append(("app", where))
            else:
                kinds.append(("other", where))
        frame = frame.f_back
    if not kinds:
        return "other", "?", "?"
    entry = kinds[-1][1]
    for wanted in ("bootstrap", "app"):
        for kind, where in kinds:
            if kind == wanted:
                return kind, where, entry
    return "other", kinds[0][1], entry


def _relevant(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    kept = {k: str(params[k]) for k in _KEPT if isinstance(params.get(k), str | int)}
    for name in ("RequestItems",):  # BatchWriteItem / BatchGetItem: one entry per table
        if isinstance(params.get(name), dict):
            kept["RequestItems"] = ",".join(sorted(params[name]))
    if isinstance(params.get("TransactItems"), list):  # one entry per (kind, table): Put:devices
        entries = {
            f"{kind}:{body.get('TableName', '')}" for item in params["TransactItems"] for kind, body in item.items()
        }
        kept["TransactItems"] = ",".join(sorted(entries))
    delete = params.get("Delete")
    if isinstance(delete, dict):  # DeleteObjects: its keys (one s3:DeleteObject each)
        kept["Keys"] = ",".join(sorted(str(o.get("Key", "")) for o in delete.get("Objects", [])))
    return tuple(sorted(kept.items()))


# Services whose resource is in the endpoint, not in the parameters: recorded at before-call.
_BY_URL = {"apigatewaymanagementapi"}


def _add(model: Any, relevant: tuple[tuple[str, str], ...]) -> None:
    origin, where, entry = _origin(sys._getframe(2))
    call = Call(
        origin=origin,
        stage=os.environ.get("STAGE", ""),
        service=model.service_model.service_name,
        operation=model.name,
        params=relevant,
        where=where,
        entry=entry,
    )
    with STATE["lock"]:
        CALLS.add(call)
        for listener in LISTENERS:
            listener.append(call)


def _record(params: dict[str, Any], model: Any, **_: Any) -> None:
    try:
        if model.service_model.service_name not in _BY_URL:
            _add(model, _relevant(params))
    except Exception as e:  # never break the call being recorded
        ERRORS.append(f"{type(e).__name__}: {e}")


def _record_url(params: dict[str, Any], model: Any, **_: Any) -> None:
    try:
        if model.service_model.service_name in _BY_URL:
            url = str(params.get("url", "")).split("?", 1)[0]
            _add(model, (("ConnectionId", url.rsplit("/", 1)[-1]), ("url", url)))
    except Exception as e:
        ERRORS.append(f"{type(e).__name__}: {e}")


def install() -> None:
    """Hook every botocore session created from now on (call before any client exists)."""
    if STATE["installed"]:
        return
    from botocore import handlers

    handlers.BUILTIN_HANDLERS.append(("provide-client-params", _record))
    handlers.BUILTIN_HANDLERS.append(("before-call", _record_url))
    try:  # a session made before this (none should be) gets the hooks too
        import boto3

        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register("provide-client-params", _record)
            boto3.DEFAULT_SESSION.events.register("before-call", _record_url)
    except ImportError:
        pass
    STATE["installed"] = True


@contextlib.contextmanager
def listening() -> Iterator[list[Call]]:
    """Every AWS call made inside the block (all origins, in order, not deduplicated)."""
    calls: list[Call] = []
    with STATE["lock"]:
        LISTENERS.append(calls)
    try:
        yield calls
    finally:
        with STATE["lock"]:
            LISTENERS[:] = [listener for listener in LISTENERS if listener is not calls]


def app_calls() -> set[Call]:
    with STATE["lock"]:
        return {c for c in CALLS if c.origin == "app"}


def whole_suite_collected() -> bool:
    """Did this session collect every test module? (Otherwise 'never used' cannot be judged.)"""
    return bool(STATE["whole_suite"])


# --- pytest hooks (the plugin is registered by tests/conftest.py) --------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{COVERAGE_MARK}: runs after every other test (IAM coverage)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The coverage checks judge what the rest of the suite did: run them last.
    items.sort(key=lambda item: item.get_closest_marker(COVERAGE_MARK) is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    collected = {str(Path(str(item.path)).relative_to(ROOT)) for item in session.items}
    every = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")}
    STATE["whole_suite"] = bool(every) and every <= collected
