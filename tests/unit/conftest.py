"""Unit tests are pure: no moto, no AWS client, no network (those belong in tests/functional and
tests/integration). Two guards hold the line: collection refuses a unit test module that imports
an AWS library or asks for the moto fixtures, and every unit test runs with Internet sockets and
botocore client creation turned into errors."""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

UNIT = Path(__file__).resolve().parent
# Imports that make a test talk to AWS or to moto's AWS (top-level module names).
FORBIDDEN_IMPORTS = frozenset({"moto", "boto3"})
# tests/conftest.py's fixtures that start moto (and the Chalice app over it).
FORBIDDEN_FIXTURES = frozenset({"aws", "api", "device", "other_device"})
INET = (socket.AF_INET, socket.AF_INET6)


class ImpureUnitTest(AssertionError):
    """A unit test reached for the network or AWS: move it to tests/functional or tests/integration."""


def forbidden_imports(source: str) -> list[str]:
    """The forbidden modules a test module's source imports (anywhere: top level or in a function)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        found += [name for name in names if name.split(".")[0] in FORBIDDEN_IMPORTS]
    return found


def _in_unit(path: Path) -> bool:
    return path.resolve().is_relative_to(UNIT)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse impure unit tests at collection, before any of them runs."""
    problems: list[str] = []
    scanned: set[Path] = set()
    for item in items:
        path = Path(item.path)
        if not _in_unit(path):
            continue
        if path not in scanned and path.suffix == ".py":
            scanned.add(path)
            problems += [f"{path.name} imports {name}" for name in forbidden_imports(path.read_text())]
        asked = FORBIDDEN_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        problems += [f"{item.nodeid} uses the moto fixture {name!r}" for name in sorted(asked)]
    if problems:
        raise pytest.UsageError("unit tests must be pure (move these to tests/functional):\n" + "\n".join(problems))


@pytest.fixture(autouse=True)
def no_network_no_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Internet sockets and botocore clients raise ImpureUnitTest (Unix sockets stay: asyncio's
    loop wakes itself through a socketpair)."""

    def guarded(method: Any) -> Any:
        def call(sock: socket.socket, *args: Any) -> Any:
            if sock.family in INET:
                raise ImpureUnitTest(f"a unit test opened a network socket ({method.__name__}{args})")
            return method(sock, *args)

        return call

    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, guarded(getattr(socket.socket, name)))

    def no_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        raise ImpureUnitTest(f"a unit test built an AWS client ({service_name})")

    monkeypatch.setattr(botocore.session.Session, "create_client", no_client)
    yield
