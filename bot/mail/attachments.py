"""What a mail carries besides its body: the list stored with it, the bytes read back
from the raw source for an upload, and which pictures are only the sender's styling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesParser
from urllib.parse import unquote

from bot.mail.headers import STRUCTURE_POLICY, normalise_message_id, raw_header_value
from bot.mail.mime_tree import leaf_parts, part_extension, part_filename, payload_bytes
from bot.mail.storable import storable_text


@dataclass(frozen=True)
class Attachment:
    """An attachment as listed when its mail is stored: no bytes (those stay in the raw source)."""

    filename: str
    content_type: str
    size: int


# The bytes of attachments are not stored apart from the raw source: whoever needs them
# (the upload to Slack) reads them back from `Message.raw` with the walk below, which
# finds the same parts, in the same order, under the same names as `read_body` lists them.


@dataclass(frozen=True)
class AttachmentPart:
    filename: str
    content_type: str  # as declared by the sender: never trusted for anything that matters
    content_id: str | None  # without angle brackets
    inline: bool  # Content-Disposition: inline
    data: bytes
    # The extension of the name as sent ("pdf"), which `filename` loses when a long name
    # is cut; empty when the name has none worth keeping.
    extension: str = ""

    @property
    def size(self) -> int:
        return len(self.data)


def attachment_parts(raw: bytes) -> list[AttachmentPart]:
    """The attachments of a stored mail with their bytes, in the order `parse_email` lists them."""
    try:
        msg = BytesParser(policy=STRUCTURE_POLICY).parsebytes(raw)
    except Exception:
        return []
    parts: list[AttachmentPart] = []
    for part, role, content_type, disposition in leaf_parts(msg):
        if role != "attachment":
            continue
        parts.append(
            AttachmentPart(
                filename=storable_text(part_filename(part, len(parts) + 1)),
                content_type=content_type,
                content_id=normalise_message_id(raw_header_value(part.get("content-id") or "")),
                inline=disposition == "inline",
                data=payload_bytes(part),
                extension=part_extension(part),
            )
        )
    return parts


_CID = re.compile(r"""cid:([^\s"'<>()]+)""", re.IGNORECASE)
# A picture the HTML body shows inline that is no bigger than this on both sides, and
# small in bytes, is a signature logo, a social icon or a tracking pixel; a pasted
# screenshot is bigger on at least one side.
DECORATION_MAX_SIDE = 400
DECORATION_MAX_BYTES = 64 * 1024
# For an inline picture whose size cannot be read (an unknown or broken format).
DECORATION_UNKNOWN_MAX_BYTES = 16 * 1024


def html_content_ids(html: str | None) -> frozenset[str]:
    """The Content-IDs an HTML body shows (`<img src="cid:…">`), lower-cased."""
    if not html:
        return frozenset()
    return frozenset(unquote(found).strip("<>").lower() for found in _CID.findall(html[:2_000_000]))


def is_decoration(part: AttachmentPart, html: str | None) -> bool:
    """Whether an attachment is part of the sender's HTML styling (a logo), not content.

    Only a picture the HTML body itself shows by `cid:` can be one, and only when it is
    small: by its real pixel size, read from the bytes (the declared type may lie), or,
    when that cannot be read, by its byte size alone.
    """
    if not part.content_id or part.content_id.lower() not in html_content_ids(html):
        return False
    size = image_dimensions(part.data)
    if size is None:
        return part.size <= DECORATION_UNKNOWN_MAX_BYTES
    return part.size <= DECORATION_MAX_BYTES and max(size) <= DECORATION_MAX_SIDE


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG, from its own header; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] == b"\xff\xd8":
        position, end = 2, min(len(data), 1_000_000)
        while position + 9 <= end:
            if data[position] != 0xFF:
                return None
            marker = data[position + 1]
            if marker == 0xFF:  # fill byte
                position += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                position += 2
                continue
            length = int.from_bytes(data[position + 2 : position + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height = int.from_bytes(data[position + 5 : position + 7], "big")
                width = int.from_bytes(data[position + 7 : position + 9], "big")
                return width, height
            if length < 2:
                return None
            position += 2 + length
    return None
