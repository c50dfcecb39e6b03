"""Mail leaves through SMTP (into the local sink, over 127.0.0.1) or SES (moto), and failures are domain errors."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib.adapters.mail import SesMailer, SmtpMailer, mailer_for
from chalicelib.config import Settings
from chalicelib.domain.mail import Attachment, build_message
from chalicelib.errors import MailUnavailableError
from devstack.mailsink import MailSink, SaveToDirectory

SENDER = "iotcloud <reports@iot.example.com>"
CHART = b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>'
REPORT = b'{"desired": 6, "reason": "cpu > 70%"}'


def report_message(subject: str = "Scaling report: dev") -> EmailMessage:
    return build_message(
        SENDER,
        ["ops@example.org", "Oncall <oncall@example.org>"],
        subject,
        "Desired capacity 4 -> 6.\n",
        '<p>Desired capacity 4 &rarr; 6.</p><img src="cid:chart">',
        [
            Attachment("load.svg", CHART, "image/svg+xml", inline=True, cid="chart"),
            Attachment("report.json", REPORT, "application/json"),
        ],
    )


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def attachments_of(msg: EmailMessage) -> list[tuple[str | None, str, bytes]]:
    return [(p.get_filename(), p.get_content_type(), p.get_content()) for p in msg.iter_attachments()]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def smtp_mailer(sink: MailSink, sleeps: Sleeps | None = None, **options: Any) -> SmtpMailer:
    options.setdefault("starttls", False)
    options.setdefault("username", "")
    options.setdefault("password", "")
    return SmtpMailer("127.0.0.1", sink.port, timeout=5, sleep=sleeps if sleeps is not None else Sleeps(), **options)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail") as running:
        yield running


# --- TLS material: a throwaway self-signed certificate for 127.0.0.1 --------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iotcloud test mail sink")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A verifying client context (hostname checks included) that trusts only the test certificate."""
    return ssl.create_default_context(cafile=str(certificate[0]))


class Credentials:
    """An aiosmtpd authenticator accepting one user, remembering every attempt."""

    def __init__(self, login: str, password: str) -> None:
        self.login, self.password = login, password
        self.attempts: list[tuple[str, str, bool]] = []  # (mechanism, login, over TLS)

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.attempts.append((mechanism, data.login.decode(), session.ssl is not None))
        ok = (data.login.decode(), data.password.decode()) == (self.login, self.password)
        return AuthResult(success=ok, handled=False)


# --- the sink --------------------------------------------------------------------------------------------------


def test_message_lands_in_the_sink_as_an_eml_that_parses_back(sink):
    message = report_message()

    message_id = smtp_mailer(sink).send(message)

    [saved] = sink.messages()
    assert saved.parent == sink.directory
    assert saved.name.endswith("-000001.eml")
    back = parse(saved.read_bytes())
    assert back["Subject"] == "Scaling report: dev"
    assert back["Message-ID"] == message_id == message["Message-ID"]
    assert [a.addr_spec for a in back["To"].addresses] == ["ops@example.org", "oncall@example.org"]
    assert attachments_of(back) == [("report.json", "application/json", REPORT)]
    image = next(p for p in back.walk() if p["Content-ID"] == "<chart>")
    assert image.get_content() == CHART


def test_sink_keeps_every_message_in_order(sink):
    mailer = smtp_mailer(sink)
    for n in range(3):
        mailer.send(report_message(f"report {n}"))

    assert [parse(p.read_bytes())["Subject"] for p in sink.messages()] == ["report 0", "report 1", "report 2"]
    assert list(sink.directory.glob("*.part")) == []


