"""Turning one fetched email into a ticket or a follow-up, exactly once.

Everything happens in the caller's transaction: the message, its ticket, the
audit event and the outbox rows that will show it in Slack commit together, or
not at all. Re-ingesting the same email is a no-op (per-mailbox dedupe key).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.mail.parse import MalformedEmailError, ParsedEmail, parse_email, ticket_token
from bot.outbox.queue import (
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_POST,
    enqueue,
    enqueue_ticket_refresh,
    slack_lane,
)
from bot.storage.counters import TICKET_NUMBER, next_value
from bot.storage.models import Attachment, Customer, Message, Ticket
from bot.tickets.events import SYSTEM, customer_actor, record_event

log = logging.getLogger(__name__)

Outcome = Literal["new_ticket", "follow_up", "duplicate"]


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    ticket_id: int
    ticket_number: int
    message_id: int
    malformed: bool = False


def ingest_email(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    channel: str,
    now: datetime,
    uid: int | None = None,
    own_addresses: Iterable[str] = (),
) -> IngestResult:
    """Store one email and queue its Slack post; never raises for bad email content."""
    try:
        parsed = parse_email(raw, own_addresses=own_addresses)
    except MalformedEmailError as exc:
        return _ingest_unparseable(session, raw, str(exc), mailbox=mailbox, channel=channel, now=now, uid=uid)
    except Exception as exc:  # a parser bug must not stop the mailbox: keep the mail, flag it
        log.exception("parser failed on mailbox %s uid %s", mailbox, uid)
        reason = f"parser error: {type(exc).__name__}: {exc}"
        return _ingest_unparseable(session, raw, reason, mailbox=mailbox, channel=channel, now=now, uid=uid)

    existing = _find_duplicate(session, mailbox, parsed.dedupe_key)
    if existing is not None:
        return existing

    ticket = _thread_of(session, parsed)
    customer = _upsert_customer(session, parsed, now)
    actor = customer_actor(parsed.from_address) if parsed.from_address else SYSTEM
    lane = slack_lane(channel)

    if ticket is None:
        ticket = _open_ticket(
            session,
            subject=parsed.subject,
            customer=customer,
            auto_reason=parsed.auto_reason,
            malformed=False,
            channel=channel,
            now=now,
        )
        message = _store_message(session, parsed, raw, ticket, mailbox=mailbox, uid=uid, now=now)
        session.flush()
        record_event(
            session,
            ticket_id=ticket.id,
            actor=actor,
            action="ticket_created",
            at=now,
            message_id=message.id,
            subject=parsed.subject,
            auto_reason=parsed.auto_reason,
        )
        enqueue(
            session,
            kind=SLACK_TICKET_POST,
            lane=lane,
            now=now,
            ticket_id=ticket.id,
            dedupe_key=f"ticket-post:{ticket.id}",
        )
        return IngestResult("new_ticket", ticket.id, ticket.number, message.id)

    message = _store_message(session, parsed, raw, ticket, mailbox=mailbox, uid=uid, now=now)
    ticket.updated_at = now
    session.flush()
    record_event(
        session,
        ticket_id=ticket.id,
        actor=actor,
        action="customer_message",
        at=now,
        message_id=message.id,
    )
    if ticket.status in {"resolved", "waiting"}:
        previous = ticket.status
        ticket.status = "claimed" if ticket.owner else "open"
        ticket.resolved_at = None
        record_event(
            session,
            ticket_id=ticket.id,
            actor=actor,
            action="reopened" if previous == "resolved" else "customer_replied",
            at=now,
            previous_status=previous,
            status=ticket.status,
        )
    enqueue(
        session,
        kind=SLACK_THREAD_MESSAGE,
        lane=lane,
        now=now,
        ticket_id=ticket.id,
        payload={"message_id": message.id},
        dedupe_key=f"thread-message:{message.id}",
    )
    enqueue_ticket_refresh(session, ticket_id=ticket.id, lane=lane, now=now)
    return IngestResult("follow_up", ticket.id, ticket.number, message.id)


def _find_duplicate(session: Session, mailbox: str, dedupe_key: str) -> IngestResult | None:
    row = session.execute(
        select(Message.id, Ticket.id, Ticket.number)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .where(Message.mailbox == mailbox, Message.dedupe_key == dedupe_key)
    ).first()
    if row is None:
        return None
    return IngestResult("duplicate", row[1], row[2], row[0])


def _thread_of(session: Session, parsed: ParsedEmail) -> Ticket | None:
    """The ticket an email continues: by its reply headers first, then by a [#123] token."""
    # Nearest ancestor first: In-Reply-To, then References from the end.
    candidates = [parsed.in_reply_to, *reversed(parsed.references)]
    ids = [c for c in candidates if c]
    if ids:
        rows = session.execute(
            select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(ids))
        ).all()
        by_id = {message_id: ticket_id for message_id, ticket_id in rows}
        for candidate in ids:
            if candidate in by_id:
                return session.get(Ticket, by_id[candidate])
    number = ticket_token(parsed.subject)
    if number is not None and parsed.from_address:
        # A token is easy to guess, so it only threads mail from someone already on the
        # ticket; anyone else typing "[#12]" gets a ticket of their own.
        return session.scalar(
            select(Ticket)
            .join(Message, Message.ticket_id == Ticket.id)
            .where(Ticket.number == number, Message.from_address == parsed.from_address)
            .limit(1)
        )
    return None


