"""Spam: setting a ticket aside as nobody's work, and blocking its sender.

A spam ticket keeps everything it had (its mail is never dropped) but leaves every queue,
every figure and every automatic answer: its status is `spam`, and each place that looks
for work or counts it leaves that status out. Blocking is by address, or (managers only)
by domain; mail from a blocked sender is still stored, as a spam ticket nobody is shown.

Our own address and staff addresses can never be blocked: the caller passes them in as
`protected`, since only Slack knows who staff are.

Like bot/tickets/workflow.py, each function changes state, records who did it, and queues
the card's refresh (or post) in the same transaction; none of it knows about Slack.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.outbox.queue import (
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_POST,
    enqueue,
    enqueue_attachment_uploads,
    enqueue_ticket_refresh,
    slack_lane,
)
from bot.storage.models import BlockedSender, Customer, Event, Message, Ticket
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.status import TicketStatus
from bot.tickets.workflow import TicketError
from rota.paging_jobs import PagingEnded, stop_paging

SPAM = TicketStatus.SPAM
ADDRESS = "address"
DOMAIN = "domain"
# Where a ticket goes back to when nobody recorded where it was (mail from a blocked sender).
_RESTORABLE = (TicketStatus.OPEN, TicketStatus.CLAIMED, TicketStatus.WAITING, TicketStatus.RESOLVED)
LIST_LIMIT = 20

_DOMAIN = re.compile(r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class MarkResult:
    number: int
    sender: str  # "" when the mail had no readable sender
    blocked: bool  # the sender is blocked now (by this or earlier)
    not_blocked_why: str = ""  # when there is a sender and it was not blocked
    # A page running for the ticket stops at once: who it woke, for the caller to stand down.
    paging: tuple[PagingEnded, ...] = ()


@dataclass(frozen=True)
class RestoreResult:
    number: int
    status: str
    sender: str
    unblocked: bool
    domain_still_blocked: str = ""  # the domain block that will keep setting its mail aside


@dataclass(frozen=True)
class SpamLine:
    id: int
    number: int
    sender: str
    subject: str
    at: datetime  # when it was marked, or when it arrived from a blocked sender
    by: str  # who marked it; SYSTEM for mail from a blocked sender


@dataclass(frozen=True)
class BlockedLine:
    kind: str
    value: str
    by: str
    at: datetime
    ticket_number: int | None


# -- addresses ------------------------------------------------------------------------------


def normalise_address(text: str) -> str:
    """An email address as typed in Slack (`<mailto:a@b.c|a@b.c>` too), lowercased; or TicketError."""
    address = text.strip().strip("<>").removeprefix("mailto:").split("|")[0].strip().lower()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or len(address) > 320
        or any(c.isspace() or c in "<>\x00," for c in address)
        or not _DOMAIN.match(domain)
    ):
        raise TicketError("Give one email address, like `spammer@example.com`.")
    return address


def normalise_domain(text: str) -> str:
    """A domain as typed (`@example.com`, `Example.COM.`), lowercased; or TicketError."""
    domain = text.strip().strip("<>").removeprefix("http://").removeprefix("https://")
    domain = domain.split("|")[0].lstrip("@").rstrip(".").lower()
    if not _DOMAIN.match(domain):
        raise TicketError("Give one domain with at least one dot, like `example.com`.")
    return domain


def _domains_of(address: str) -> list[str]:
    """The address's domain and each parent with a dot in it: mail.spam.example → spam.example…"""
    labels = address.rpartition("@")[2].split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def protection(address: str, protected: Collection[str]) -> str:
    """Why `address` may never be blocked, or ""."""
    return (
        f"{address} is our own address or a staff member's, so it can't be blocked"
        if address.lower() in {p.lower() for p in protected}
        else ""
    )


def blocked_among(session: Session, addresses: Iterable[str]) -> set[str]:
    """Those of `addresses` (lowercased) that are blocked, by address or by domain: one query."""
    wanted = {a.strip().lower() for a in addresses if a and "@" in a}
    if not wanted:
        return set()
    domains = {d for a in wanted for d in _domains_of(a)}
    rows = session.execute(
        select(BlockedSender.kind, BlockedSender.value).where(
            or_(
                and_(BlockedSender.kind == ADDRESS, BlockedSender.value.in_(sorted(wanted))),
                and_(BlockedSender.kind == DOMAIN, BlockedSender.value.in_(sorted(domains))),
            )
        )
    ).all()
    by_address = {value for kind, value in rows if kind == ADDRESS}
    by_domain = {value for kind, value in rows if kind == DOMAIN}
    return {a for a in wanted if a in by_address or any(d in by_domain for d in _domains_of(a))}


def _domain_block(session: Session, address: str) -> str:
    domains = _domains_of(address)
    return (
        session.scalar(
            select(BlockedSender.value).where(BlockedSender.kind == DOMAIN, BlockedSender.value.in_(domains))
        )
        or ""
    )


