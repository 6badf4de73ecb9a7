"""The customer the erasure tests erase: her mail, and the words that must vanish with her."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from tests.support.settings import SUPPORT_ADDRESS

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ADDRESS = "maria.rossi@example.org"
NAME = "Maria Rossi"
SUBJECTS = ("Fattura sbagliata", "Ordine 4471 in ritardo", "Password dimenticata")
PHRASE = "il mio numero cliente"
COMMENT = "servizio lentissimo"
FILENAME = "contratto-rossi.pdf"
NEEDLES = (ADDRESS, NAME, *SUBJECTS, PHRASE, COMMENT, FILENAME)


def her_mail(n: int, subject: str, *, reply_to: str | None = None, attach: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = f'"{NAME}" <{ADDRESS}>'
    msg["To"] = SUPPORT_ADDRESS
    msg["Subject"] = subject if reply_to is None else f"Re: {subject}"
    msg["Date"] = format_datetime(BASE + timedelta(minutes=n))
    msg["Message-ID"] = make_msgid(f"rossi{n}", domain="example.org")
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content(f"Buongiorno, {PHRASE} è 8812. Messaggio {n}.\n")
    if attach:
        msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename=FILENAME)
    return bytes(msg)


def message_id(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise ValueError("no Message-ID")
