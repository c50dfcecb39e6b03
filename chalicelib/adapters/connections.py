"""Sending to WebSocket clients through API Gateway's @connections management API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("iotcloud.realtime")


class ConnectionSender:
    """Posts WAMP messages to connections; reports the ones that are gone.

    The client is an `apigatewaymanagementapi` client whose endpoint is the WebSocket
    API's `https://<domain>/<stage>` (the local stack's gateway serves the same API).
    """

    def __init__(self, client_for: Callable[[], Any]) -> None:
        self._client_for = client_for

    def send(self, connection_id: str, text: str) -> bool:
        """Post one message; False when the connection is gone (410)."""
        data = text.encode()
        try:
            self._client_for().post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("GoneException", "410"):
                return False
            raise
        return True

    def close(self, connection_id: str) -> None:
        try:
            self._client_for().delete_connection(ConnectionId=connection_id)
        except (ClientError, BotoCoreError) as e:
            logger.info("could not close %s: %s", connection_id, e)
