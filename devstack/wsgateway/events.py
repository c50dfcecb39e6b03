"""The Lambda proxy events API Gateway sends a WebSocket API's handlers: CONNECT, MESSAGE, DISCONNECT."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Any

from websockets.http11 import Request

CONNECT, DEFAULT, DISCONNECT = "$connect", "$default", "$disconnect"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HOP_BY_HOP = {"connection", "upgrade"}


def aws_id() -> str:
    """An identifier shaped like API Gateway's connection and request ids ("BFaT_fALIAMCKug=")."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def _epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _clf_time(moment: dt.datetime) -> str:
    """Common Log Format time, as in requestContext.requestTime: 09/Feb/2024:18:11:43 +0000."""
    utc = moment.astimezone(dt.UTC)
    return f"{utc.day:02d}/{_MONTHS[utc.month - 1]}/{utc.year}:{utc:%H:%M:%S} +0000"


def _trace_id(moment: dt.datetime) -> str:
    return f"Root=1-{int(moment.timestamp()):08x}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection: fixed when $connect accepts its handshake."""

    connection_id: str
    connected_at: dt.datetime
    source_ip: str
    user_agent: str | None


@dataclass(frozen=True)
class EventFactory:
    """Builds the events of one API (its stage and id) served at `host`:`port`."""

    stage: str
    api_id: str
    host: str
    port: int

    @property
    def domain_name(self) -> str:
        return f"{self.host}:{self.port}"

    def request_context(self, route_key: str, event_type: str, peer: Peer) -> dict[str, Any]:
        """The `requestContext` every event carries."""
        now = dt.datetime.now(dt.UTC)
        request_id = aws_id()
        identity: dict[str, Any] = {"sourceIp": peer.source_ip}
        if peer.user_agent is not None:
            identity["userAgent"] = peer.user_agent
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _clf_time(now),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": _epoch_ms(peer.connected_at),
            "requestTimeEpoch": _epoch_ms(now),
            "identity": identity,
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": peer.connection_id,
            "apiId": self.api_id,
        }

    def connect(self, request: Request, peer: Peer) -> dict[str, Any]:
        """The CONNECT event: the upgrade request's headers and query string."""
        headers: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers.raw_items():
            if name.lower() in _HOP_BY_HOP:
                continue
            headers[name] = value
            multi.setdefault(name, []).append(value)
        forwarded = {
            "X-Amzn-Trace-Id": _trace_id(peer.connected_at),
            "X-Forwarded-For": peer.source_ip,
            "X-Forwarded-Port": str(self.port),
            "X-Forwarded-Proto": "http",
        }
        for name, value in forwarded.items():
            headers[name] = value
            multi[name] = [value]
        event: dict[str, Any] = {"headers": headers, "multiValueHeaders": multi}
        query = urllib.parse.urlsplit(request.path).query
        if query:  # API Gateway leaves both keys out when there is no query string
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            multi_query: dict[str, list[str]] = {}
            for name, value in pairs:
                multi_query.setdefault(name, []).append(value)
            event["queryStringParameters"] = {name: values[-1] for name, values in multi_query.items()}
            event["multiValueQueryStringParameters"] = multi_query
        event["requestContext"] = self.request_context(CONNECT, "CONNECT", peer)
        event["isBase64Encoded"] = False
        return event

    def message(self, peer: Peer, message: str | bytes) -> dict[str, Any]:
        """The MESSAGE event of one frame (binary: base64 body and `isBase64Encoded`)."""
        context = self.request_context(DEFAULT, "MESSAGE", peer)
        context["messageId"] = aws_id()
        if isinstance(message, bytes):
            return {
                "requestContext": context,
                "body": base64.b64encode(message).decode(),
                "isBase64Encoded": True,
            }
        return {"requestContext": context, "body": message, "isBase64Encoded": False}

    def disconnect(self, peer: Peer, code: int, reason: str) -> dict[str, Any]:
        """The DISCONNECT event, with the close status API Gateway reports."""
        # What API Gateway sends on $disconnect: not the client's headers, these.
        headers = {"Host": self.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
        context = self.request_context(DISCONNECT, "DISCONNECT", peer)
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        return {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }
