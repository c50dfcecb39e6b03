"""Structured logs (chalicelib/logs.py): JSON lines with the request and device ids."""

from __future__ import annotations

import io
import json
import logging

from chalicelib import logs
from chalicelib.domain.auth import Authenticator
from chalicelib.domain.tokens import hash_token


def _logger(stream: io.StringIO) -> logging.Logger:
    logger = logging.getLogger(f"test-logs-{id(stream)}")
    logger.propagate = False
    logger.handlers = [logging.StreamHandler(stream)]
    logs.install(logger)
    logger.setLevel(logging.INFO)
    return logger


def test_a_line_is_one_json_object_with_the_bound_ids_and_extra_fields() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    logs.bind_request("req-1")
    logs.bind_device("d-17")
    logger.warning("rejected %d readings", 3, extra={"code": "validation_failed"})
    logs.bind_request("req-2")  # a new invocation forgets the device
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "rejected 3 readings" and first["level"] == "WARNING"
    assert (first["request_id"], first["device_id"], first["code"]) == ("req-1", "d-17", "validation_failed")
    assert first["timestamp"].endswith("+00:00")
    assert second["request_id"] == "req-2" and "device_id" not in second
    assert "ValueError: boom" in second["exception"]


class _Found:
    def __init__(self, device_id: str, token: str) -> None:
        self.device_id, self.token_hash, self.disabled = device_id, hash_token(token), False


def test_authenticating_a_device_binds_its_id() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    logs.bind_request("req-3")
    found = _Found("d-42", "iotd_secret-token")
    auth = Authenticator(lambda token_hash: found if token_hash == found.token_hash else None, admin_hashes=frozenset())
    auth.authenticate("iotd_secret-token")
    logger.info("ingested")
    assert json.loads(stream.getvalue())["device_id"] == "d-42"
    logs.bind_request(None)
