"""Finding tickets: `/support search`'s small query language, read and run.

    refund "credit card" from:ada@example.com tag:billing status:open owner:me
    #123 after:2026-01-01 before:2026-02-01

Free words and "quoted phrases" must all match (case-insensitively) somewhere in the
ticket: its subject, the customer's address or name, or the text of a message the
customer sent or we sent (internal notes are not searched). Operators narrow further; the
same operator twice (`status:open status:waiting`) means either. Dates are whole days in
the team's time zone: `after:` includes its day, `before:` excludes its day, so
`after:2026-01-01 before:2026-02-01` is January.

Everything typed is matched literally: values reach the database only as bound parameters,
and LIKE's wildcards (`%`, `_`) and its escape character are escaped, so `100%` finds
"100%", not every ticket.

Case is folded on both sides, in SQL, by the database's `lower()`. SQLite's folds only A–Z,
so a word with other letters is folded there by Python's `str.lower()`, registered on every
SQLite connection (`bot.storage.db`): `é` finds `É` and `σ` finds `Σ` on both databases
(PostgreSQL folds as its database's LC_CTYPE says; any UTF-8 locale folds every script). An
ASCII word keeps SQLite's own `lower()`, which runs in C: a Python call per row would cost
a search over 100,000 subjects about as much again.

Cost: a word is a substring match (`LIKE '%word%'`), which no ordinary index serves, so
each word reads every subject and customer once, and the text of the messages of the
newest BODY_SCAN_TICKETS tickets within the search's dates (the answer says when older
text was left unread; `before:` moves the window back). Without that bound a word that
matches nothing read all 229,000 messages of a 100,000-ticket desk, seconds on either
database; with it the cost stays flat as the desk grows.

No Slack here: plain values in, plain results out (`bot/slack/lists.py` renders them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, exists, false, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction

from bot.storage.db import UNICODE_LOWER
from bot.storage.models import Customer, Message, RotaMember, Tag, Ticket, TicketTag
from bot.tickets.queries import TicketLine, line_of
from bot.tickets.status import STATUSES, TicketStatus
from bot.tickets.workflow import TicketError, normalise_tag

SEARCH_LIMIT = 20
# Each word is one more substring scan; a pasted paragraph is not a search.
MAX_QUERY_CHARS = 300
MAX_TERMS = 12
OPERATORS = ("from", "tag", "status", "owner", "after", "before")
# Messages a customer sees: what they wrote and what we answered (notes stay internal).
SEARCHED_DIRECTIONS = ("in", "out")
LIKE_ESCAPE = "\\"
# Message text is read in this many newest tickets of the search's dates: at ~2.3
# messages a ticket, ~23,000 messages.
BODY_SCAN_TICKETS = 10_000

SEARCH_HELP = (
    "Search with words (all must match, in the subject, the customer or the messages), "
    '`"a phrase"`, `from:ada@example.com`, `tag:billing`, '
    f"`status:{'|'.join(STATUSES)}`, `owner:me` (or `owner:@someone`, `owner:none`), "
    "`#123`, `after:2026-01-01`, `before:2026-02-01`."
)

# Slack's composer turns straight quotes into curly ones on some clients.
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})
# An operator is letters then a colon, so `10:30` and `:name` stay plain words.
_TOKEN = re.compile(
    r'(?P<op>[A-Za-z]+):(?:"(?P<opquoted>[^"]*)"?|(?P<opword>\S*))|"(?P<quoted>[^"]*)"?|(?P<word>\S+)'
)
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)>$")
# An escaped mention's name may hold spaces: <@U123|ada lovelace>.
_NAMED_MENTION = re.compile(r"<@([UW][A-Z0-9]+)\|[^<>]*>")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
# What Slack makes of an address or a link it recognised: <mailto:a@b.com|a@b.com>, <https://x>.
_SLACK_LINK = re.compile(r"<(?![@!#])(?:mailto:)?([^|<>]*)(?:\|([^<>]*))?>")
_NUMBER = re.compile(r"^#([0-9]+)$")
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# Ticket.number is a 32-bit integer; a longer "number" cannot name a ticket.
_MAX_NUMBER_DIGITS = 9


class SearchError(TicketError):
    """A query we cannot run; the message says what is wrong, in words."""


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...] = ()  # free words and phrases, as typed
    senders: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()  # Slack user ids; "" is "nobody"
    owner_names: tuple[str, ...] = ()  # `owner:@ada` as typed, resolved against the roster
    numbers: tuple[int, ...] = ()
    created_from: datetime | None = None  # inclusive, UTC-aware
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class SearchResult:
    lines: tuple[TicketLine, ...]
    more: int  # matches beyond `lines`
    # Message text was read only in tickets created since then (None: in every ticket).
    bodies_since: datetime | None = None


def parse_query(text: str, *, user: str, tz: tzinfo) -> SearchQuery:
    """Read a query; raises SearchError naming what could not be read."""
    _check_storable(text)
    text = _unlink(" ".join(text.split()).translate(_QUOTES))
    if not text:
        raise SearchError(f"Say what to look for. {SEARCH_HELP}")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(
            f"That search is {len(text)} characters long; keep it under {MAX_QUERY_CHARS} "
            "(a few distinctive words find more than a pasted paragraph)."
        )
    found: dict[str, list[Any]] = {key: [] for key in ("words", "from", "tag", "status", "owner", "names")}
    numbers: list[int] = []
    created_from: datetime | None = None
    created_before: datetime | None = None
    terms = 0
    for match in _TOKEN.finditer(text):
        op = match.group("op")
        quoted = match.group("opquoted") if op else match.group("quoted")
        word = match.group("opword") if op else match.group("word")
        value = (quoted if quoted is not None else word or "").strip()
        if op is None and quoted is None and (number := _NUMBER.match(value)):
            numbers.append(_ticket_number(number.group(1)))
        elif op is None:
            if not value:
                continue  # "" searches for nothing
            found["words"].append(value)
        else:
            key = op.lower()
            if key not in OPERATORS:
                raise SearchError(
                    f"I don't know the operator `{op}:`. Put the words in quotes to search for them "
                    f'as text (`"{op}:{value}"`). {SEARCH_HELP}'
                )
            if not value:
                raise SearchError(f"`{key}:` needs a value, like {_EXAMPLES[key]}.")
            if key == "from":
                found["from"].append(value)
            elif key == "tag":
                found["tag"].append(_tag(value))
            elif key == "status":
                found["status"].append(_status(value))
            elif key == "owner":
                owner = _owner(value, user)
                found["owner" if owner is not None else "names"].append(
                    owner if owner is not None else value.lstrip("@")
                )
            elif key == "after":
                start = _day_start(value, key, tz)
                created_from = start if created_from is None else max(created_from, start)
            else:
                start = _day_start(value, key, tz)
                created_before = start if created_before is None else min(created_before, start)
        terms += 1
        if terms > MAX_TERMS:
            raise SearchError(f"Use at most {MAX_TERMS} words and operators in one search.")
    if created_from is not None and created_before is not None and created_from >= created_before:
        raise SearchError("The `after:` day is not before the `before:` day, so nothing can match.")
    query = SearchQuery(
        words=tuple(found["words"]),
        senders=tuple(found["from"]),
        tags=tuple(found["tag"]),
        statuses=tuple(found["status"]),
        owners=tuple(found["owner"]),
        owner_names=tuple(found["names"]),
        numbers=tuple(numbers),
        created_from=created_from,
        created_before=created_before,
    )
    if query == SearchQuery():
        raise SearchError(f"Say what to look for. {SEARCH_HELP}")
    return query


def search_tickets(
    session: Session,
    query: SearchQuery,
    *,
    limit: int = SEARCH_LIMIT,
    body_scan: int = BODY_SCAN_TICKETS,
) -> SearchResult:
    """Matching tickets, newest first, at most `limit`, and how many more there are."""
    bodies_since = _body_window(session, query, body_scan) if query.words else None
    conditions = _conditions(session, query, bodies_since)
    # The count rides along (a window function) rather than a second query repeating the
    # scans: matching is the cost, and both need every match found anyway.
    rows = session.execute(
        select(Ticket, Customer.email, func.count().over())
        .outerjoin(Customer, Ticket.customer_id == Customer.id)
        .where(*conditions)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    ).all()
    lines = tuple(line_of(ticket, email) for ticket, email, _ in rows)
    total = int(rows[0][2]) if rows else 0
    return SearchResult(lines, total - len(lines), bodies_since)


def escape_like(value: str) -> str:
    """`value` as a LIKE pattern matching itself only (with ESCAPE LIKE_ESCAPE)."""
    return (
        value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


# -- reading a query --------------------------------------------------------------------------

_EXAMPLES = {
    "from": "`from:ada@example.com` or `from:example.com`",
    "tag": "`tag:billing`",
    "status": f"`status:{STATUSES[0]}`",
    "owner": "`owner:me` or `owner:@ada`",
    "after": "`after:2026-01-31`",
    "before": "`before:2026-01-31`",
}


def _check_storable(text: str) -> None:
    # PostgreSQL refuses NUL in text parameters and neither database takes unpaired
    # surrogates; SQLite would take a NUL and then match differently. Say so, alike on both.
    if "\x00" in text:
        raise SearchError("The search contains a NUL character (\\0), which no ticket can hold; remove it.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SearchError("The search contains characters that are not valid text; retype it.") from None


def _unlink(text: str) -> str:
    text = _NAMED_MENTION.sub(lambda m: f"<@{m.group(1)}>", text)
    return _SLACK_LINK.sub(lambda m: m.group(2) if m.group(2) else m.group(1), text)


def _ticket_number(digits: str) -> int:
    if len(digits.lstrip("0")) > _MAX_NUMBER_DIGITS:
        raise SearchError(f"#{digits} is not a ticket number: they have at most {_MAX_NUMBER_DIGITS} digits.")
    return int(digits)


def _tag(value: str) -> str:
    try:
        return normalise_tag(value)
    except TicketError as exc:
        raise SearchError(f"`tag:` {exc}") from None


def _status(value: str) -> str:
    status = value.lower()
    if status not in STATUSES:
        raise SearchError(f"`status:` is one of {', '.join(STATUSES)}; `{value}` is not.")
    return status


def _owner(value: str, user: str) -> str | None:
    """A user id, "" for nobody, or None when `value` is a name to look up."""
    lowered = value.lower()
    if lowered == "me":
        return user
    if lowered in ("none", "nobody"):
        return ""
    if mention := _MENTION.match(value):
        return mention.group(1)
    if _USER_ID.match(value.lstrip("@")):
        return value.lstrip("@")
    return None


def _day_start(value: str, key: str, tz: tzinfo) -> datetime:
    try:
        if not _ISO_DAY.match(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError):
        raise SearchError(
            f"`{key}:{value}` is not a date I can read: write it as {_EXAMPLES[key]}."
        ) from None


# -- running it -------------------------------------------------------------------------------


class _unicode_lower(GenericFunction[str]):
    """lower() that folds every script: PostgreSQL's own, Python's on SQLite."""

    type = String()
    inherit_cache = True


@compiles(_unicode_lower)
def _lower_elsewhere(element: _unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_unicode_lower, "sqlite")
def _lower_on_sqlite(element: _unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{UNICODE_LOWER}({compiler.process(element.clauses, **kw)})"


def _contains(column: Any, needle: str) -> ColumnElement[bool]:
    # Folded on both sides, in SQL, so both sides fold alike whatever the database folds.
    pattern = literal(f"%{escape_like(needle)}%", String)
    lower = func.lower if needle.isascii() else _unicode_lower
    return lower(column).like(lower(pattern), escape=LIKE_ESCAPE)


def _body_window(session: Session, query: SearchQuery, size: int) -> datetime | None:
    """When the newest `size` tickets of the query's dates begin; None when there are fewer."""
    newest = select(Ticket.created_at)
    if query.created_from is not None:
        newest = newest.where(Ticket.created_at >= query.created_from)
    if query.created_before is not None:
        newest = newest.where(Ticket.created_at < query.created_before)
    return session.scalar(newest.order_by(Ticket.created_at.desc()).offset(size - 1).limit(1))


