"""Text any database can hold, made from whatever a mail contained."""

from __future__ import annotations


def storable_text(text: str) -> str:
    """Text any database can hold: PostgreSQL refuses NUL in text, and no driver can
    encode a lone surrogate (what undecodable bytes and some charsets leave behind).
    Either becomes U+FFFD, the mark for "unreadable here"; the raw source keeps the bytes."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
