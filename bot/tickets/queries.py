"""Questions staff ask about tickets: a timeline, a customer's history, my queue, the open queue.

Plain snapshots out, no Slack: the renderers in `bot/slack/` turn them into Block Kit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.storage.models import Customer, Event, Message, Ticket
from bot.tickets.status import CLOSED, TicketStatus
from bot.tickets.workflow import TicketError, ticket_by_number

# Lists in Slack are for reading, not scrolling forever.
LIST_LIMIT = 25


@dataclass(frozen=True)
class TicketLine:
    id: int
    number: int
    subject: str
    customer: str
    status: str
    owner: str | None
    created_at: datetime
    slack_channel: str | None
    slack_ts: str | None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Timeline:
    ticket: TicketLine
    entries: tuple[TimelineEntry, ...]


def line_of(ticket: Ticket, email: str | None) -> TicketLine:
    """A ticket as lists show it, with its customer's address."""
    return TicketLine(
        id=ticket.id,
        number=ticket.number,
        subject=ticket.subject,
        customer=email or "",
        status=ticket.status,
        owner=ticket.owner,
        created_at=ticket.created_at,
        slack_channel=ticket.slack_channel,
        slack_ts=ticket.slack_ts,
    )


def _lines(session: Session, query: Any) -> list[TicketLine]:
    rows = session.execute(query.add_columns(Customer.email).outerjoin(Ticket.customer)).all()
    return [line_of(ticket, email) for ticket, email in rows]


def ticket_line(session: Session, ticket_id: int) -> TicketLine | None:
    lines = _lines(session, select(Ticket).where(Ticket.id == ticket_id))
    return lines[0] if lines else None


def timeline(session: Session, number: int) -> Timeline:
    """Everything that happened to a ticket, oldest first: the audit trail plus its messages."""
    ticket = ticket_by_number(session, number)
    line = ticket_line(session, ticket.id)
    assert line is not None
    events = session.scalars(select(Event).where(Event.ticket_id == ticket.id).order_by(Event.at, Event.id))
    entries: list[TimelineEntry] = []
    for e in events:
        entry = TimelineEntry(e.at, e.actor, e.action, dict(e.data or {}))
        previous = entries[-1] if entries else None
        if (
            previous is not None
            and previous.action == "customer_message"
            and entry.action in _MOVED_BY_AN_ANSWER
            and (entry.actor, entry.at) == (previous.actor, previous.at)
        ):
            # The status change the same answer caused: one answer, one line.
            entries[-1] = TimelineEntry(
                previous.at, previous.actor, previous.action, {**previous.data, **entry.data}
            )
            continue
        entries.append(entry)
    return Timeline(line, tuple(entries))


# Recorded beside a customer's answer (older rows wrote `customer_replied` as well).
_MOVED_BY_AN_ANSWER = ("reopened", "customer_replied")


def customer_tickets(session: Session, email: str) -> list[TicketLine]:
    address = email.strip().lower()
    # PostgreSQL refuses NUL in a text parameter; no address holds one anyway.
    if "@" not in address or "\x00" in address:
        raise TicketError(f"{email!r} is not an email address.")
    return _lines(
        session,
        select(Ticket)
        .where(Customer.email == address)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(LIST_LIMIT),
    )


def my_tickets(session: Session, user: str) -> list[TicketLine]:
    return _lines(
        session,
        select(Ticket)
        .where(Ticket.owner == user, Ticket.status.not_in(CLOSED))
        .order_by(Ticket.created_at, Ticket.id)
        .limit(LIST_LIMIT),
    )


def open_queue(session: Session, limit: int = LIST_LIMIT) -> list[TicketLine]:
    """Unclaimed tickets, oldest first: the order they should be picked up in."""
    return _lines(
        session,
        select(Ticket)
        .where(Ticket.status == TicketStatus.OPEN, Ticket.owner.is_(None))
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit),
    )


def open_count(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.status == TicketStatus.OPEN, Ticket.owner.is_(None))
        )
        or 0
    )


def latest_customer_message(session: Session, ticket_id: int) -> Message | None:
    return session.scalar(
        select(Message)
        .where(Message.ticket_id == ticket_id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )


def ticket_for_thread(session: Session, channel: str, thread_ts: str) -> int | None:
    """The ticket whose channel message starts this Slack thread."""
    return session.scalar(
        select(Ticket.id).where(Ticket.slack_channel == channel, Ticket.slack_ts == thread_ts)
    )
