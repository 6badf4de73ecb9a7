"""What staff do to a ticket: claim, hand over, tag, change status, add notes.

Each function takes a session and plain values, applies one rule, records who
did what in the audit trail, and queues the refresh of the ticket's channel
message in the same transaction. None of it knows about Slack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.outbox.queue import enqueue_ticket_refresh, slack_lane
from bot.storage.models import Message, Tag, Ticket, TicketTag
from bot.tickets.events import record_event
from bot.tickets.status import STATUSES, TicketStatus

# Spam is entered and left only through bot/tickets/spam.py (Mark as spam, Not spam): those
# also block and unblock the sender, which a bare status change would skip.
SPAM = TicketStatus.SPAM
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")


class TicketError(ValueError):
    """The action cannot be done; the message is meant for the person who tried."""


class NotYourTicket(TicketError):
    """Someone else owns the ticket, and only they or a manager may `action` it."""

    def __init__(self, number: int, owner: str, action: str) -> None:
        # Plain words for logs; Slack says it with a mention (bot/slack/errors.py).
        super().__init__(f"Ticket #{number} belongs to {owner}; only they or a manager can {action} it.")
        self.number, self.owner, self.action = number, owner, action


class AlreadyOwnedBy(TicketError):
    """The ticket is being handed to the person who already has it."""

    def __init__(self, number: int, owner: str) -> None:
        super().__init__(f"Ticket #{number} already belongs to {owner}.")
        self.number, self.owner = number, owner


class SetAsideAsSpam(TicketError):
    """The ticket is spam: only Not spam brings it back to work."""

    def __init__(self, number: int) -> None:
        super().__init__(f"Ticket #{number} is marked as spam; use Not spam on its card first.")
        self.number = number


class SpamIsNotAStatus(TicketError):
    """Spam is set by Mark as spam, which also blocks the sender, not as a plain status."""

    def __init__(self) -> None:
        super().__init__("Use Mark as spam in the ticket's ⋯ menu: it also blocks the sender.")


@dataclass(frozen=True)
class ClaimResult:
    claimed: bool
    owner: str | None
    number: int


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(f"There is no ticket with id {ticket_id}.")
    return ticket


def ticket_by_number(session: Session, number: int) -> Ticket:
    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    if ticket is None:
        raise TicketError(f"There is no ticket #{number}.")
    return ticket


def _refresh(session: Session, ticket: Ticket, now: datetime) -> None:
    if ticket.slack_channel:
        enqueue_ticket_refresh(session, ticket_id=ticket.id, lane=slack_lane(ticket.slack_channel), now=now)


def claim_ticket(session: Session, ticket_id: int, user: str, now: datetime) -> ClaimResult:
    """Exactly one of many simultaneous claims wins: the owner is set by a conditional
    UPDATE, so the database, not the application, decides the race."""
    ticket = _ticket(session, ticket_id)
    won = session.execute(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.owner.is_(None),
            Ticket.status.not_in((TicketStatus.RESOLVED, SPAM)),
        )
        .values(owner=user, status=TicketStatus.CLAIMED, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(ticket)
    if not won:
        if ticket.status == SPAM:
            raise SetAsideAsSpam(ticket.number)
        if ticket.status == TicketStatus.RESOLVED:
            raise TicketError(f"Ticket #{ticket.number} is resolved; reopen it first.")
        return ClaimResult(False, ticket.owner, ticket.number)
    record_event(session, ticket_id=ticket.id, actor=user, action="claimed", at=now)
    _refresh(session, ticket, now)
    return ClaimResult(True, user, ticket.number)


def unclaim_ticket(
    session: Session, ticket_id: int, user: str, now: datetime, *, manager: bool = False
) -> None:
    ticket = _ticket(session, ticket_id)
    if ticket.owner is None:
        raise TicketError(f"Ticket #{ticket.number} is not claimed.")
    if ticket.owner != user and not manager:
        raise NotYourTicket(ticket.number, ticket.owner, "release")
    previous = ticket.owner
    ticket.owner = None
    if ticket.status == TicketStatus.CLAIMED:
        ticket.status = TicketStatus.OPEN
    ticket.updated_at = now
    record_event(
        session, ticket_id=ticket.id, actor=user, action="unclaimed", at=now, previous_owner=previous
    )
    _refresh(session, ticket, now)


def reassign_ticket(
    session: Session, ticket_id: int, user: str, to: str, now: datetime, *, manager: bool = False
) -> None:
    ticket = _ticket(session, ticket_id)
    if ticket.status == SPAM:
        raise SetAsideAsSpam(ticket.number)
    if ticket.status == TicketStatus.RESOLVED:
        raise TicketError(f"Ticket #{ticket.number} is resolved; reopen it first.")
    # Handing a colleague's ticket on is releasing it: the same people as for unclaim.
    if ticket.owner is not None and ticket.owner != user and not manager:
        raise NotYourTicket(ticket.number, ticket.owner, "reassign")
    if ticket.owner == to:
        raise AlreadyOwnedBy(ticket.number, to)
    previous = ticket.owner
    ticket.owner = to
    if ticket.status == TicketStatus.OPEN:
        ticket.status = TicketStatus.CLAIMED
    ticket.updated_at = now
    record_event(
        session,
        ticket_id=ticket.id,
        actor=user,
        action="reassigned",
        at=now,
        previous_owner=previous,
        owner=to,
    )
    _refresh(session, ticket, now)


def set_status(session: Session, ticket_id: int, user: str, status: str, now: datetime) -> Ticket:
    if status not in STATUSES:
        raise TicketError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
    if status == SPAM:
        raise SpamIsNotAStatus()
    ticket = _ticket(session, ticket_id)
    if ticket.status == SPAM:
        raise SetAsideAsSpam(ticket.number)
    if ticket.status == status:
        raise TicketError(f"Ticket #{ticket.number} is already {status}.")
    previous = ticket.status
    if status == TicketStatus.OPEN:
        # Reopening keeps the owner, as a customer's reply does: they know the case.
        ticket.status = TicketStatus.CLAIMED if ticket.owner else TicketStatus.OPEN
    else:
        ticket.status = status
    if status == TicketStatus.CLAIMED and ticket.owner is None:
        ticket.owner = user
    ticket.resolved_at = now if status == TicketStatus.RESOLVED else None
    ticket.updated_at = now
    action = {TicketStatus.RESOLVED: "resolved", TicketStatus.WAITING: "waiting_on_customer"}.get(
        status, "reopened" if previous == TicketStatus.RESOLVED else "status_changed"
    )
    record_event(
        session,
        ticket_id=ticket.id,
        actor=user,
        action=action,
        at=now,
        previous=previous,
        status=ticket.status,
    )
    _refresh(session, ticket, now)
    return ticket


def resolve_ticket(session: Session, ticket_id: int, user: str, now: datetime) -> Ticket:
    return set_status(session, ticket_id, user, TicketStatus.RESOLVED, now)


def normalise_tag(name: str) -> str:
    tag = re.sub(r"[\s]+", "-", name.strip().lower().lstrip("#"))
    if not _TAG.match(tag):
        raise TicketError(
            f"{name!r} is not a usable tag: use up to 40 lowercase letters, digits, '-' or '_'."
        )
    return tag


def all_tags(session: Session) -> list[str]:
    return list(session.scalars(select(Tag.name).order_by(Tag.name)))


def set_tags(session: Session, ticket_id: int, user: str, names: list[str], now: datetime) -> list[str]:
    """Replace the ticket's tags; unknown tags are created (and recorded as such)."""
    ticket = _ticket(session, ticket_id)
    wanted = sorted({normalise_tag(n) for n in names})
    existing = {t.name: t for t in session.scalars(select(Tag).where(Tag.name.in_(wanted)))}
    for name in wanted:
        if name not in existing:
            tag = Tag(name=name, created_at=now, created_by=user)
            session.add(tag)
            session.flush()
            existing[name] = tag
            record_event(session, ticket_id=None, actor=user, action="tag_created", at=now, tag=name)
    before = sorted(t.name for t in ticket.tags)
    current = {
        link.tag_id: link
        for link in session.scalars(select(TicketTag).where(TicketTag.ticket_id == ticket.id))
    }
    keep = {existing[n].id for n in wanted}
    for tag_id, link in current.items():
        if tag_id not in keep:
            session.delete(link)
    for tag_id in keep - current.keys():
        session.add(TicketTag(ticket_id=ticket.id, tag_id=tag_id, added_by=user, added_at=now))
    ticket.updated_at = now
    session.flush()
    session.expire(ticket, ["tags"])
    added = sorted(set(wanted) - set(before))
    removed = sorted(set(before) - set(wanted))
    if added or removed:
        record_event(
            session, ticket_id=ticket.id, actor=user, action="tagged", at=now, added=added, removed=removed
        )
        _refresh(session, ticket, now)
    return wanted


def add_note(
    session: Session, ticket_id: int, user: str, text: str, now: datetime, *, slack_ts: str | None = None
) -> Message | None:
    """A staff message in the ticket's thread: kept as an internal note, never emailed.
    Slack redelivers events, so a note is stored once per Slack message."""
    ticket = _ticket(session, ticket_id)
    key = f"slack:{slack_ts}" if slack_ts else f"note:{ticket_id}:{user}:{now.isoformat()}"
    if session.scalar(select(Message.id).where(Message.mailbox == "notes", Message.dedupe_key == key)):
        return None
    note = Message(
        ticket_id=ticket.id,
        direction="note",
        mailbox="notes",
        dedupe_key=key,
        text=text,
        view_text=text,
        author=user,
        created_at=now,
        slack_ts=slack_ts,
        references=[],
        headers=[],
        defects=[],
    )
    session.add(note)
    session.flush()
    record_event(session, ticket_id=ticket.id, actor=user, action="note_added", at=now, message_id=note.id)
    return note
