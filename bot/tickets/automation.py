"""Template automation: measuring which templates close tickets, and sending proven ones by themselves.

A template's close rate is the share of tickets where its reply was followed, within
`close_rate_days`, by the ticket being resolved and by no further message from the
customer. Only replies older than that window count, because before then the outcome
is not known; a ticket counts once per template (its latest reply with that template),
so an agent sending the same answer twice does not count double. Automatic mail from
the customer's side (an out-of-office answering our reply) is not "the customer
writing again" and does not spoil the count.

A template with at least `automation_min_uses` uses and a rate of at least
`automation_min_close_rate` may be switched to automatic by a manager, for tickets
that carry a tag or contain a keyword, after hours, in business hours, or always.
Turning it off deletes the row at once; the audit trail keeps both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Event, Message, TemplateAutomation
from bot.tickets.events import record_event
from bot.tickets.template_store import get_template
from bot.tickets.templates import TemplateError
from bot.tickets.urgency import RuleError, TicketFacts, clean_rule, keyword_in

if TYPE_CHECKING:
    from bot.config import Settings

When = Literal["after_hours", "business_hours", "always"]
WHENS: dict[When, str] = {
    "after_hours": "after hours",
    "business_hours": "in business hours",
    "always": "at any time",
}
MatchKind = Literal["tag", "keyword"]
MATCH_KINDS: tuple[MatchKind, ...] = ("tag", "keyword")


class AutomationError(ValueError):
    """The automation cannot be switched on or off; the message is for the manager."""


@dataclass(frozen=True)
class TemplateStats:
    name: str
    uses: int  # tickets whose outcome is known
    closed: int
    rate: float  # closed / uses; 0.0 with no uses


@dataclass(frozen=True)
class Automation:
    name: str
    when: When
    match_kind: MatchKind
    match_pattern: str
    enabled_by: str
    enabled_at: datetime

    def describe(self) -> str:
        match = f"tag {self.match_pattern}" if self.match_kind == "tag" else f"keyword “{self.match_pattern}”"
        return f"{WHENS[self.when]}, for tickets with {match}"


# -- close rates ---------------------------------------------------------------------------


def close_rates(session: Session, now: datetime, *, days: float = 7.0) -> list[TemplateStats]:
    """Close rate per template, most used first."""
    window = timedelta(days=days)
    known_before = now - window
    replies = session.execute(
        select(Message.template_name, Message.ticket_id, Message.created_at).where(
            Message.direction == "out",
            Message.template_name.is_not(None),
            Message.created_at <= known_before,
            # A reply that never reached the customer says nothing about the template.
            Message.delivery_status.is_distinct_from("failed"),
        )
    ).all()
    # Per template and ticket, the latest reply whose outcome is known.
    latest: dict[tuple[str, int], datetime] = {}
    for name, ticket_id, at in replies:
        key = (str(name), int(ticket_id))
        if key not in latest or at > latest[key]:
            latest[key] = at
    ticket_ids = sorted({ticket_id for _, ticket_id in latest})
    resolved: dict[int, list[datetime]] = defaultdict(list)
    customer: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks(ticket_ids, 500):
        for ticket_id, at in session.execute(
            select(Event.ticket_id, Event.at).where(Event.ticket_id.in_(chunk), Event.action == "resolved")
        ):
            resolved[int(ticket_id)].append(at)
        for ticket_id, at in session.execute(
            select(Message.ticket_id, Message.created_at).where(
                Message.ticket_id.in_(chunk), Message.direction == "in", Message.auto_reason.is_(None)
            )
        ):
            customer[int(ticket_id)].append(at)
    uses: dict[str, int] = defaultdict(int)
    closed: dict[str, int] = defaultdict(int)
    for (name, ticket_id), at in latest.items():
        uses[name] += 1
        end = at + window
        was_resolved = any(at < when <= end for when in resolved[ticket_id])
        wrote_again = any(at < when <= end for when in customer[ticket_id])
        if was_resolved and not wrote_again:
            closed[name] += 1
    stats = [TemplateStats(name, uses[name], closed[name], closed[name] / uses[name]) for name in uses]
    return sorted(stats, key=lambda s: (-s.uses, s.name))


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def eligible(stats: TemplateStats, settings: Settings) -> bool:
    return stats.uses >= settings.automation_min_uses and stats.rate >= settings.automation_min_close_rate


# -- switching on and off -------------------------------------------------------------------


def _from_row(row: TemplateAutomation) -> Automation:
    return Automation(
        row.name,
        cast(When, row.when),
        cast(MatchKind, row.match_kind),
        row.match_pattern,
        row.enabled_by,
        row.enabled_at,
    )


def automations(session: Session) -> list[Automation]:
    return [
        _from_row(row)
        for row in session.scalars(select(TemplateAutomation).order_by(TemplateAutomation.name))
    ]


def enable_automation(
    session: Session,
    *,
    name: str,
    when: str,
    match_kind: str,
    pattern: str,
    user: str,
    now: datetime,
    settings: Settings,
) -> Automation:
    """Switch a proven template to automatic (or change how it is); raises AutomationError."""
    name = name.strip()
    try:
        get_template(session, settings.templates_dir, name)
    except TemplateError as exc:
        raise AutomationError(str(exc)) from None
    if when not in WHENS:
        raise AutomationError("Choose when: after hours, business hours or always.")
    if match_kind not in MATCH_KINDS:
        raise AutomationError("Choose what a ticket must have: a tag or a keyword.")
    try:
        _, clean_pattern = clean_rule(match_kind, pattern)
    except RuleError as exc:
        raise AutomationError(str(exc)) from None
    stats = next(
        (s for s in close_rates(session, now, days=settings.close_rate_days) if s.name == name), None
    )
    if stats is None or not eligible(stats, settings):
        uses, rate = (stats.uses, stats.rate) if stats else (0, 0.0)
        raise AutomationError(
            f"{name} has {uses} uses with a close rate of {rate:.0%}; automation needs at least "
            f"{settings.automation_min_uses} uses and {settings.automation_min_close_rate:.0%}."
        )
    row = session.get(TemplateAutomation, name, with_for_update=True)
    if row is None:
        row = TemplateAutomation(name=name)
        session.add(row)
    row.when, row.match_kind, row.match_pattern = when, match_kind, clean_pattern
    row.enabled_by, row.enabled_at = user, now
    session.flush()
    record_event(
        session,
        ticket_id=None,
        actor=user,
        action="automation_enabled",
        at=now,
        template=name,
        when=when,
        match_kind=match_kind,
        match_pattern=clean_pattern,
        uses=stats.uses,
        close_rate=round(stats.rate, 4),
    )
    return _from_row(row)


def disable_automation(session: Session, *, name: str, user: str, now: datetime) -> Automation:
    row = session.get(TemplateAutomation, name.strip(), with_for_update=True)
    if row is None:
        raise AutomationError(f"{name} is not automated.")
    gone = _from_row(row)
    session.delete(row)
    session.flush()
    record_event(
        session, ticket_id=None, actor=user, action="automation_disabled", at=now, template=gone.name
    )
    return gone


# -- which automation answers a ticket ------------------------------------------------------------


def matches(automation: Automation, facts: TicketFacts, *, after_hours: bool) -> bool:
    if automation.when == "after_hours" and not after_hours:
        return False
    if automation.when == "business_hours" and after_hours:
        return False
    if automation.match_kind == "tag":
        return automation.match_pattern in {t.lower() for t in facts.tags}
    return keyword_in(automation.match_pattern, facts.subject) or keyword_in(
        automation.match_pattern, facts.text
    )


def matching_automation(
    candidates: Iterable[Automation], facts: TicketFacts, *, after_hours: bool
) -> Automation | None:
    """The automation that answers a ticket, of `automations(session)` (loaded once per batch):
    by name when several match, so the choice is stable."""
    return next((a for a in candidates if matches(a, facts, after_hours=after_hours)), None)
