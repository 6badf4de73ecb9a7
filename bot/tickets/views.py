"""Read models: plain snapshots of tickets and messages for renderers.

Renderers (Slack today, the sandbox page, exports) take these values and never
touch the database, so what they show is exactly what was read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.storage.models import Message, Ticket, TicketTriage
from bot.tickets.spam import spam_marker
from bot.tickets.status import TicketStatus


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    size: int


@dataclass(frozen=True)
class TicketCard:
    id: int
    number: int
    subject: str
    customer_name: str
    customer_email: str
    status: str
    owner: str | None
    created_at: datetime
    snippet: str
    attachments: tuple[AttachmentInfo, ...]
    tags: tuple[str, ...]
    auto_reason: str | None
    malformed: bool
    parse_error: str | None
    message_count: int
    urgent_reason: str | None = None  # set when triage found the ticket urgent: the rule, in words
    spam_by: str | None = None  # spam only: who marked it ("system": its sender was blocked)


@dataclass(frozen=True)
class MessageCard:
    id: int
    ticket_id: int
    ticket_number: int
    direction: str
    from_name: str
    from_address: str
    author: str | None
    at: datetime
    subject: str
    text: str
    attachments: tuple[AttachmentInfo, ...]
    auto_reason: str | None
    parse_error: str | None
    # Our replies only: who they went to, as stored in their To and Cc headers.
    to: str = ""
    cc: str = ""


def ticket_card(session: Session, ticket_id: int) -> TicketCard | None:
    ticket = session.scalar(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .options(
            selectinload(Ticket.messages).selectinload(Message.attachments),
            selectinload(Ticket.tags),
            selectinload(Ticket.customer),
        )
    )
    if ticket is None:
        return None
    first = next((m for m in ticket.messages if m.direction == "in"), None)
    triage = session.get(TicketTriage, ticket.id)
    return TicketCard(
        id=ticket.id,
        number=ticket.number,
        subject=ticket.subject,
        customer_name=ticket.customer.name if ticket.customer else (first.from_name if first else ""),
        customer_email=ticket.customer.email if ticket.customer else (first.from_address if first else ""),
        status=ticket.status,
        owner=ticket.owner,
        created_at=ticket.created_at,
        snippet=(first.view_text or first.text) if first else "",
        attachments=_attachments(first) if first else (),
        tags=tuple(tag.name for tag in ticket.tags),
        auto_reason=ticket.auto_reason,
        malformed=ticket.malformed,
        parse_error=first.parse_error if first else None,
        message_count=len(ticket.messages),
        urgent_reason=(triage.reason or "matched an urgency rule") if triage and triage.urgent else None,
        spam_by=spam_marker(session, ticket.id) if ticket.status == TicketStatus.SPAM else None,
    )


def message_card(session: Session, message_id: int) -> MessageCard | None:
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id)
        .options(selectinload(Message.attachments), selectinload(Message.ticket))
    )
    if message is None:
        return None
    return MessageCard(
        id=message.id,
        ticket_id=message.ticket_id,
        ticket_number=message.ticket.number,
        direction=message.direction,
        from_name=message.from_name,
        from_address=message.from_address,
        author=message.author,
        at=message.sent_at or message.created_at,
        subject=message.subject,
        text=message.view_text or message.text,
        attachments=_attachments(message),
        auto_reason=message.auto_reason,
        parse_error=message.parse_error,
        to=_header(message, "to") if message.direction == "out" else "",
        cc=_header(message, "cc") if message.direction == "out" else "",
    )


def _header(message: Message, name: str) -> str:
    return next((value for key, value in message.headers or [] if key.lower() == name), "")


def _attachments(message: Message) -> tuple[AttachmentInfo, ...]:
    return tuple(AttachmentInfo(a.filename, a.size) for a in message.attachments)
