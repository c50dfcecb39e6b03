"""Email messages the backend sends (scaling reports): pure MIME assembly, no transport.

Shapes produced (RFC 2045/2046/2387), the ones common clients render best:

    text only                   text/plain
    text + html                 multipart/alternative [text/plain, text/html]
    + inline images (cid)       multipart/alternative [text/plain,
                                    multipart/related; type="text/html" [text/html, image/...]]
    + attachments               multipart/mixed [<one of the above>, attachment, ...]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

# A Content-ID's id-left/id-right (RFC 2392): no brackets, whitespace or quoting in practice.
_CID = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+(@[A-Za-z0-9\-.]+)?$")
_MIME_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&\-^_.+]*/[A-Za-z0-9][A-Za-z0-9!#$&\-^_.+]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Attachment:
    """A file carried by a message.

    `inline=True` parts are shown inside the HTML body, which refers to them as
    `<img src="cid:{cid}">`; they need an HTML body and a `cid`.
    """

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"
    inline: bool = False
    cid: str | None = None

    @property
    def content_id(self) -> str:
        """The Content-ID header value, `<cid>`."""
        return f"<{self.cid}>"


def build_message(
    sender: str,
    recipients: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    *,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """Assemble a message; raise ValueError on invalid addresses, headers or attachments.

    Date defaults to now (UTC); Message-ID to a fresh one in the sender's domain.
    """
    from_address = _address(sender, "sender")
    if isinstance(recipients, str):
        raise TypeError("recipients must be a sequence of addresses, not one string")
    to_addresses = _unique([_address(r, "recipient") for r in recipients])
    if not to_addresses:
        raise ValueError("a message needs at least one recipient")
    if _CONTROL.search(subject):
        raise ValueError("the subject must be one line without control characters")
    inline, files = _inline_and_files(attachments, has_html=html is not None)

    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = to_addresses
    msg["Subject"] = subject
    msg["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=_ascii_domain(from_address.domain))
    # RFC 3834: everything this backend sends is automatic; no vacation auto-replies, please.
    msg["Auto-Submitted"] = "auto-generated"

    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if inline:
            html_part = msg.get_body(preferencelist=("html",))
            assert html_part is not None
            for a in inline:
                maintype, subtype = a.mime_type.split("/")
                html_part.add_related(
                    a.content, maintype, subtype, cid=a.content_id, filename=a.filename, disposition="inline"
                )
            # RFC 2387 makes `type` (the root part's type) mandatory on multipart/related.
            html_part.set_param("type", "text/html")
    for a in files:
        maintype, subtype = a.mime_type.split("/")
        msg.add_attachment(a.content, maintype, subtype, filename=a.filename)

    # The stdlib stamps MIME-Version on parts it builds; RFC 2045 wants it at the top only.
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]
    return msg


def _inline_and_files(
    attachments: Sequence[Attachment], *, has_html: bool
) -> tuple[list[Attachment], list[Attachment]]:
    """The checked attachments, inline ones (which need an HTML body and distinct cids) and files."""
    for attachment in attachments:
        _check_attachment(attachment)
    inline = [a for a in attachments if a.inline]
    files = [a for a in attachments if not a.inline]
    if inline and not has_html:
        raise ValueError("inline attachments need an HTML body that refers to them by cid")
    cids = [a.cid for a in inline]
    if len(set(cids)) != len(cids):
        raise ValueError("inline attachments need distinct cids")
    return inline, files


def _address(value: str, role: str) -> Address:
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        raise ValueError(f"invalid {role} address: {value!r}")
    pairs = getaddresses([value])
    if len(pairs) != 1:
        raise ValueError(f"invalid {role} address (one address expected): {value!r}")
    name, addr = pairs[0]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in addr) or domain.startswith("."):
        raise ValueError(f"invalid {role} address: {value!r}")
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError) as e:
        raise ValueError(f"invalid {role} address: {value!r}") from e


def _unique(addresses: list[Address]) -> list[Address]:
    seen: set[str] = set()
    out: list[Address] = []
    for a in addresses:
        key = a.addr_spec.lower()
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


def _check_attachment(a: Attachment) -> None:
    if not isinstance(a.content, bytes | bytearray):
        raise ValueError(f"attachment {a.filename!r}: content must be bytes")
    if not a.filename or "/" in a.filename or "\\" in a.filename or _CONTROL.search(a.filename):
        raise ValueError(f"invalid attachment filename: {a.filename!r}")
    if not _MIME_TYPE.match(a.mime_type) or a.mime_type.split("/")[0].lower() in ("multipart", "message"):
        raise ValueError(f"attachment {a.filename!r}: unsupported MIME type {a.mime_type!r}")
    if a.inline and (a.cid is None or not _CID.match(a.cid)):
        raise ValueError(f"inline attachment {a.filename!r} needs a cid such as 'chart1' (no brackets)")
