"""Urgency rules: which tickets are urgent enough to wake someone after hours.

Rules are kept in order; the first rule that matches a ticket decides, so an
exception ("noreply@vip.example.com is not urgent") goes above the rule it carves
out of ("vip.example.com is urgent"). No rule matching means not urgent: waking
someone is the costly mistake, so it has to be asked for.

Kinds:

- `keyword`: a word or phrase in the subject or the customer's text, compared
  case-insensitively and as whole words, in any script ("urgente", "dringend",
  "срочно"). "outage" does not match "outages" (a rule should say what it means);
  a trailing `*` asks for the prefix, so "outage*" matches both.
- `sender`: the sender's exact address.
- `domain`: the sender's domain or any subdomain of it.
- `tag`: the ticket carries the tag.

The first time the table is empty, rules are read from `URGENCY_RULES_FILE` (TOML,
`[[rule]]` tables); after that the table is the truth and managers edit it from Slack.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from bot.storage.models import Event, UrgencyRule
from bot.tickets.events import SYSTEM, record_event

RuleKind = Literal["keyword", "sender", "domain", "tag"]
RULE_KINDS: tuple[RuleKind, ...] = ("keyword", "sender", "domain", "tag")
SEEDED_EVENT = "urgency_rules_seeded"

_PATTERN_LIMIT = 320  # UrgencyRule.pattern
_NOTE_LIMIT = 200
_DOMAIN = re.compile(r"^(?=.{1,253}$)[^\s@.][^\s@]*\.[^\s@]+$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
# Mail can be long; urgency words are near the top, and the regex must stay cheap.
_TEXT_SCANNED = 20_000


class RuleError(ValueError):
    """A rule cannot be added, moved or read; the message is for the person who tried."""


@dataclass(frozen=True)
class Rule:
    id: int
    position: int
    kind: RuleKind
    pattern: str
    urgent: bool
    note: str = ""

    def describe(self) -> str:
        """The rule in words, as lists and reasons show it."""
        what = {
            "keyword": f"keyword “{self.pattern}”",
            "sender": f"sender {self.pattern}",
            "domain": f"domain {self.pattern}",
            "tag": f"tag {self.pattern}",
        }[self.kind]
        return f"{what} → {'urgent' if self.urgent else 'not urgent'}"


@dataclass(frozen=True)
class TicketFacts:
    """What rules look at, read from the ticket and its first email."""

    subject: str
    text: str
    sender: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    urgent: bool
    reason: str  # the rule that decided, in words; "" when no rule matched
    rule_id: int | None = None


# -- matching -----------------------------------------------------------------------


def _fold(text: str) -> str:
    # NFKC first, so full-width letters and ligatures compare as what they read as.
    return unicodedata.normalize("NFKC", text).casefold()


@lru_cache(maxsize=512)
def keyword_regex(pattern: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive, whitespace-tolerant regex for a keyword or phrase."""
    folded = _fold(pattern).strip()
    prefix = folded.endswith("*")
    words = folded.rstrip("*").split()
    if not words:
        raise RuleError("A keyword needs at least one letter or digit.")
    body = r"\s+".join(re.escape(word) for word in words)
    # \w is Unicode-aware for str patterns, so word edges work for Cyrillic or Greek too.
    tail = r"\w*" if prefix else ""
    return re.compile(rf"(?<!\w){body}{tail}(?!\w)")


def keyword_in(pattern: str, text: str) -> bool:
    return keyword_regex(pattern).search(_fold(text[:_TEXT_SCANNED])) is not None


def _where_keyword(pattern: str, facts: TicketFacts) -> str | None:
    if keyword_in(pattern, facts.subject):
        return "in the subject"
    if keyword_in(pattern, facts.text):
        return "in the message"
    return None