def _upsert_customer(session: Session, parsed: ParsedEmail, now: datetime) -> Customer | None:
    if not parsed.from_address:
        return None
    customer = session.scalar(select(Customer).where(Customer.email == parsed.from_address))
    if customer is None:
        customer = Customer(email=parsed.from_address, name=parsed.from_name[:200], created_at=now)
        session.add(customer)
        session.flush()
    elif parsed.from_name and not customer.name:
        customer.name = parsed.from_name[:200]
    return customer


def _store_message(
    session: Session,
    parsed: ParsedEmail,
    raw: bytes,
    ticket: Ticket,
    *,
    mailbox: str,
    uid: int | None,
    now: datetime,
) -> Message:
    message = Message(
        ticket=ticket,
        direction="in",
        mailbox=mailbox,
        dedupe_key=parsed.dedupe_key[:400],
        message_id=parsed.message_id[:400] if parsed.message_id else None,
        in_reply_to=parsed.in_reply_to[:400] if parsed.in_reply_to else None,
        references=list(parsed.references),
        from_address=parsed.from_address[:320],
        from_name=parsed.from_name[:200],
        subject=parsed.subject,
        headers=[[name, value] for name, value in parsed.headers],
        text=parsed.text,
        view_text=parsed.view_text,
        html=parsed.html,
        raw=raw,
        auto_reason=parsed.auto_reason,
        defects=list(parsed.defects),
        imap_uid=uid,
        sent_at=parsed.date,
        created_at=now,
    )
    message.attachments = [
        Attachment(filename=a.filename[:500], content_type=a.content_type[:200], size=a.size)
        for a in parsed.attachments
    ]
    session.add(message)
    return message


def _open_ticket(
    session: Session,
    *,
    subject: str,
    customer: Customer | None,
    auto_reason: str | None,
    malformed: bool,
    channel: str,
    now: datetime,
) -> Ticket:
    ticket = Ticket(
        number=next_value(session, TICKET_NUMBER),
        customer=customer,
        subject=subject,
        status="open",
        auto_reason=auto_reason,
        malformed=malformed,
        created_at=now,
        updated_at=now,
        slack_channel=channel,
    )
    session.add(ticket)
    return ticket


def _ingest_unparseable(
    session: Session,
    raw: bytes,
    reason: str,
    *,
    mailbox: str,
    channel: str,
    now: datetime,
    uid: int | None,
) -> IngestResult:
    """Keep mail we cannot read as a flagged ticket, so a person can look at the raw source."""
    dedupe_key = "sha256:" + hashlib.sha256(raw).hexdigest()
    existing = _find_duplicate(session, mailbox, dedupe_key)
    if existing is not None:
        return existing
    ticket = _open_ticket(
        session,
        subject="(unreadable email)",
        customer=None,
        # Nobody knows who sent it, so nothing may answer it automatically.
        auto_reason="malformed",
        malformed=True,
        channel=channel,
        now=now,
    )
    message = Message(
        ticket=ticket,
        direction="in",
        mailbox=mailbox,
        dedupe_key=dedupe_key,
        subject="(unreadable email)",
        raw=raw,
        auto_reason="malformed",
        parse_error=reason[:2000],
        imap_uid=uid,
        created_at=now,
    )
    session.add(message)
    session.flush()
    record_event(
        session,
        ticket_id=ticket.id,
        actor=SYSTEM,
        action="malformed_email",
        at=now,
        message_id=message.id,
        reason=reason[:500],
        size=len(raw),
    )
    enqueue(
        session,
        kind=SLACK_TICKET_POST,
        lane=slack_lane(channel),
        now=now,
        ticket_id=ticket.id,
        dedupe_key=f"ticket-post:{ticket.id}",
    )
    return IngestResult("new_ticket", ticket.id, ticket.number, message.id, malformed=True)
