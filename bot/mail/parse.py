"""Reading customer email: the stdlib `email` package, made to survive what real mail holds.

Mail in the wild is mislabelled (latin-1 sent as "utf-8"), names charsets nobody
knows, folds headers wrongly and nests MIME oddly. Parsing is therefore lenient:
anything we can read is read, each oddity is kept as a defect string, and only
input with no message structure at all is refused (`MalformedEmailError`), so the
caller can store it raw and flag it instead of dropping it.

The pieces live beside it: `headers` (decoding and reading header values),
`mime_tree` (the walk over leaf parts), `bodies` (text and the new part of it),
`attachments` (the list, the bytes, the decorations) and `storable`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from email.parser import BytesParser
from typing import Any

from bot.mail.attachments import Attachment
from bot.mail.bodies import read_body, view_text
from bot.mail.headers import (
    STRUCTURE_POLICY,
    message_ids,
    normalise_message_id,
    parse_address,
    parse_addresses,
    parse_date,
    read_headers,
)
from bot.mail.storable import storable_text

_TOKEN = re.compile(r"\[#(\d{1,9})\]")
_WS = re.compile(r"\s+")
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")


class MalformedEmailError(ValueError):
    """The bytes hold no readable message; store them raw and flag the ticket."""


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    dedupe_key: str
    subject: str
    from_name: str
    from_address: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: str | None
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str
    html: str | None
    view_text: str
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]
    auto_reason: str | None
    defects: tuple[str, ...]


def ticket_token(subject: str) -> int | None:
    found = _TOKEN.search(subject or "")
    return int(found.group(1)) if found else None


def parse_email(raw: bytes, own_addresses: Iterable[str] = ()) -> ParsedEmail:
    if not raw or not raw.strip():
        raise MalformedEmailError("empty message")
    try:
        msg = BytesParser(policy=STRUCTURE_POLICY).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is meant not to raise; be sure anyway
        raise MalformedEmailError(f"unparseable: {type(exc).__name__}: {exc}") from None
    headers, first = read_headers(msg)
    if not headers:
        raise MalformedEmailError("no email headers found")
    if not first.keys() & {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "content-type",
        "sender",
    }:
        raise MalformedEmailError("none of the headers an email has (From, To, Subject, Date…)")

    def header(name: str) -> str:
        return first.get(name, "")

    defects: list[str] = [_defect_text(d) for d in msg.defects]
    from_name, from_address = parse_address(header("from"))
    subject = _WS.sub(" ", header("subject")).strip()
    message_id = normalise_message_id(header("message-id"))
    in_reply_to = normalise_message_id(header("in-reply-to"))
    references = message_ids(header("references"))

    text, html, attachments = read_body(msg, defects)
    view = view_text(text)
    own = {a.strip().lower() for a in own_addresses if a}
    parsed = ParsedEmail(
        message_id=message_id,
        dedupe_key=message_id or _content_hash(first, raw),
        subject=subject,
        from_name=from_name,
        from_address=from_address,
        to=parse_addresses(header("to")),
        cc=parse_addresses(header("cc")),
        reply_to=(parse_address(header("reply-to"))[1] or None),
        date=parse_date(header("date")),
        in_reply_to=in_reply_to,
        references=references,
        text=text,
        html=html,
        view_text=view,
        attachments=tuple(attachments),
        headers=headers,
        auto_reason=_auto_reason(first, from_address, own),
        defects=tuple(dict.fromkeys(defects)),
    )
    return replace(parsed, **{f.name: _storable(getattr(parsed, f.name)) for f in fields(parsed)})


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, tuple):
        return tuple(_storable(item) for item in value)
    if isinstance(value, Attachment):
        return replace(value, filename=storable_text(value.filename))
    return value


def _defect_text(defect: object) -> str:
    return f"{type(defect).__name__}: {defect}"[:300]


# -- loop safety -------------------------------------------------------------------


def _auto_reason(headers: dict[str, str], from_address: str, own: set[str]) -> str | None:
    """Why nothing may ever auto-reply to this mail (RFC 3834), or None."""
    content_type = headers.get("content-type", "").lower()
    local_part = from_address.split("@", 1)[0]
    return_path = headers.get("return-path", "").strip()
    if (
        ("multipart/report" in content_type and "delivery-status" in content_type)
        or local_part in _BOUNCE_SENDERS
        or return_path == "<>"
    ):
        return "bounce"
    if from_address and from_address in own:
        return "own-address"
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return "auto-submitted"
    if headers.get("precedence", "").strip().lower() in {"bulk", "junk", "list"}:
        return "precedence-bulk"
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return "x-autoreply"
    suppress = headers.get("x-auto-response-suppress", "").strip()
    if suppress and suppress.lower() != "none":
        return "x-auto-response-suppress"
    return None


# -- dedupe ----------------------------------------------------------------------------


def _content_hash(headers: dict[str, str], raw: bytes) -> str:
    """A stable identity for mail without a Message-ID: the headers a resend keeps, plus
    the body, ignoring the Received trail and header folding that relays change."""
    digest = hashlib.sha256()
    for name in ("From", "To", "Date", "Subject"):
        value = headers.get(name.lower(), "")
        digest.update(name.encode() + b":" + _WS.sub(" ", value).strip().encode() + b"\n")
    separator = raw.find(b"\r\n\r\n")
    if separator < 0:
        separator = raw.find(b"\n\n")
    body = raw[separator:] if separator >= 0 else b""
    digest.update(body.replace(b"\r\n", b"\n").strip())
    return "sha256:" + digest.hexdigest()
