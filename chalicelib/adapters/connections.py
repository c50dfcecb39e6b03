"""Sending to WebSocket clients through API Gateway's @connections management API.

The endpoint is the WebSocket API's `https://<domain>/<stage>` (the local stack's gateway
serves the same API): configured (WEBSOCKET_MANAGEMENT_URL), or learnt from the first
`$connect` and kept in the realtime store, so that handlers which are not WebSocket events
(the readings stream, the call-timeout queue, the alert schedule) can send too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("iotcloud.realtime")


class Message(Protocol):
    """One message to post (domain.wamp's Outgoing): its text, and whether to close afterwards."""

    @property
    def connection_id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def close(self) -> bool: ...


class EndpointStore(Protocol):
    """Where the learnt @connections endpoint is kept (adapters.realtime.RealtimeStore)."""

    def remember_endpoint(self, url: str) -> None: ...
    def endpoint(self) -> str | None: ...


class Connections:
    """Posts messages to connections and closes them; reports the connections found gone.

    `client_for(url)` builds the `apigatewaymanagementapi` client of an endpoint; the client
    is built once and rebuilt only when a `$connect` names another endpoint.
    """

    def __init__(self, endpoints: EndpointStore, client_for: Callable[[str], Any], configured_url: str = "") -> None:
        self._endpoints = endpoints
        self._client_for = client_for
        self._configured = configured_url
        self._lock = threading.Lock()
        self._url: str | None = None
        self._client: Any = None

    def remember_endpoint(self, domain_name: str, stage: str) -> None:
        """Record the endpoint a `$connect` came through (unless configured, or already known)."""
        if self._configured:
            return
        url = f"https://{domain_name}/{stage}"
        if self._url == url:
            return  # a store write per connection would be wasted
        self._endpoints.remember_endpoint(url)
        with self._lock:
            self._url, self._client = url, None

    def client(self) -> Any:
        """The management API client of the known endpoint; RuntimeError before any is known."""
        with self._lock:
            if self._client is None:
                url = self._url or self._configured or self._endpoints.endpoint()
                if not url:
                    raise RuntimeError("no WebSocket connection was made yet: the @connections endpoint is unknown")
                self._url, self._client = url, self._client_for(url)
            return self._client

    def send(self, connection_id: str, text: str) -> bool:
        """Post one message; False when the connection is gone (410)."""
        try:
            self.client().post_to_connection(ConnectionId=connection_id, Data=text.encode())
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("GoneException", "410"):
                return False
            raise
        return True

    def close(self, connection_id: str) -> None:
        """Close a connection; failing to (it may be gone already) is only logged."""
        try:
            self.client().delete_connection(ConnectionId=connection_id)
        except (ClientError, BotoCoreError) as e:
            logger.info("could not close %s: %s", connection_id, e)

    def deliver(self, outgoing: Iterable[Message]) -> list[str]:
        """Post every message in order (closing where asked); the ids of the connections found gone.

        A gone connection gets nothing more from this batch.
        """
        gone: list[str] = []
        for out in outgoing:
            if out.connection_id in gone:
                continue
            if not self.send(out.connection_id, out.text):
                gone.append(out.connection_id)
            elif out.close:
                self.close(out.connection_id)
        return gone
