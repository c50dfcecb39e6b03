from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, MIMEPart
from email.utils import parsedate_to_datetime

import pytest

from chalicelib.domain.mail import Attachment, build_message

SENDER = "iotcloud reports <reports@iot.example.com>"
CHART = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
REPORT = b'{"stage": "dev", "desired": 4, "note": "caf\xc3\xa9"}'


def reparsed(msg: EmailMessage) -> EmailMessage:
    """What a client sees: the message serialized as SMTP carries it, then parsed back."""
    raw = msg.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(part: MIMEPart | None) -> str:
    """A text part's content, with the wire's CRLF line ends back to \\n."""
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def structure(part: MIMEPart) -> object:
    if part.is_multipart():
        return (part.get_content_type(), [structure(p) for p in part.iter_parts()])
    return part.get_content_type()


def test_text_only_is_a_single_text_part():
    msg = reparsed(build_message(SENDER, ["ops@example.org"], "Scaling report", "All quiet.\n"))

    assert structure(msg) == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert text_of(msg) == "All quiet.\n"


def test_text_and_html_are_alternatives_plain_first():
    msg = reparsed(build_message(SENDER, ["ops@example.org"], "s", "plain body\n", "<p>html body</p>\n"))

    assert structure(msg) == ("multipart/alternative", ["text/plain", "text/html"])
    assert text_of(msg.get_body(preferencelist=("html", "plain"))) == "<p>html body</p>\n"
    assert text_of(msg.get_body(preferencelist=("plain",))) == "plain body\n"


def test_attachments_wrap_the_body_in_mixed_and_round_trip_bytes():
    attachments = [
        Attachment("chart.svg", CHART, "image/svg+xml"),
        Attachment("report.json", REPORT, "application/json"),
    ]
    msg = reparsed(
        build_message(SENDER, ["ops@example.org"], "s", "see attached\n", "<p>see attached</p>", attachments)
    )

    assert structure(msg) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "image/svg+xml", "application/json"],
    )
    got = [(a.get_filename(), a.get_content_type(), a.get_content()) for a in msg.iter_attachments()]
    assert got == [("chart.svg", "image/svg+xml", CHART), ("report.json", "application/json", REPORT)]
    assert all(a.get_content_disposition() == "attachment" for a in msg.iter_attachments())


def test_text_only_with_attachment():
    msg = reparsed(
        build_message(
            SENDER, ["ops@example.org"], "s", "t", attachments=[Attachment("r.json", REPORT, "application/json")]
        )
    )

    assert structure(msg) == ("multipart/mixed", ["text/plain", "application/json"])


def test_inline_image_is_related_to_the_html_and_found_by_cid():
    html = '<p>Load</p><img src="cid:load-chart" alt="load">'
    attachments = [
        Attachment("load.svg", CHART, "image/svg+xml", inline=True, cid="load-chart"),
        Attachment("report.json", REPORT, "application/json"),
    ]
    msg = reparsed(build_message(SENDER, ["ops@example.org"], "s", "Load: see the HTML part", html, attachments))

    assert structure(msg) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/svg+xml"])]),
            "application/json",
        ],
    )
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    # RFC 2387: `type` names the root part, which is the first one (no `start` needed).
    assert related.get_param("type") == "text/html"
    root, image = list(related.iter_parts())
    assert root.get_content_type() == "text/html"
    assert image["Content-ID"] == "<load-chart>"
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == "load.svg"
    assert image.get_content() == CHART
    assert "cid:load-chart" in root.get_content()
    # The client shows the HTML with its image; only the JSON is offered as a download.
    assert [a.get_filename() for a in msg.iter_attachments()] == ["report.json"]


def test_mime_version_only_at_the_top():
    attachments = [Attachment("c.svg", CHART, "image/svg+xml", inline=True, cid="c"), Attachment("r.json", REPORT)]
    msg = build_message(SENDER, ["ops@example.org"], "s", "t", '<img src="cid:c">', attachments)

    assert msg["MIME-Version"] == "1.0"
    assert [p for p in msg.walk() if p is not msg and p["MIME-Version"] is not None] == []


