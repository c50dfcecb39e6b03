"""A real WAMP client for the tests: autobahn-python on asyncio, ticket authentication."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

import txaio
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import ComponentConfig

txaio.use_asyncio()


class Refused(Exception):
    """The router refused the session (ABORT): its reason URI."""

    def __init__(self, reason: str, message: str | None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


async def connect(url: str, ticket: str, authid: str | None = None, timeout: float = 10) -> ApplicationSession:
    """A joined session on realm iotcloud, or Refused."""
    loop = asyncio.get_running_loop()
    joined: asyncio.Future[ApplicationSession] = loop.create_future()

    class Session(ApplicationSession):  # type: ignore[misc]
        def onConnect(self) -> None:  # noqa: N802
            self.join("iotcloud", authmethods=["ticket"], authid=authid)

        def onChallenge(self, challenge: Any) -> str:  # noqa: N802
            return ticket

        def onJoin(self, details: Any) -> None:  # noqa: N802
            if not joined.done():
                joined.set_result(self)

        def onLeave(self, details: Any) -> None:  # noqa: N802
            if not joined.done():
                joined.set_exception(Refused(details.reason, details.message))
            self.disconnect()

        def onDisconnect(self) -> None:  # noqa: N802
            if not joined.done():
                joined.set_exception(Refused("transport closed", None))

    factory = WampWebSocketClientFactory(
        lambda: Session(ComponentConfig("iotcloud")), url=url, serializers=[JsonSerializer()]
    )
    parsed = urlparse(url)
    await loop.create_connection(factory, parsed.hostname, parsed.port)
    return await asyncio.wait_for(joined, timeout)


async def close(*sessions: ApplicationSession) -> None:
    for session in sessions:
        if session.is_attached():
            session.leave()
    await asyncio.sleep(0.05)
    for session in sessions:
        if session.is_connected():
            session.disconnect()


__all__ = ["ApplicationError", "Refused", "close", "connect"]
