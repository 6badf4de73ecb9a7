"""Reading customer email: the stdlib `email` package, made to survive what real mail holds.

Mail in the wild is mislabelled (latin-1 sent as "utf-8"), names charsets nobody
knows, folds headers wrongly and nests MIME oddly. Parsing is therefore lenient:
anything we can read is read, each oddity is kept as a defect string, and only
input with no message structure at all is refused (`MalformedEmailError`), so the
caller can store it raw and flag it instead of dropping it.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from email._policybase import Compat32
from email.headerregistry import (
    AddressHeader,
    BaseHeader,
    DateHeader,
    HeaderRegistry,
    MessageIDHeader,
    UnstructuredHeader,
)
from email.message import Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

import html2text

VIEW_LIMIT = 3000
_MSGID = re.compile(r"<([^<>\s]+)>")
_TOKEN = re.compile(r"\[#(\d{1,9})\]")
_WS = re.compile(r"\s+")
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
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")


class MalformedEmailError(ValueError):
    """The bytes hold no readable message; store them raw and flag the ticket."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int


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


def normalise_message_id(value: str | None) -> str | None:
    if not value:
        return None
    found = _MSGID.search(value)
    cleaned = found.group(1) if found else _WS.sub("", value).strip("<>")
    return cleaned or None


def message_ids(value: str | None) -> tuple[str, ...]:
    """All ids in a References/In-Reply-To value, tolerating missing brackets and junk."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found:
        found = [token.strip("<>,;") for token in value.split() if "@" in token]
    seen: dict[str, None] = {}
    for msgid in found:
        if msgid:
            seen.setdefault(msgid, None)
    return tuple(seen)


def ticket_token(subject: str) -> int | None:
    found = _TOKEN.search(subject or "")
    return int(found.group(1)) if found else None


def parse_email(raw: bytes, own_addresses: Iterable[str] = ()) -> ParsedEmail:
    if not raw or not raw.strip():
        raise MalformedEmailError("empty message")
    try:
        msg = BytesParser(policy=_POLICY).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is meant not to raise; be sure anyway
        raise MalformedEmailError(f"unparseable: {type(exc).__name__}: {exc}") from None
    headers, first = _read_headers(msg)
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
    from_name, from_address = _address(header("from"))
    subject = _WS.sub(" ", header("subject")).strip()
    message_id = normalise_message_id(header("message-id"))
    in_reply_to = normalise_message_id(header("in-reply-to"))
    references = message_ids(header("references"))

    text, html, attachments = _body(msg, defects)
    view = view_text(text)
    own = {a.strip().lower() for a in own_addresses if a}
    parsed = ParsedEmail(
        message_id=message_id,
        dedupe_key=message_id or _content_hash(first, raw),
        subject=subject,
        from_name=from_name,
        from_address=from_address,
        to=_addresses(header("to")),
        cc=_addresses(header("cc")),
        reply_to=(_address(header("reply-to"))[1] or None),
        date=_date(header("date")),
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


def _storable_text(text: str) -> str:
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


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, tuple):
        return tuple(_storable(item) for item in value)
    if isinstance(value, Attachment):
        return replace(value, filename=_storable_text(value.filename))
    return value


# -- headers -------------------------------------------------------------------
#
# What we store and read is exactly what policy.default makes of each header (its
# str()), but policy.default is slow at it: its registry builds a new class for every
# header it parses, and the parse itself costs tens of microseconds to milliseconds.
# So every header is decoded once per message, repeated values (Content-Type,
# MIME-Version, the same To) are parsed once per process, and the two kinds whose
# result can be had without the parser (plain text, dates) skip it. A test checks
# the results against policy.default.


class _MemoHeaderRegistry(HeaderRegistry):
    """policy.default's header factory, giving the same headers for less work."""

    _MEMO_LIMIT = 4096
    _MEMO_VALUE_LIMIT = 1000  # long values are rarely repeated; keep them out of memory
    # policy.default's structured parsers cost tens of microseconds per character, and
    # grow faster than the input on long address lists (4,000 encoded-word addresses:
    # 9 s, 8,000: 26 s), so a hostile header of a few megabytes would stall the mailbox
    # for hours. A longer value is read from its start only; the raw source keeps it all.
    PARSE_LIMIT = 16 * 1024
    # A message reads its Content-Type many times (the parser, charset, filename…):
    # the latest long values are kept too, so each is parsed once.
    _LONG_MEMO_LIMIT = 8

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._memo: dict[tuple[str, str], BaseHeader] = {}
        self._long_memo: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: str) -> BaseHeader:
        if len(value) > self._MEMO_VALUE_LIMIT:
            key = (name, _clip(value, self.PARSE_LIMIT))
            header = self._long_memo.get(key)
            if header is None:
                header = self[name](*key)
                if len(self._long_memo) >= self._LONG_MEMO_LIMIT:
                    self._long_memo.clear()
                self._long_memo[key] = header
            return header
        key = (name, value)
        header = self._memo.get(key)
        if header is None:
            header = self[name](name, value)
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = header
        return header

    def kind(self, name: str) -> type:
        return self.registry.get(name.lower(), self.default_class)


