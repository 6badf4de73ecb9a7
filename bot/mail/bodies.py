"""The readable body of a mail: its text (from HTML when it has no plain part), and the
part of it that is new, without quoted history, for Slack."""

from __future__ import annotations

import re
from email.message import Message

import html2text

from bot.mail.attachments import Attachment
from bot.mail.mime_tree import decode_text, leaf_parts, part_filename, payload_size

VIEW_LIMIT = 3000
# Attribution lines that introduce quoted history, in the languages our teams meet most.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\b.{0,300}\bwrote:"
    r"|Il\b.{0,300}\bha scritto:"
    r"|Am\b.{0,300}\bschrieb\b.{0,300}:"
    r"|Le\b.{0,300}\ba écrit\s?:"
    r"|El\b.{0,300}\bescribió:"
    r"|Op\b.{0,300}\bschreef\b.{0,40}:"
    r")\s*$",
    re.IGNORECASE,
)
_OUTLOOK_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Messaggio originale|Ursprüngliche Nachricht|Message d'origine)"
    r"\s*-{2,}|_{20,})\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*(?:From|Da|Von|De):\s.+", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(r"^\s*(?:Sent|Inviato|Gesendet|Envoyé|Date|Data):\s.+", re.IGNORECASE)


def read_body(msg: Message, defects: list[str]) -> tuple[str, str | None, list[Attachment]]:
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part, role, content_type, _ in leaf_parts(msg):
        if role == "plain":
            plain = decode_text(part, defects)
        elif role == "html":
            html = decode_text(part, defects)
        else:
            attachments.append(
                Attachment(part_filename(part, len(attachments) + 1), content_type, payload_size(part))
            )
    text = plain or ""
    if not text.strip() and html:
        text = html_to_text(html)
    return text.replace("\r\n", "\n"), html, attachments


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # Slack wraps; hard line breaks would look broken there
    converter.ignore_images = True
    converter.unicode_snob = True
    try:
        return converter.handle(html).strip() + "\n"
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)


def view_text(text: str) -> str:
    """The new part of a message, without quoted history or signature, for Slack."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.rstrip()
        if stripped in ("-- ", "--") or line == "-- ":
            break
        if _ATTRIBUTION.match(stripped[:400]) or _OUTLOOK_SEPARATOR.match(stripped[:200]):
            break
        if (
            _OUTLOOK_FROM.match(stripped[:400])
            and index + 1 < len(lines)
            and any(_OUTLOOK_SENT.match(nxt[:400]) for nxt in lines[index + 1 : index + 4])
            and kept
        ):
            break
        if stripped.startswith(">"):
            continue
        kept.append(stripped)
    view = "\n".join(kept).strip()
    if not view:
        view = text.strip()
    if len(view) > VIEW_LIMIT:
        cut = view.rfind("\n", 0, VIEW_LIMIT)
        view = view[: cut if cut > VIEW_LIMIT // 2 else VIEW_LIMIT].rstrip() + "\n…"
    return view
