"""A local SMTP sink: every message the local stack sends lands in a directory as an .eml file.

Plain SMTP without AUTH by default (the local stack sets SMTP_STARTTLS=false and no
username); aiosmtpd's own options (tls_context, require_starttls, authenticator,
auth_required...) pass through for tests of the STARTTLS and AUTH paths.

    with MailSink(Path(".devstack/mail")) as sink:
        ...  # SMTP_HOST=127.0.0.1 SMTP_PORT=sink.port
        sink.messages()  # [Path('.devstack/mail/20250102T030405.000001Z-000001.eml'), ...]
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import ssl
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class SaveToDirectory:
    """aiosmtpd handler writing each message's raw bytes to `<directory>/<UTC timestamp>-<n>.eml`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.save(envelope.original_content or b"")
        return "250 2.0.0 Message accepted for delivery"

    def save(self, raw: bytes) -> Path:
        """Write one message; readers never see a half-written file (write, then rename)."""
        with self._lock:
            n = next(self._counter)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{n:06d}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(raw)
        os.replace(partial, path)
        return path


class _Controller(Controller):
    """aiosmtpd's Controller, able to listen on port 0 (it would poke port 0 to wake the server)."""

    def _trigger_server(self) -> None:
        if isinstance(self.server, asyncio.Server) and self.port == 0:
            self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


class MailSink:
    """An SMTP server on the loopback interface that saves what it receives; a context manager."""

    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        handler: SaveToDirectory | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **smtp_options: Any,
    ) -> None:
        """`port=0` picks a free port (see `.port` once started). `ssl_context` makes it SMTPS
        (TLS from the first byte); `smtp_options` go to aiosmtpd's SMTP (tls_context for STARTTLS,
        require_starttls, authenticator, auth_required, auth_exclude_mechanism, ...)."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the mail sink listens on the loopback interface only, not {host!r}")
        self.directory = Path(directory)
        self.host = host
        self._requested_port = port
        self.handler = handler or SaveToDirectory(self.directory)
        self.handler.directory = self.directory
        self._ssl_context = ssl_context
        self._smtp_options = smtp_options
        self._controller: _Controller | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the actual one when started with port 0)."""
        return self._controller.port if self._controller is not None else self._requested_port

    def start(self) -> MailSink:
        if self._controller is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        controller = _Controller(
            self.handler,
            hostname=self.host,
            port=self._requested_port,
            ssl_context=self._ssl_context,
            server_hostname="iotcloud-mailsink",
            **self._smtp_options,
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[Path]:
        """The saved messages, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.eml"))

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