def _clip(value: str, limit: int) -> str:
    """The start of a long header value, cut after a whole list item when one ends late enough."""
    if len(value) <= limit:
        return value
    clipped = value[:limit]
    cut = max(clipped.rfind(","), clipped.rfind(";"))
    return clipped[:cut] if cut > limit // 2 else clipped


_FACTORY = _MemoHeaderRegistry()


# The MIME structure is read with compat32, whose parts read their own Content-Type and
# parameters with plain string splitting. Under policy.default every part's headers go
# through the structured parsers above, at about a millisecond per parameter: 1,000
# parts with long Content-Types (under 1 MB of mail) took a minute, a hostile 25 MB
# mail hours. The headers we store and read are still decoded as policy.default does
# (`_read_headers`).
class _StructurePolicy(Compat32):
    def header_fetch_parse(self, name: str, value: str) -> Any:
        # The parameter reader (`Message.get_param`) takes time quadratic in the
        # header's length: 200,000 parameters took over a minute.
        return super().header_fetch_parse(name, _clip(value, _MemoHeaderRegistry.PARSE_LIMIT))


_POLICY = _StructurePolicy()


def _raw_header_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# The plainest forms of addresses and message ids, for which policy.default's result
# is known without running its parser: RFC 5322 dot-atoms, atom phrases with single
# spaces, quoted names without escapes. Anything else goes through the parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_QTEXT = r"[!#-\[\]-~]+"
_SIMPLE_MSGID = re.compile(rf"<{_ADDR_SPEC}>")
_SIMPLE_MAILBOX = re.compile(
    rf'(?:(?P<atoms>{_ATOM}(?: {_ATOM})*) |"(?P<quoted>{_QTEXT}(?: {_QTEXT})*)" ?)?<(?P<angle>{_ADDR_SPEC})>'
    rf"|(?P<bare>{_ADDR_SPEC})"
)
_SPECIALS = frozenset('()<>@,:;.\\"[]')


def _plain_mailboxes(value: str) -> list[tuple[str, str]] | None:
    """(display name, address) of each mailbox in a list of plain ones, or None if the
    value holds anything else."""
    if "=?" in value or not value.isascii():
        return None
    mailboxes: list[tuple[str, str]] = []
    position, end = 0, len(value)
    while True:
        while position < end and value[position] == " ":
            position += 1
        found = _SIMPLE_MAILBOX.match(value, position)
        if found is None:
            return None
        if found["bare"]:
            mailboxes.append(("", found["bare"]))
        else:
            mailboxes.append((found["atoms"] or found["quoted"] or "", found["angle"]))
        position = found.end()
        while position < end and value[position] == " ":
            position += 1
        if position == end:
            return mailboxes
        if value[position] != ",":
            return None
        position += 1


def _simple_address_list(value: str) -> str | None:
    """AddressHeader's rendering of a list of plain mailboxes, or None if it is not one."""
    mailboxes = _plain_mailboxes(value)
    if mailboxes is None:
        return None
    rendered: list[str] = []
    for name, address in mailboxes:
        if not _SPECIALS.isdisjoint(name):
            name = f'"{name}"'
        rendered.append(f"{name} <{address}>" if name else address)
    return ", ".join(rendered)


def _decoded(name: str, value: str) -> str:
    """str(policy.default.header_factory(name, value)), made safe to store."""
    kind = _FACTORY.kind(name)
    plain = "=?" not in value
    if plain and issubclass(kind, UnstructuredHeader):
        # Without an encoded word the unstructured parser only splits the text into
        # runs and whitespace, which join back into the value unchanged.
        return _raw_header_value(value)
    if plain and issubclass(kind, MessageIDHeader) and _SIMPLE_MSGID.fullmatch(value):
        return value
    if plain and issubclass(kind, AddressHeader):
        simple = _simple_address_list(value)
        if simple is not None:
            return simple
    if issubclass(kind, DateHeader):
        # DateHeader.parse's result, without the parse tree it builds for folding.
        if not value:
            return ""
        try:
            return format_datetime(parsedate_to_datetime(value))
        except ValueError:
            return _raw_header_value(value)
    return _raw_header_value(str(_FACTORY(name, value)))


