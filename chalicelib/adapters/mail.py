"""Outgoing mail: Amazon SES (v1 SendRawEmail) or any SMTP server.

Both mailers take a ready `EmailMessage` (see chalicelib.domain.mail.build_message),
retry transient failures a few times with backoff, and turn every failure into
MailUnavailableError. Delivery is at least once: a connection lost after the server
took the message but before it said so is retried, and may deliver twice.

SES only sends from verified identities (moto enforces this too): verify the sender
(`verify_email_identity`) or its domain before sending; the local stack's bootstrap
does it for MAIL_FROM.
"""

from __future__ import annotations

import copy
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib.adapters.retry import backoff_delay
from chalicelib.errors import MailUnavailableError

if TYPE_CHECKING:
    from chalicelib.config import Settings

logger = logging.getLogger("iotcloud.mail")

MAX_ATTEMPTS = 3

# SES v1 error codes worth another try; everything else (MessageRejected for an
# unverified identity, MailFromDomainNotVerified, InvalidParameterValue...) is permanent.
SES_TRANSIENT_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}
)


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Hand a message to the mail service; return its message id."""
        ...


class SesMailer:
    """Sends through Amazon SES's SendRawEmail (the v1 API), which keeps our MIME as is."""

    def __init__(
        self, ses_client: Any, *, max_attempts: int = MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._ses = ses_client
        self._max_attempts = max_attempts
        self._sleep = sleep

    def send(self, message: EmailMessage) -> str:
        """Send; return SES's MessageId (SES replaces the Message-ID header with its own)."""
        source = _sender(message)
        destinations = _recipients(message)
        raw = _wire_bytes(message)

        def once() -> str:
            answer = self._ses.send_raw_email(Source=source, Destinations=destinations, RawMessage={"Data": raw})
            return str(answer["MessageId"])

        return _with_retries(once, (ClientError, BotoCoreError), _ses_transient, "SES", self._max_attempts, self._sleep)


class SmtpMailer:
    """Sends over SMTP: STARTTLS when asked, TLS from the first byte on port 465, AUTH when a username is set."""

    def __init__(
        self,
        host: str,
        port: int,
        starttls: bool,
        username: str,
        password: str,
        timeout: float = 10,
        *,
        ssl_context: ssl.SSLContext | None = None,
        implicit_tls: bool | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`ssl_context` defaults to the system's trust store (tests pass one trusting their own
        certificate); `implicit_tls` (SMTPS) defaults to `port == 465`."""
        self._host, self._port = host, port
        self._starttls = starttls
        self._username, self._password = username, password
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._implicit_tls = port == 465 if implicit_tls is None else implicit_tls
        self._max_attempts = max_attempts
        self._sleep = sleep

    def __repr__(self) -> str:  # never the password
        return f"SmtpMailer(host={self._host!r}, port={self._port}, starttls={self._starttls}, user={self._username!r})"

    def send(self, message: EmailMessage) -> str:
        """Send; return the message's Message-ID (one is added when it has none)."""
        if message["Message-ID"] is None:
            message = copy.deepcopy(message)
            message["Message-ID"] = make_msgid(domain=_sender(message).rpartition("@")[2] or "localhost")
        message_id = str(message["Message-ID"])
        where = f"SMTP server {self._host}:{self._port}"

        def once() -> str:
            refused = self._deliver(message)
            if refused:
                # Accepted for the others: retrying would send them a second copy.
                logger.warning("%s refused recipients of %s: %s", where, message_id, sorted(refused))
            return message_id

        return _with_retries(
            once, (smtplib.SMTPException, OSError), _smtp_transient, where, self._max_attempts, self._sleep
        )

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        context = self._ssl_context or ssl.create_default_context()
        client: smtplib.SMTP
        if self._implicit_tls:
            client = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
        else:
            client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with client:
            if self._starttls and not self._implicit_tls:
                # Raises SMTPNotSupportedError when the server offers no STARTTLS: never falls back to plain text.
                client.starttls(context=context)
            if self._username:
                client.login(self._username, self._password)
            return client.send_message(message)


def mailer_for(settings: Settings, client_factory: Callable[[str], Any]) -> Mailer | None:
    """The configured mailer: SMTP when SMTP_HOST is set, else SES when MAIL_FROM is, else None."""
    if settings.smtp_host:
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_starttls,
            settings.smtp_username,
            settings.smtp_password,
        )
    if settings.mail_from:
        return SesMailer(client_factory("ses"))
    return None


def _with_retries(
    once: Callable[[], str],
    errors: tuple[type[Exception], ...],
    is_transient: Callable[[Exception], bool],
    where: str,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> str:
    for attempt in range(max_attempts):
        try:
            return once()
        except errors as e:
            transient = is_transient(e)
            if not transient or attempt == max_attempts - 1:
                tries = f" after {attempt + 1} attempts" if transient else ""
                raise MailUnavailableError(f"{where} did not take the message{tries}: {_describe(e)}") from e
            logger.info("%s: transient failure (%s), retrying", where, _describe(e))
            sleep(backoff_delay(attempt, base=0.5, cap=4.0))
    raise AssertionError("unreachable")  # pragma: no cover


def _smtp_transient(e: Exception) -> bool:
    """4xx replies and lost connections are worth retrying; 5xx replies and TLS/config problems are not."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in e.recipients.values())
    if isinstance(e, smtplib.SMTPResponseException):
        return 400 <= e.smtp_code < 500
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(e, smtplib.SMTPException | ssl.SSLError):
        return False  # no STARTTLS/AUTH offered, no usable AUTH mechanism, bad certificate, wrong protocol
    return isinstance(e, OSError)  # refused, reset, timed out, name resolution


def _ses_transient(e: Exception) -> bool:
    if isinstance(e, ClientError):
        error = e.response.get("Error", {})
        code, text = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == "Throttling" and "quota" in text.lower():
            return False  # "Daily message quota exceeded": no use retrying today
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in SES_TRANSIENT_CODES or status >= 500
    return isinstance(e, BotoConnectionError | HTTPClientError)


def _describe(e: Exception) -> str:
    if isinstance(e, ClientError):
        error = e.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        return f"{e.smtp_code} {text}"
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return "recipients refused: " + ", ".join(
            f"{rcpt} ({code} {text.decode('utf-8', 'replace')})" for rcpt, (code, text) in sorted(e.recipients.items())
        )
    return f"{type(e).__name__}: {e}"


def _sender(message: EmailMessage) -> str:
    pairs = getaddresses(message.get_all("Sender") or message.get_all("From") or [])
    if not pairs or "@" not in pairs[0][1]:
        raise ValueError("the message has no From address")
    return pairs[0][1]


def _recipients(message: EmailMessage) -> list[str]:
    fields: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        fields += [str(v) for v in message.get_all(name) or []]
    addresses = [addr for _, addr in getaddresses(fields) if "@" in addr]
    if not addresses:
        raise ValueError("the message has no recipients")
    return list(dict.fromkeys(addresses))


def _wire_bytes(message: EmailMessage) -> bytes:
    """The message as SMTP carries it (CRLF), without Bcc, which must not reach the recipients."""
    if message["Bcc"] is not None:
        message = copy.deepcopy(message)
        del message["Bcc"]
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
