"""Building customer emails for tests: real RFC 5322 bytes, as a mail client would send them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

_BASE_DATE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def customer_mail(
    n: int = 0,
    *,
    subject: str | None = None,
    sender: str | None = None,
    sender_name: str | None = None,
    body: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    to: str = "support@example.com",
    headers: dict[str, str] | None = None,
    attachments: Sequence[tuple[bytes, str, str, str]] = (),
) -> bytes:
    """`attachments`: (data, maintype, subtype, filename) each, after the text body."""
    msg = EmailMessage()
    msg["From"] = f'"{sender_name or f"Customer {n}"}" <{sender or f"customer{n}@example.org"}>'
    msg["To"] = to
    msg["Subject"] = subject if subject is not None else f"Help needed #{n}"
    msg["Date"] = format_datetime(_BASE_DATE + timedelta(minutes=n))
    msg["Message-ID"] = message_id or make_msgid(f"m{n}", domain="example.org")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*references, in_reply_to])
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body if body is not None else f"Hello, this is request number {n}.\n")
    for data, maintype, subtype, filename in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


def message_id_of(raw: bytes) -> str:
    for line in raw.split(b"\r\n" if b"\r\n" in raw else b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise ValueError("no Message-ID")
