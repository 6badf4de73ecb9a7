"""Reading mail headers: decoded as policy.default decodes them, at a fraction of its cost.

Also the readers of the header values the rest of the bot works with: addresses,
dates and message ids, each tolerant of what broken clients and relays write.
"""

from __future__ import annotations

import re
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
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

_MSGID = re.compile(r"<([^<>\s]+)>")
_WS = re.compile(r"\s+")


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
# (`read_headers`).
class _StructurePolicy(Compat32):
    def header_fetch_parse(self, name: str, value: str) -> Any:
        # The parameter reader (`Message.get_param`) takes time quadratic in the
        # header's length: 200,000 parameters took over a minute.
        return super().header_fetch_parse(name, _clip(value, _MemoHeaderRegistry.PARSE_LIMIT))


STRUCTURE_POLICY = _StructurePolicy()


def raw_header_value(value: object) -> str:
    """A header value as written, with undecodable bytes as U+FFFD."""
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
        return raw_header_value(value)
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
            return raw_header_value(value)
    return raw_header_value(str(_FACTORY(name, value)))


def read_headers(msg: Message) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
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
            value = raw_header_value(raw_text)
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
            first[key] = raw_header_value(raw_text)
    return tuple(stored), first


def parse_address(value: str) -> tuple[str, str]:
    """(display name, lower-cased address) of a one-mailbox header; empty strings if unreadable."""
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


def parse_addresses(value: str) -> tuple[str, ...]:
    """The lower-cased addresses of an address-list header (To, Cc), skipping unreadable ones."""
    if not value:
        return ()
    pairs = _plain_mailboxes(value)
    if pairs is None:
        try:
            pairs = getaddresses([value])
        except Exception:
            return ()
    return tuple(a.strip().lower() for _, a in pairs if "@" in a)


def parse_date(value: str) -> datetime | None:
    """A Date header in UTC, or None when it cannot be read as a moment."""
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