def test_headers():
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    msg = reparsed(
        build_message(SENDER, ["ops@example.org", "Zoë <zoe@example.net>"], "Scaling: 4 → 6 tasks", "t", date=when)
    )

    assert msg["From"].addresses[0].addr_spec == "reports@iot.example.com"
    assert msg["From"].addresses[0].display_name == "iotcloud reports"
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ("", "ops@example.org"),
        ("Zoë", "zoe@example.net"),
    ]
    assert msg["Subject"] == "Scaling: 4 → 6 tasks"
    assert parsedate_to_datetime(msg["Date"]) == when
    assert msg["Date"].endswith("+0000")
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@iot.example.com>")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"


def test_non_ascii_headers_are_encoded_on_the_wire():
    raw = build_message(SENDER, ["Zoë <zoe@example.net>"], "Température", "t").as_bytes(policy=email.policy.SMTP)

    assert raw.isascii()
    assert b"\r\n" in raw


def test_date_defaults_to_now_and_message_ids_are_unique():
    before = datetime.now(UTC).replace(microsecond=0)
    first = build_message("reports@example.com", ["ops@example.org"], "s", "t")
    second = build_message("reports@example.com", ["ops@example.org"], "s", "t")

    assert before <= parsedate_to_datetime(first["Date"]) <= datetime.now(UTC)
    assert first["Message-ID"] != second["Message-ID"]


def test_duplicate_recipients_are_sent_once():
    msg = build_message(SENDER, ["ops@example.org", "OPS@example.org", "dev@example.org"], "s", "t")

    assert [a.addr_spec for a in msg["To"].addresses] == ["ops@example.org", "dev@example.org"]


@pytest.mark.parametrize(
    "recipients",
    [[], ["ops"], ["@example.org"], ["ops@"], [""], ["ops@example.org", "nobody"], ["a@b.org, c@d.org"]],
)
def test_invalid_recipients_are_rejected(recipients):
    with pytest.raises(ValueError):
        build_message(SENDER, recipients, "s", "t")


@pytest.mark.parametrize("sender", ["", "reports", "reports@", "x@example.org\r\nBcc: victim@example.org"])
def test_invalid_senders_are_rejected(sender):
    with pytest.raises(ValueError):
        build_message(sender, ["ops@example.org"], "s", "t")


def test_a_string_is_not_a_list_of_recipients():
    with pytest.raises(TypeError):
        build_message(SENDER, "ops@example.org", "s", "t")


def test_header_injection_through_the_subject_is_rejected():
    with pytest.raises(ValueError):
        build_message(SENDER, ["ops@example.org"], "report\r\nBcc: victim@example.org", "t")


@pytest.mark.parametrize(
    "attachment",
    [
        Attachment("chart.svg", CHART, "image/svg+xml", inline=True),  # no cid
        Attachment("chart.svg", CHART, "image/svg+xml", inline=True, cid="<chart>"),  # brackets are ours to add
        Attachment("../chart.svg", CHART, "image/svg+xml"),
        Attachment("", CHART, "image/svg+xml"),
        Attachment("chart.svg", CHART, "svg"),
        Attachment("chart.svg", CHART, "multipart/mixed"),
        Attachment("chart.svg", "not bytes", "image/svg+xml"),  # type: ignore[arg-type]
    ],
)
def test_invalid_attachments_are_rejected(attachment):
    with pytest.raises(ValueError):
        build_message(SENDER, ["ops@example.org"], "s", "t", '<img src="cid:chart">', [attachment])


def test_inline_attachments_need_an_html_body():
    with pytest.raises(ValueError, match="HTML"):
        build_message(
            SENDER, ["ops@example.org"], "s", "t", attachments=[Attachment("c.svg", CHART, "image/svg+xml", True, "c")]
        )


def test_inline_cids_must_be_distinct():
    same = [Attachment(f"c{i}.svg", CHART, "image/svg+xml", inline=True, cid="c") for i in range(2)]
    with pytest.raises(ValueError, match="distinct"):
        build_message(SENDER, ["ops@example.org"], "s", "t", '<img src="cid:c">', same)


def test_long_and_non_ascii_bodies_survive():
    text = "Température " + "x" * 2000 + "\n"
    html = "<p>" + "é" * 3000 + "</p>"
    msg = build_message(SENDER, ["ops@example.org"], "s", text, html)
    raw = msg.as_bytes(policy=email.policy.SMTP)

    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 line limit
    back = reparsed(msg)
    assert text_of(back.get_body(("plain",))) == text
    assert text_of(back.get_body(("html",))).rstrip("\n") == html