def match_rule(rule: Rule, facts: TicketFacts) -> str | None:
    """Why `rule` matches these facts, in words, or None."""
    sender = facts.sender.strip().lower()
    pattern = rule.pattern.strip().lower()
    if rule.kind == "keyword":
        where = _where_keyword(rule.pattern, facts)
        return f"keyword “{rule.pattern}” {where}" if where else None
    if rule.kind == "sender":
        return f"sender {sender}" if sender and sender == pattern else None
    if rule.kind == "domain":
        domain = sender.rsplit("@", 1)[1] if "@" in sender else ""
        if domain and (domain == pattern or domain.endswith("." + pattern)):
            return f"sender domain {pattern}" + (f" ({sender})" if domain != pattern else "")
        return None
    if rule.kind == "tag":
        return f"tag {pattern}" if pattern in {t.lower() for t in facts.tags} else None
    return None


def evaluate(rules: Iterable[Rule], facts: TicketFacts) -> Verdict:
    """The first matching rule decides; nothing matching is not urgent."""
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        why = match_rule(rule, facts)
        if why is not None:
            return Verdict(urgent=rule.urgent, reason=why, rule_id=rule.id)
    return Verdict(urgent=False, reason="")


# -- checking what people type --------------------------------------------------------


def clean_rule(kind: str, pattern: str) -> tuple[RuleKind, str]:
    """Validate and normalise a rule; raises RuleError with a sentence for the manager."""
    kind = kind.strip().lower()
    if kind not in RULE_KINDS:
        raise RuleError(f"{kind!r} is not a kind of rule; use {', '.join(RULE_KINDS)}.")
    pattern = " ".join(pattern.split())
    if not pattern:
        raise RuleError(f"Say what the {kind} rule matches.")
    if len(pattern) > _PATTERN_LIMIT:
        raise RuleError(f"Keep the pattern under {_PATTERN_LIMIT} characters.")
    if kind == "keyword":
        keyword_regex(pattern)
    elif kind == "sender":
        # Slack may hand us a linked address: <mailto:a@b.com|a@b.com>.
        pattern = pattern.strip("<>").split("|")[-1].removeprefix("mailto:").lower()
        if "@" not in pattern or " " in pattern or pattern.startswith("@") or pattern.endswith("@"):
            raise RuleError(f"{pattern!r} is not an email address.")
    elif kind == "domain":
        pattern = pattern.strip("<>").split("|")[-1].lower()
        pattern = pattern.removeprefix("https://").removeprefix("http://").lstrip("@").removeprefix("*.")
        if not _DOMAIN.match(pattern):
            raise RuleError(f"{pattern!r} is not a domain like vip.example.com.")
    else:
        pattern = re.sub(r"\s+", "-", pattern.lower().lstrip("#"))
        if not _TAG.match(pattern):
            raise RuleError(f"{pattern!r} is not a tag: up to 40 lowercase letters, digits, '-' or '_'.")
    return cast(RuleKind, kind), pattern


# -- storage --------------------------------------------------------------------------


def _from_row(row: UrgencyRule) -> Rule:
    return Rule(row.id, row.position, cast(RuleKind, row.kind), row.pattern, row.urgent, row.note)


def load_rules(session: Session) -> list[Rule]:
    rows = session.scalars(select(UrgencyRule).order_by(UrgencyRule.position, UrgencyRule.id))
    return [_from_row(row) for row in rows]


def _rows_for_update(session: Session) -> list[UrgencyRule]:
    # Locked, so two managers reordering at once take turns instead of interleaving positions.
    return list(
        session.scalars(select(UrgencyRule).order_by(UrgencyRule.position, UrgencyRule.id).with_for_update())
    )


def _renumber(rows: Sequence[UrgencyRule]) -> None:
    for index, row in enumerate(rows, start=1):
        if row.position != index:
            row.position = index


def add_rule(
    session: Session,
    *,
    kind: str,
    pattern: str,
    urgent: bool,
    user: str,
    now: datetime,
    note: str = "",
    position: int | None = None,
) -> Rule:
    """Add a rule at the end (or at `position`, pushing the rest down)."""
    clean_kind, clean_pattern = clean_rule(kind, pattern)
    rows = _rows_for_update(session)
    _renumber(rows)
    for row in rows:
        if row.kind == clean_kind and row.pattern == clean_pattern:
            raise RuleError(f"Rule {row.position} already matches {clean_kind} {clean_pattern}.")
    at = len(rows) + 1 if position is None else max(1, min(position, len(rows) + 1))
    for row in rows:
        if row.position >= at:
            row.position += 1
    row = UrgencyRule(
        position=at,
        kind=clean_kind,
        pattern=clean_pattern,
        urgent=urgent,
        note=note[:_NOTE_LIMIT],
        created_by=user,
        created_at=now,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        ticket_id=None,
        actor=user,
        action="urgency_rule_added",
        at=now,
        position=at,
        kind=clean_kind,
        pattern=clean_pattern,
        urgent=urgent,
    )
    return _from_row(row)