# -- marking and restoring ------------------------------------------------------------------


def sender_of(session: Session, ticket: Ticket) -> str:
    if ticket.customer_id is not None:
        customer = session.get(Customer, ticket.customer_id)
        if customer is not None and customer.email:
            return customer.email.lower()
    first = session.scalar(
        select(Message.from_address)
        .where(Message.ticket_id == ticket.id, Message.direction == "in")
        .order_by(Message.id)
        .limit(1)
    )
    return (first or "").lower()


def ticket_sender(session: Session, ticket_id: int) -> str:
    """The address a ticket's mail came from ("" if unknown); TicketError if there is no ticket."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(f"There is no ticket with id {ticket_id}.")
    return sender_of(session, ticket)


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id, with_for_update=True)
    if ticket is None:
        raise TicketError(f"There is no ticket with id {ticket_id}.")
    return ticket


def _refresh(session: Session, ticket: Ticket, now: datetime) -> None:
    if ticket.slack_channel:
        enqueue_ticket_refresh(session, ticket_id=ticket.id, lane=slack_lane(ticket.slack_channel), now=now)


def mark_spam(
    session: Session, ticket_id: int, user: str, now: datetime, *, protected: Collection[str]
) -> MarkResult:
    """Set the ticket aside as spam, stop any page for it and block its sender (unless protected)."""
    ticket = _ticket(session, ticket_id)
    if ticket.status == SPAM:
        raise TicketError(f"Ticket #{ticket.number} is already marked as spam.")
    previous = {
        "previous": ticket.status,
        "previous_owner": ticket.owner,
        "previous_resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
    }
    ticket.status, ticket.owner, ticket.resolved_at, ticket.updated_at = SPAM, None, None, now
    sender = sender_of(session, ticket)
    record_event(
        session, ticket_id=ticket.id, actor=user, action="marked_spam", at=now, sender=sender, **previous
    )
    paging = stop_paging(session, ticket.id, now, "the ticket was marked as spam")
    blocked, why_not = False, ""
    if sender:
        why_not = protection(sender, protected)
        if not why_not:
            _block(session, ADDRESS, sender, user, now, ticket.id)
            blocked = True
    _refresh(session, ticket, now)
    return MarkResult(ticket.number, sender, blocked, why_not, tuple(paging))


def not_spam(session: Session, ticket_id: int, user: str, now: datetime) -> RestoreResult:
    """Bring a spam ticket back where it was, unblock its sender and show its card again."""
    ticket = _ticket(session, ticket_id)
    if ticket.status != SPAM:
        raise TicketError(f"Ticket #{ticket.number} is not marked as spam.")
    marked = session.scalar(
        select(Event)
        .where(Event.ticket_id == ticket.id, Event.action == "marked_spam")
        .order_by(Event.id.desc())
        .limit(1)
    )
    data = dict(marked.data or {}) if marked is not None else {}
    status = data.get("previous") if data.get("previous") in _RESTORABLE else TicketStatus.OPEN
    owner = data.get("previous_owner") if isinstance(data.get("previous_owner"), str) else None
    if status == TicketStatus.CLAIMED and owner is None:
        status = TicketStatus.OPEN
    ticket.status, ticket.owner, ticket.updated_at = status, owner, now
    ticket.resolved_at = None
    if status == TicketStatus.RESOLVED:
        stored = data.get("previous_resolved_at")
        ticket.resolved_at = datetime.fromisoformat(stored) if isinstance(stored, str) else now
    sender = sender_of(session, ticket)
    record_event(
        session,
        ticket_id=ticket.id,
        actor=user,
        action="marked_not_spam",
        at=now,
        status=status,
        sender=sender,
    )
    unblocked = bool(sender) and _unblock(session, ADDRESS, sender, user, now, ticket.id)
    _show_again(session, ticket, now)
    return RestoreResult(
        ticket.number, status, sender, unblocked, _domain_block(session, sender) if sender else ""
    )


def _show_again(session: Session, ticket: Ticket, now: datetime) -> None:
    """The card back in the channel: refreshed if it was posted, posted if it never was, and the
    follow-ups that arrived while it was spam in its thread."""
    if not ticket.slack_channel:
        return
    lane = slack_lane(ticket.slack_channel)
    never_posted = ticket.slack_ts is None
    if never_posted:
        # A pending post renders the current state when delivered; a missing one is queued now.
        enqueue(
            session,
            kind=SLACK_TICKET_POST,
            lane=lane,
            now=now,
            ticket_id=ticket.id,
            dedupe_key=f"ticket-post:{ticket.id}",
        )
    else:
        enqueue_ticket_refresh(session, ticket_id=ticket.id, lane=lane, now=now)
    inbound = session.execute(
        select(Message.id, Message.auto_reason)
        .where(Message.ticket_id == ticket.id, Message.direction == "in")
        .order_by(Message.id)
    ).all()
    ids = [message_id for message_id, _ in inbound]
    quiet = set(
        session.scalars(select(Message.id).where(Message.id.in_(ids[1:]), Message.slack_ts.is_(None))).all()
    )
    for index, (message_id, auto_reason) in enumerate(inbound):
        # Their files too, as ingestion would have queued them (none for automatic mail).
        if auto_reason is None and (message_id in quiet or (index == 0 and never_posted)):
            enqueue_attachment_uploads(
                session,
                ticket_id=ticket.id,
                message_id=message_id,
                channel=ticket.slack_channel,
                opens_ticket=index == 0,
                now=now,
            )
        if index > 0 and message_id in quiet:
            # The key is ingestion's own: a follow-up already queued is not queued twice.
            enqueue(
                session,
                kind=SLACK_THREAD_MESSAGE,
                lane=lane,
                now=now,
                ticket_id=ticket.id,
                payload={"message_id": message_id},
                dedupe_key=f"thread-message:{message_id}",
            )


# -- blocking ----------------------------------------------------------------------------------


def _block(session: Session, kind: str, value: str, user: str, now: datetime, ticket_id: int | None) -> bool:
    """Add the block (False if it was there already) and audit it."""
    exists = session.scalar(
        select(BlockedSender.id).where(BlockedSender.kind == kind, BlockedSender.value == value)
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                BlockedSender(kind=kind, value=value, blocked_by=user, blocked_at=now, ticket_id=ticket_id)
            )
            session.flush()
    except IntegrityError:
        return False  # blocked at the same moment by someone else: the same outcome
    record_event(
        session, ticket_id=ticket_id, actor=user, action="sender_blocked", at=now, kind=kind, value=value
    )
    return True


def _unblock(
    session: Session, kind: str, value: str, user: str, now: datetime, ticket_id: int | None = None
) -> bool:
    gone = session.execute(
        delete(BlockedSender).where(BlockedSender.kind == kind, BlockedSender.value == value)
    ).rowcount
    if gone:
        record_event(
            session,
            ticket_id=ticket_id,
            actor=user,
            action="sender_unblocked",
            at=now,
            kind=kind,
            value=value,
        )
    return bool(gone)


def unblock_address(session: Session, text: str, user: str, now: datetime) -> str:
    address = normalise_address(text)
    if not _unblock(session, ADDRESS, address, user, now):
        raise TicketError(f"{address} is not blocked.")
    return address


def block_domain(session: Session, text: str, user: str, now: datetime, *, protected: Collection[str]) -> str:
    domain = normalise_domain(text)
    mine = sorted(p for p in protected if domain in _domains_of(p.lower()))
    if mine:
        raise TicketError(
            f"{domain} can't be blocked: our own address or a staff member's is in it ({mine[0]})."
        )
    if not _block(session, DOMAIN, domain, user, now, None):
        raise TicketError(f"{domain} is already blocked.")
    return domain


def unblock_domain(session: Session, text: str, user: str, now: datetime) -> str:
    domain = normalise_domain(text)
    if not _unblock(session, DOMAIN, domain, user, now):
        raise TicketError(f"{domain} is not blocked.")
    return domain


# -- reading -----------------------------------------------------------------------------------


def recent_spam(session: Session, limit: int = LIST_LIMIT) -> list[SpamLine]:
    """Spam tickets, the most recently set aside first (by their latest `marked_spam` event:
    a follow-up arriving on an old one does not move it up)."""
    latest = (
        select(Event.ticket_id.label("ticket_id"), func.max(Event.id).label("event_id"))
        .where(Event.action == "marked_spam", Event.ticket_id.is_not(None))
        .group_by(Event.ticket_id)
        .subquery()
    )
    rows = session.execute(
        select(Ticket, Customer.email, Event.actor, Event.at)
        .join(latest, latest.c.ticket_id == Ticket.id)
        .join(Event, Event.id == latest.c.event_id)
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(Ticket.status == SPAM)
        .order_by(latest.c.event_id.desc())
        .limit(limit)
    ).all()
    return [
        SpamLine(ticket.id, ticket.number, email or "", ticket.subject, at, actor)
        for ticket, email, actor, at in rows
    ]


def spam_marker(session: Session, ticket_id: int) -> str | None:
    """Who set the ticket aside (SYSTEM: its sender was blocked), for its collapsed card."""
    actor = session.scalar(
        select(Event.actor)
        .where(Event.ticket_id == ticket_id, Event.action == "marked_spam")
        .order_by(Event.id.desc())
        .limit(1)
    )
    return actor or SYSTEM


def blocked_senders(session: Session, limit: int = 50) -> list[BlockedLine]:
    rows = session.execute(
        select(BlockedSender, Ticket.number)
        .outerjoin(Ticket, Ticket.id == BlockedSender.ticket_id)
        .order_by(BlockedSender.blocked_at.desc(), BlockedSender.id.desc())
        .limit(limit)
    ).all()
    return [BlockedLine(b.kind, b.value, b.blocked_by, b.blocked_at, number) for b, number in rows]
