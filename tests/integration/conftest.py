"""The integration tests' local stack (devstack.stack): one a module, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack, free_port


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack with the background stream pump off: the tests drain the streams themselves.
    A module that wants the pump running (test_local_stack.py) defines its own `stack`."""
    with LocalStack(
        api_port=free_port(), moto_port=free_port(), state_dir=tmp_path_factory.mktemp("s"), emulate_events=False
    ) as running:
        yield running