def _conditions(
    session: Session, query: SearchQuery, bodies_since: datetime | None = None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    # Customers and messages are matched once each (uncorrelated IN: a hash or a temporary
    # index), not once per ticket: that keeps a word that matches nothing to one pass over each.
    for word in query.words:
        in_body = [Message.direction.in_(SEARCHED_DIRECTIONS), _contains(Message.text, word)]
        # A ticket's messages are never older than it, so the window and `after:` bound the
        # scan through (direction, created_at): only those messages are read.
        since = max((t for t in (bodies_since, query.created_from) if t is not None), default=None)
        if since is not None:
            in_body.append(Message.created_at >= since)
        conditions.append(
            or_(
                _contains(Ticket.subject, word),
                Ticket.customer_id.in_(_customers_like(word)),
                Ticket.id.in_(select(Message.ticket_id).where(*in_body)),
            )
        )
    for sender in query.senders:
        conditions.append(Ticket.customer_id.in_(_customers_like(sender)))
    for tag in query.tags:
        conditions.append(
            exists(
                select(TicketTag.ticket_id)
                .join(Tag, Tag.id == TicketTag.tag_id)
                .where(TicketTag.ticket_id == Ticket.id, Tag.name == tag)
            )
        )
    if query.statuses:
        conditions.append(Ticket.status.in_(query.statuses))
    elif not query.numbers:
        # Spam is set aside, as a mail client's search leaves its spam folder out; `status:spam`
        # or the ticket's number still finds it.
        conditions.append(Ticket.status != TicketStatus.SPAM)
    owners = [*query.owners, *(_roster_id(session, name) for name in query.owner_names)]
    if owners:
        ids = [owner for owner in owners if owner]
        either = [Ticket.owner.in_(ids)] if ids else []
        if "" in owners:
            either.append(Ticket.owner.is_(None))
        conditions.append(or_(*either) if either else false())
    if query.numbers:
        conditions.append(Ticket.number.in_(query.numbers))
    if query.created_from is not None:
        conditions.append(Ticket.created_at >= query.created_from)
    if query.created_before is not None:
        conditions.append(Ticket.created_at < query.created_before)
    return [and_(*conditions)] if conditions else []


def _customers_like(text: str) -> Select[tuple[int]]:
    return select(Customer.id).where(or_(_contains(Customer.email, text), _contains(Customer.name, text)))


def _roster_id(session: Session, name: str) -> str:
    """`owner:@ada`: the one person on the roster called Ada (full name, or its first word).

    /support does not ask Slack to escape mentions, so a name is what arrives; the roster
    holds each staff member's Slack name.
    """
    wanted = name.strip().lower()
    people = session.execute(select(RotaMember.user_id, RotaMember.name)).all()
    matches = sorted(
        {
            user_id
            for user_id, full in people
            if full.lower() == wanted or (full.split() or [""])[0].lower() == wanted
        }
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SearchError(
            f"I don't know who `@{name}` is. Use `owner:me`, `owner:none`, or a name as Slack shows it."
        )
    raise SearchError(f"Several people are called `@{name}`; write their full name in quotes.")