def remove_rule(session: Session, *, position: int, user: str, now: datetime) -> Rule:
    rows = _rows_for_update(session)
    _renumber(rows)
    if not 1 <= position <= len(rows):
        raise RuleError(_no_rule(position, len(rows)))
    gone = rows[position - 1]
    removed = _from_row(gone)
    session.delete(gone)
    _renumber([r for r in rows if r is not gone])
    session.flush()
    record_event(
        session,
        ticket_id=None,
        actor=user,
        action="urgency_rule_removed",
        at=now,
        position=position,
        kind=removed.kind,
        pattern=removed.pattern,
        urgent=removed.urgent,
    )
    return removed


def move_rule(session: Session, *, from_position: int, to_position: int, user: str, now: datetime) -> Rule:
    rows = _rows_for_update(session)
    _renumber(rows)
    for position in (from_position, to_position):
        if not 1 <= position <= len(rows):
            raise RuleError(_no_rule(position, len(rows)))
    moving = rows.pop(from_position - 1)
    rows.insert(to_position - 1, moving)
    _renumber(rows)
    session.flush()
    record_event(
        session,
        ticket_id=None,
        actor=user,
        action="urgency_rule_moved",
        at=now,
        kind=moving.kind,
        pattern=moving.pattern,
        from_position=from_position,
        to_position=to_position,
    )
    return _from_row(moving)


def _no_rule(position: int, count: int) -> str:
    if count == 0:
        return "There are no urgency rules yet."
    return f"There is no rule {position}; the rules are numbered 1 to {count}."


# -- the rules file ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    kind: RuleKind
    pattern: str
    urgent: bool
    note: str = ""


def parse_rules_file(source: str, *, name: str = "URGENCY_RULES_FILE") -> list[RuleSpec]:
    """`[[rule]]` tables with kind, pattern, urgent (default true) and an optional note."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{name} is not valid TOML: {exc}") from None
    raw = data.get("rule", [])
    if not isinstance(raw, list):
        raise RuleError(f"{name} must hold [[rule]] tables.")
    specs: list[RuleSpec] = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise RuleError(f"Rule {index} in {name} must be a table.")
        urgent = entry.get("urgent", True)
        if not isinstance(urgent, bool):
            raise RuleError(f"Rule {index} in {name}: urgent must be true or false.")
        try:
            kind, pattern = clean_rule(str(entry.get("kind", "")), str(entry.get("pattern", "")))
        except RuleError as exc:
            raise RuleError(f"Rule {index} in {name}: {exc}") from None
        specs.append(RuleSpec(kind, pattern, urgent, str(entry.get("note", ""))[:_NOTE_LIMIT]))
    return specs


def seed_rules(session: Session, path: Path | None, *, now: datetime) -> int:
    """Load the rules file into an empty table, once in the table's life.

    Once seeded (or once a manager has written rules), the file is not read again:
    a manager who removes every rule must not see them come back at the next start.
    """
    if path is None:
        return 0
    if session.scalar(select(func.count()).select_from(UrgencyRule)):
        return 0
    if session.scalar(select(exists().where(Event.action.in_([SEEDED_EVENT, "urgency_rule_removed"])))):
        return 0
    specs = parse_rules_file(path.read_text(encoding="utf-8"), name=str(path))
    for position, spec in enumerate(specs, start=1):
        session.add(
            UrgencyRule(
                position=position,
                kind=spec.kind,
                pattern=spec.pattern,
                urgent=spec.urgent,
                note=spec.note,
                created_by=SYSTEM,
                created_at=now,
            )
        )
    record_event(
        session, ticket_id=None, actor=SYSTEM, action=SEEDED_EVENT, at=now, file=str(path), count=len(specs)
    )
    session.flush()
    return len(specs)
