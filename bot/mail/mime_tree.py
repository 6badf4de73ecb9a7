"""The leaf parts of a MIME message and what can be read from each, whatever it declares.

`leaf_parts` is the one walk that both the body reader (`bot.mail.bodies`) and the
attachment reader (`bot.mail.attachments`) use, so the attachments listed when a
mail is stored and the bytes read back later are the same parts in the same order.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Iterator
from email.message import Message

from bot.mail.headers import raw_header_value

_WS = re.compile(r"\s+")


def decode_text(part: Message, defects: list[str]) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        defects.append(f"undecodable part: {type(exc).__name__}")
        return ""
    if payload is None:
        payload = b""
    if isinstance(payload, str):
        return payload
    declared = part.get_content_charset() or "utf-8"
    for charset in (declared, "utf-8"):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
        except Exception:
            continue
    defects.append(f"text not in its declared charset {declared!r}; read as windows-1252")
    return payload.decode("cp1252", "replace")


def part_filename(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return _WS.sub(" ", raw_header_value(name)).strip()[:300]
    content_type = part.get_content_type()
    extension = mimetypes.guess_extension(content_type) or ".bin"
    return f"attachment-{index}{extension}"


def payload_size(part: Message) -> int:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return len(payload)
    raw = part.get_payload()
    return len(raw) if isinstance(raw, str | bytes) else 0


def walk_parts(part: Message, depth: int = 0) -> Iterable[Message]:
    # An explicit depth bound: hostile mail can nest thousands of multiparts.
    yield part
    if depth > 50 or not part.is_multipart():
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                yield from walk_parts(child, depth + 1)


def leaf_parts(msg: Message) -> Iterator[tuple[Message, str, str, str]]:
    """Each leaf part as (part, role, content type, disposition); role is "plain" or "html" for
    the first unnamed text part of each kind (the body), else "attachment".

    One walk for `read_body` and `attachment_parts`, so the attachments listed when a mail is
    stored and the bytes read back for an upload are the same parts in the same order.
    """
    plain_seen = html_seen = False
    for part in walk_parts(msg):
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        try:
            disposition = (part.get_content_disposition() or "").lower()
        except Exception:
            disposition = ""
        has_name = bool(part.get_param("filename", header="content-disposition") or part.get_param("name"))
        if content_type in ("text/plain", "text/html") and disposition != "attachment" and not has_name:
            if content_type == "text/plain" and not plain_seen:
                plain_seen = True
                yield part, "plain", content_type, disposition
                continue
            if content_type == "text/html" and not html_seen:
                html_seen = True
                yield part, "html", content_type, disposition
                continue
        if part is msg and content_type.startswith("text/"):
            yield part, "plain", content_type, disposition
            continue
        if content_type == "message/rfc822" or content_type.startswith("multipart/"):
            continue
        yield part, "attachment", content_type, disposition


def payload_bytes(part: Message) -> bytes:
    """The part's decoded bytes; what `payload_size` measures."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,10})\s*$")


def part_extension(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    found = _EXTENSION.search(raw_header_value(name)[-64:]) if name else None
    return found.group(1) if found else ""
