"""Fixtures of the deployment tests: a copy of the Chalice config, moto as a server, boto3 clients."""

from __future__ import annotations

import shutil
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stage_config(tmp_path: Path) -> Path:
    """A copy of .chalice/ (config and policies) that commands may record into."""
    target = tmp_path / "project" / ".chalice"
    target.mkdir(parents=True)
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(path, target / path.name)
    return target / "config.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode on 127.0.0.1, as the local stack runs it (in a thread here: faster)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def on_moto_server(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """AWS_ENDPOINT_URL pointed at a freshly reset moto server."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    yield moto_server


Clients = Callable[[str], Any]


@pytest.fixture
def clients() -> Clients:
    """boto3 clients of the test session's region (moto: mock_aws or AWS_ENDPOINT_URL)."""

    def make(service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")

    return make
