"""Triage: what happens to a new ticket the moment it arrives, once.

For each new ticket, in one transaction with its `TicketTriage` row (whose primary key
makes triage happen once, whatever replicas or restarts do):

1. after hours or not: by when the ticket arrived, on the team's calendar;
2. urgent or not: the urgency rules (bot/tickets/urgency.py), the reason kept for the card;
3. then:
   - a template automation that matches answers the ticket with its template (and that
     answer stands in for the acknowledgement: the customer gets one automatic mail);
   - otherwise, urgent after hours: the on-call person is paged (rota/paging.py);
   - not urgent after hours: the automatic acknowledgement (bot/tickets/autoack.py).

Paging and the acknowledgement happen only while the team is still away: a ticket that
arrived at night but is triaged after opening (the bot was down) is on the team's
screens already, and an email promising an answer "at 09:00" at 10:00 would be wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session, selectinload

from bot.outbox.queue import enqueue_ticket_refresh, slack_lane
from bot.storage.models import Message, Ticket, TicketTriage
from bot.tickets.autoack import AutoReplyOutcome, acknowledge_after_hours, send_automatic_reply
from bot.tickets.automation import Automation, automations, matching_automation
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.status import TicketStatus
from bot.tickets.urgency import TicketFacts, Verdict, evaluate, load_rules, seed_rules

if TYPE_CHECKING:
    from bot.business_hours import BusinessCalendar
    from bot.config import Settings

log = logging.getLogger(__name__)

# Older tickets are left alone: triage is about arrival, and a ticket from last week
# (before this feature, or restored from a backup) must not be paged or answered now.
TRIAGE_WINDOW = timedelta(days=2)


class Pager(Protocol):
    """Starts paging the person on call for an urgent ticket, in the caller's transaction.

    Paging belongs to the rota, which imports ticket code, not the reverse: the
    composition root hands triage this (bot/slack/paging.py: `pager`). False when
    nobody was paged (a page already runs for the ticket)."""

    def __call__(self, session: Session, ticket_id: int, reason: str, now: datetime) -> bool: ...


@dataclass(frozen=True)
class TriageResult:
    ticket_id: int
    number: int
    after_hours: bool
    urgent: bool
    reason: str
    paged: bool = False
    auto_reply: str | None = None  # the template sent automatically
    withheld: str = ""  # why no automatic reply went out, when one was due


def ticket_facts(session: Session, tickets: Sequence[Ticket]) -> dict[int, TicketFacts]:
    """What urgency rules and automations look at, for a batch of tickets in one query:
    the subject, the sender and the first message the customer wrote."""
    first_ids = (
        select(func.min(Message.id))
        .where(Message.ticket_id.in_([t.id for t in tickets]), Message.direction == "in")
        .group_by(Message.ticket_id)
    )
    firsts = {m.ticket_id: m for m in session.scalars(select(Message).where(Message.id.in_(first_ids)))}
    facts = {}
    for ticket in tickets:
        first = firsts.get(ticket.id)
        sender = (ticket.customer.email if ticket.customer else "") or (first.from_address if first else "")
        facts[ticket.id] = TicketFacts(
            subject=ticket.subject or (first.subject if first else ""),
            text=(first.view_text or first.text) if first else "",
            sender=sender,
            tags=tuple(tag.name for tag in ticket.tags),
        )
    return facts


def _untriaged(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (Ticket.created_at >= now - TRIAGE_WINDOW, ~exists().where(TicketTriage.ticket_id == Ticket.id))


def has_untriaged(session: Session, now: datetime) -> bool:
    """Whether `triage_pending` would find work: a read, cheap enough to ask after every commit."""
    return session.scalar(select(Ticket.id).where(*_untriaged(now)).limit(1)) is not None


def triage_pending(
    session: Session,
    settings: Settings,
    calendar: BusinessCalendar,
    now: datetime,
    *,
    page: Pager,
    limit: int = 200,
) -> list[TriageResult]:
    """Triage tickets that arrived in the last two days and were never triaged, oldest first."""
    seed_rules(session, settings.urgency_rules_file, now=now)
    tickets = session.scalars(
        select(Ticket)
        .where(*_untriaged(now))
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit)
        .options(selectinload(Ticket.tags), selectinload(Ticket.customer))
        # Two replicas (or a leader hand-over) never take the same ticket: the second skips it.
        .with_for_update(of=Ticket, skip_locked=True)
    ).all()
    if not tickets:
        return []
    # Everything a ticket's triage reads is loaded once per batch, and its rows are
    # written together at the end: a backlog is triaged in a few statements per batch,
    # not a few per ticket, so it holds SQLite's single writer only briefly.
    rules = load_rules(session)
    candidates = automations(session)
    facts = ticket_facts(session, tickets)
    results = [
        _triage(
            session,
            settings,
            calendar,
            ticket,
            facts[ticket.id],
            evaluate(rules, facts[ticket.id]),
            matching_automation(
                candidates, facts[ticket.id], after_hours=not calendar.is_open(ticket.created_at)
            ),
            page,
            now,
        )
        for ticket in tickets
    ]
    session.flush()
    return results


def _triage(
    session: Session,
    settings: Settings,
    calendar: BusinessCalendar,
    ticket: Ticket,
    facts: TicketFacts,
    verdict: Verdict,
    automation: Automation | None,
    page: Pager,
    now: datetime,
) -> TriageResult:
    after_hours = not calendar.is_open(ticket.created_at)
    still_away = not calendar.is_open(now)
    paged = False
    outcome: AutoReplyOutcome | None = None
    if ticket.status == TicketStatus.SPAM:
        # Mail from a blocked sender (or marked before triage got to it): nobody's work, so
        # no page, no automatic answer. Triaged all the same, so it is looked at once.
        return _set_aside(session, ticket, after_hours, now)

    if automation is not None:
        outcome = send_automatic_reply(
            session, ticket=ticket, template_name=automation.name, kind="template", settings=settings, now=now
        )
    if verdict.urgent and after_hours and still_away:
        paged = page(session, ticket.id, verdict.reason, now)
    elif after_hours and still_away and settings.auto_ack and (outcome is None or not outcome.sent):
        outcome = acknowledge_after_hours(
            session, ticket=ticket, settings=settings, calendar=calendar, now=now
        )

    auto_reply = outcome.template if outcome is not None and outcome.sent else None
    _record(session, ticket, after_hours, verdict.urgent, verdict.reason, auto_reply, now)
    if verdict.urgent and ticket.slack_channel:
        # The card now says why it is urgent.
        enqueue_ticket_refresh(session, ticket_id=ticket.id, lane=slack_lane(ticket.slack_channel), now=now)
    return TriageResult(
        ticket_id=ticket.id,
        number=ticket.number,
        after_hours=after_hours,
        urgent=verdict.urgent,
        reason=verdict.reason,
        paged=paged,
        auto_reply=auto_reply,
        withheld=outcome.withheld if outcome is not None and not outcome.sent else "",
    )


def _set_aside(session: Session, ticket: Ticket, after_hours: bool, now: datetime) -> TriageResult:
    reason = "marked as spam"
    _record(session, ticket, after_hours, False, reason, None, now, spam=True)
    return TriageResult(ticket.id, ticket.number, after_hours, False, reason, withheld="spam")


def _record(
    session: Session,
    ticket: Ticket,
    after_hours: bool,
    urgent: bool,
    reason: str,
    auto_reply: str | None,
    now: datetime,
    **extra: Any,
) -> None:
    """The triage row (it makes triage happen once) and its event in the ticket's timeline."""
    session.add(
        TicketTriage(
            ticket_id=ticket.id,
            after_hours=after_hours,
            urgent=urgent,
            reason=reason[:400],
            auto_reply=auto_reply,
            triaged_at=now,
        )
    )
    record_event(
        session,
        ticket_id=ticket.id,
        actor=SYSTEM,
        action="triaged",
        at=now,
        after_hours=after_hours,
        urgent=urgent,
        reason=reason,
        auto_reply=auto_reply,
        **extra,
    )