def _read_headers(msg: Message) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """Every header decoded (to store), and the first of each name unfolded (to read).

    A header that policy.default cannot parse is kept as written: it must never
    stop the mail from being read.
    """
    stored: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for name, raw_value in msg.raw_items():
        name = str(name)
        raw_text = raw_value if isinstance(raw_value, str) else str(raw_value)
        try:
            value = _decoded(name, raw_text)
        except Exception:
            value = _raw_header_value(raw_text)
        stored.append((name, value))
        key = name.lower()
        if key in first:
            continue
        # Reading a header unfolds it first (policy.header_fetch_parse); storing does not.
        unfolded = raw_text.replace("\r", "").replace("\n", "")
        if unfolded == raw_text:
            first[key] = value
            continue
        try:
            first[key] = _decoded(name, unfolded)
        except Exception:
            first[key] = _raw_header_value(raw_text)
    return tuple(stored), first


def _address(value: str) -> tuple[str, str]:
    if not value:
        return "", ""
    plain = _plain_mailboxes(value)
    if plain is not None and len(plain) == 1:
        name, address = plain[0]  # what parseaddr gives for it, without its tokenizer
    else:
        try:
            name, address = parseaddr(value)
        except Exception:
            name, address = "", ""
    address = address.strip().lower()
    if "@" not in address:
        address = ""
    return _WS.sub(" ", name).strip(), address


def _addresses(value: str) -> tuple[str, ...]:
    if not value:
        return ()
    pairs = _plain_mailboxes(value)
    if pairs is None:
        try:
            pairs = getaddresses([value])
        except Exception:
            return ()
    return tuple(a.strip().lower() for _, a in pairs if "@" in a)


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 5322 "-0000": time zone unknown; UTC is the honest guess
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


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


# -- body ------------------------------------------------------------------------------


def _decode(part: Message, defects: list[str]) -> str:
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


def _filename(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return _WS.sub(" ", _raw_header_value(name)).strip()[:300]
    content_type = part.get_content_type()
    extension = mimetypes.guess_extension(content_type) or ".bin"
    return f"attachment-{index}{extension}"


def _payload_size(part: Message) -> int:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return len(payload)
    raw = part.get_payload()
    return len(raw) if isinstance(raw, str | bytes) else 0


def _walk(part: Message, depth: int = 0) -> Iterable[Message]:
    # An explicit depth bound: hostile mail can nest thousands of multiparts.
    yield part
    if depth > 50 or not part.is_multipart():
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                yield from _walk(child, depth + 1)


def _leaves(msg: Message) -> Iterator[tuple[Message, str, str, str]]:
    """Each leaf part as (part, role, content type, disposition); role is "plain" or "html" for
    the first unnamed text part of each kind (the body), else "attachment".

    One walk for `_body` and `attachment_parts`, so the attachments listed when a mail is
    stored and the bytes read back for an upload are the same parts in the same order.
    """
    plain_seen = html_seen = False
    for part in _walk(msg):
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


def _body(msg: Message, defects: list[str]) -> tuple[str, str | None, list[Attachment]]:
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part, role, content_type, _ in _leaves(msg):
        if role == "plain":
            plain = _decode(part, defects)
        elif role == "html":
            html = _decode(part, defects)
        else:
            attachments.append(
                Attachment(_filename(part, len(attachments) + 1), content_type, _payload_size(part))
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


# -- attachment bytes --------------------------------------------------------------------
#
# The bytes of attachments are not stored apart from the raw source: whoever needs them
# (the upload to Slack) reads them back from `Message.raw` with the walk below, which
# finds the same parts, in the same order, under the same names as `_body` lists them.


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
        msg = BytesParser(policy=_POLICY).parsebytes(raw)
    except Exception:
        return []
    parts: list[AttachmentPart] = []
    for part, role, content_type, disposition in _leaves(msg):
        if role != "attachment":
            continue
        parts.append(
            AttachmentPart(
                filename=_storable_text(_filename(part, len(parts) + 1)),
                content_type=content_type,
                content_id=normalise_message_id(_raw_header_value(part.get("content-id") or "")),
                inline=disposition == "inline",
                data=_payload_bytes(part),
                extension=_extension(part),
            )
        )
    return parts


_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,10})\s*$")


def _extension(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    found = _EXTENSION.search(_raw_header_value(name)[-64:]) if name else None
    return found.group(1) if found else ""


def _payload_bytes(part: Message) -> bytes:
    """The part's decoded bytes; what `_payload_size` measures."""
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
    from urllib.parse import unquote

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


__all__ = [
    "Attachment",
    "AttachmentPart",
    "MalformedEmailError",
    "ParsedEmail",
    "attachment_parts",
    "html_content_ids",
    "html_to_text",
    "image_dimensions",
    "is_decoration",
    "message_ids",
    "normalise_message_id",
    "parse_email",
    "ticket_token",
    "view_text",
]
