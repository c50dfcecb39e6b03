"""tests/unit holds pure tests only: the guards of tests/unit/conftest.py refuse what is not."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import botocore.session
import pytest

from tests.unit.conftest import UNIT, ImpureUnitTest, forbidden_imports


def test_no_unit_test_module_imports_moto_or_boto3() -> None:
    offenders = {path.name: forbidden_imports(path.read_text()) for path in sorted(UNIT.rglob("*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from moto import mock_aws", ["moto"]),
        ("import boto3", ["boto3"]),
        ("def test():\n    import moto.core\n", ["moto.core"]),
        ("from botocore.exceptions import ClientError\nimport json", []),
        ("from . import moto", []),  # a relative import is the test package's own module
    ],
)
def test_the_import_scan_finds_aws_libraries_wherever_they_are_imported(source: str, found: list[str]) -> None:
    assert forbidden_imports(source) == found


def test_a_network_socket_is_an_error() -> None:
    with pytest.raises(ImpureUnitTest, match="network socket"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server, pytest.raises(ImpureUnitTest):
        server.bind(("127.0.0.1", 0))


def test_an_aws_client_is_an_error() -> None:
    with pytest.raises(ImpureUnitTest, match="dynamodb"):
        botocore.session.get_session().create_client("dynamodb", region_name="us-east-1")


def test_unix_sockets_still_work_for_asyncio(tmp_path: Path) -> None:
    async def noop() -> int:
        await asyncio.sleep(0)
        return 1

    assert asyncio.run(noop()) == 1
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