def test_sink_binds_loopback_only_on_the_port_it_reports(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        MailSink(tmp_path, host="0.0.0.0")
    with MailSink(tmp_path) as sink:
        assert sink.port > 0
        with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as conn:
            assert conn.recv(1024).startswith(b"220 ")
        port = sink.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_sink_on_a_given_port(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with MailSink(tmp_path, port=port) as sink:
        assert sink.port == port
        smtp_mailer(sink).send(report_message())
        assert len(sink.messages()) == 1


# --- STARTTLS, SMTPS and AUTH ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_then_auth(tmp_path, server_tls, client_tls, mechanism):
    credentials = Credentials("reporter", "s3cret")
    excluded = [m for m in ("PLAIN", "LOGIN") if m != mechanism]
    options = {"tls_context": server_tls, "require_starttls": True, "auth_required": True}
    with MailSink(tmp_path, authenticator=credentials, auth_exclude_mechanism=excluded, **options) as sink:
        mailer = smtp_mailer(sink, starttls=True, username="reporter", password="s3cret", ssl_context=client_tls)
        mailer.send(report_message())

        assert len(sink.messages()) == 1
    assert credentials.attempts == [(mechanism, "reporter", True)]


def test_wrong_password_fails_at_once(tmp_path, server_tls, client_tls):
    credentials = Credentials("reporter", "s3cret")
    sleeps = Sleeps()
    with MailSink(tmp_path, tls_context=server_tls, auth_required=True, authenticator=credentials) as sink:
        mailer = smtp_mailer(sink, sleeps, starttls=True, username="reporter", password="guess", ssl_context=client_tls)
        with pytest.raises(MailUnavailableError, match="535") as caught:
            mailer.send(report_message())

        assert sink.messages() == []
    # One connection, no retry: smtplib's login() tries each offered mechanism once.
    assert sorted(m for m, _, _ in credentials.attempts) == ["LOGIN", "PLAIN"] and sleeps == []
    assert caught.value.status == 503 and caught.value.code == "mail_unavailable"
    assert "guess" not in str(caught.value) and "guess" not in repr(mailer)


def test_starttls_is_never_skipped_when_the_server_lacks_it(sink, client_tls):
    sleeps = Sleeps()
    with pytest.raises(MailUnavailableError, match="STARTTLS"):
        smtp_mailer(sink, sleeps, starttls=True, ssl_context=client_tls).send(report_message())

    assert sink.messages() == [] and sleeps == []


def test_an_untrusted_certificate_fails_at_once(tmp_path, server_tls):
    sleeps = Sleeps()
    with MailSink(tmp_path, tls_context=server_tls) as sink:
        with pytest.raises(MailUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            smtp_mailer(sink, sleeps, starttls=True).send(report_message())  # the system trust store

        assert sink.messages() == [] and sleeps == []


def test_plain_client_refused_by_a_server_requiring_starttls(tmp_path, server_tls):
    with MailSink(tmp_path, tls_context=server_tls, require_starttls=True) as sink:
        with pytest.raises(MailUnavailableError, match="530"):
            smtp_mailer(sink).send(report_message())

        assert sink.messages() == []


def test_smtps_implicit_tls(tmp_path, server_tls, client_tls):
    with MailSink(tmp_path, ssl_context=server_tls) as sink:
        smtp_mailer(sink, implicit_tls=True, ssl_context=client_tls).send(report_message())

        assert len(sink.messages()) == 1


def test_port_465_means_implicit_tls():
    assert "465" in repr(SmtpMailer("smtp.example.org", 465, False, "", ""))
    assert SmtpMailer("smtp.example.org", 465, False, "", "")._implicit_tls
    assert not SmtpMailer("smtp.example.org", 587, True, "", "")._implicit_tls


# --- transient and permanent failures --------------------------------------------------------------------------


class Answers(SaveToDirectory):
    """Answers DATA with the scripted replies first, then accepts."""

    def __init__(self, directory: Path, *replies: str) -> None:
        super().__init__(directory)
        self.replies = list(replies)
        self.data_commands = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.replies:
            return self.replies.pop(0)
        return await super().handle_DATA(server, session, envelope)


def test_a_transient_failure_is_retried(tmp_path):
    answers = Answers(tmp_path, "451 4.3.0 Try again later")
    sleeps = Sleeps()
    with MailSink(tmp_path, handler=answers) as sink:
        smtp_mailer(sink, sleeps).send(report_message())

        assert len(sink.messages()) == 1
    assert answers.data_commands == 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5


def test_transient_failures_give_up_after_three_attempts(tmp_path):
    answers = Answers(tmp_path, *["421 4.7.0 Busy"] * 5)
    sleeps = Sleeps()
    with MailSink(tmp_path, handler=answers) as sink:
        with pytest.raises(MailUnavailableError, match="after 3 attempts"):
            smtp_mailer(sink, sleeps).send(report_message())

        assert sink.messages() == []
    assert answers.data_commands == 3 and len(sleeps) == 2


def test_a_permanent_failure_raises_at_once(tmp_path):
    answers = Answers(tmp_path, "550 5.7.1 Message rejected")
    sleeps = Sleeps()
    with MailSink(tmp_path, handler=answers) as sink:
        with pytest.raises(MailUnavailableError, match="550 5.7.1 Message rejected") as caught:
            smtp_mailer(sink, sleeps).send(report_message())

        assert sink.messages() == []
    assert answers.data_commands == 1 and sleeps == []
    assert "after" not in str(caught.value)


class RefusesOncall(SaveToDirectory):
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("oncall@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_partly_refused_message_is_not_resent_to_the_others(tmp_path):
    sleeps = Sleeps()
    with MailSink(tmp_path, handler=RefusesOncall(tmp_path)) as sink:
        message_id = smtp_mailer(sink, sleeps).send(report_message())

        assert len(sink.messages()) == 1
    assert message_id.endswith("@iot.example.com>") and sleeps == []


def test_no_server_listening_is_transient_then_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    sleeps = Sleeps()
    mailer = SmtpMailer("127.0.0.1", port, False, "", "", timeout=2, sleep=sleeps)

    with pytest.raises(MailUnavailableError, match="after 3 attempts") as caught:
        mailer.send(report_message())

    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert len(sleeps) == 2


def test_a_message_without_message_id_gets_one(sink):
    message = report_message()
    del message["Message-ID"]

    message_id = smtp_mailer(sink).send(message)

    assert message["Message-ID"] is None  # the caller's message is left alone
    assert parse(sink.messages()[0].read_bytes())["Message-ID"] == message_id
    assert message_id.endswith("@iot.example.com>")


# --- SES (moto) ------------------------------------------------------------------------------------------------


@pytest.fixture
def ses() -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("ses", region_name="us-east-1")


def sent_by_moto() -> list[Any]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def test_ses_sends_from_a_verified_sender(ses):
    ses.verify_email_identity(EmailAddress="reports@iot.example.com")
    message = report_message()
    message["Bcc"] = "audit@example.org"

    message_id = SesMailer(ses).send(message)

    [sent] = sent_by_moto()
    assert sent.id == message_id
    assert sent.source == "reports@iot.example.com"
    assert {"ops@example.org", "oncall@example.org", "audit@example.org"} <= set(sent.destinations)
    back = parse(sent.raw_data.encode())
    assert back["Subject"] == "Scaling report: dev"
    assert back["Bcc"] is None  # recipients must not see the blind copies
    assert attachments_of(back) == [("report.json", "application/json", REPORT)]
    assert ses.get_send_quota()["SentLast24Hours"] >= 3


def test_ses_refuses_an_unverified_sender(ses):
    sleeps = Sleeps()
    with pytest.raises(MailUnavailableError, match="MessageRejected") as caught:
        SesMailer(ses, sleep=sleeps).send(report_message())

    assert caught.value.code == "mail_unavailable"
    assert sleeps == [] and sent_by_moto() == []


def test_ses_throttling_is_retried():
    client = boto3.client("ses", region_name="us-east-1")
    sleeps = Sleeps()
    with Stubber(client) as stub:
        stub.add_client_error("send_raw_email", "Throttling", "Maximum sending rate exceeded.", 400)
        stub.add_response("send_raw_email", {"MessageId": "0100-abc"})

        assert SesMailer(client, sleep=sleeps).send(report_message()) == "0100-abc"
        stub.assert_no_pending_responses()
    assert len(sleeps) == 1


def test_ses_daily_quota_is_not_retried():
    client = boto3.client("ses", region_name="us-east-1")
    sleeps = Sleeps()
    with Stubber(client) as stub:
        stub.add_client_error("send_raw_email", "Throttling", "Daily message quota exceeded.", 400)
        with pytest.raises(MailUnavailableError, match="quota"):
            SesMailer(client, sleep=sleeps).send(report_message())
    assert sleeps == []


# --- choosing the mailer ---------------------------------------------------------------------------------------


def settings(**mail: Any) -> Settings:
    return Settings(stage="test", devices_table="d", readings_table="r", archive_bucket="b", **mail)


def test_mailer_for_the_configuration():
    factory_calls: list[str] = []

    def factory(service: str) -> object:
        factory_calls.append(service)
        return object()

    smtp = mailer_for(settings(mail_from="r@example.org", smtp_host="127.0.0.1", smtp_port=2525), factory)
    ses_mailer = mailer_for(settings(mail_from="r@example.org"), factory)

    assert isinstance(smtp, SmtpMailer)
    assert isinstance(ses_mailer, SesMailer)
    assert factory_calls == ["ses"]
    assert mailer_for(settings(), factory) is None


def test_local_stack_configuration_reaches_the_sink(sink):
    configured = settings(mail_from="reports@iot.example.com", smtp_host="127.0.0.1", smtp_port=sink.port)
    configured = Settings(**{**configured.__dict__, "smtp_starttls": False})
    mailer = mailer_for(configured, lambda service: None)
    assert mailer is not None

    mailer.send(report_message())

    assert len(sink.messages()) == 1
