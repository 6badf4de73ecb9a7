"""What we hold about one customer, at a glance: the answer to "what do you keep about me?".

An address is matched exactly, as ingestion stores it (lower-cased): `ada+x@example.com` and
`xada@example.com` are other people, and `Ada@Example.com` is Ada.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.storage.models import (
    Attachment,
    AutoReply,
    BlockedSender,
    Customer,
    Event,
    Message,
    Page,
    Survey,
    SurveyOptOut,
    Ticket,
)

# The tickets listed one by one; the counts cover them all.
TICKETS_LISTED = 25


class NotAnAddress(ValueError):
    """What was typed cannot be an email address."""

    def __init__(self, typed: str) -> None:
        super().__init__(f"{typed!r} is not an email address")
        self.typed = typed


def customer_address(typed: str) -> str:
    """The address as stored: trimmed and lower-cased. Raises NotAnAddress."""
    address = typed.strip().lower()
    # PostgreSQL refuses NUL in a parameter; whitespace or a second @ is no one address.
    if (
        address.count("@") != 1
        or address.startswith("@")
        or address.endswith("@")
        or "\x00" in address
        or any(ch.isspace() for ch in address)
        or len(address) > 320
    ):
        raise NotAnAddress(typed)
    return address


@dataclass(frozen=True)
class HeldTicket:
    number: int
    subject: str
    status: str
    created_at: datetime
    messages: int
    attachments: int
    slack_channel: str | None
    slack_ts: str | None


@dataclass(frozen=True)
class Holdings:
    address: str
    name: str
    known_since: datetime | None
    tickets: int
    messages: int  # every message of their tickets (theirs, our replies, internal notes)
    raw_mails: int  # messages whose original email source is kept
    attachments: int
    surveys: int
    survey_comments: int
    auto_replies: int
    blocks: int  # the address blocked as a spam sender
    survey_opt_out: bool
    pages: int
    events: int  # audit-log lines of their tickets or naming them
    slack_posts: int  # ticket cards and thread messages in Slack that show their text
    slack_files: int  # their attachments uploaded to Slack
    listed: tuple[HeldTicket, ...]  # the newest TICKETS_LISTED tickets

    @property
    def anything(self) -> bool:
        return bool(self.tickets or self.auto_replies or self.blocks or self.survey_opt_out or self.events)


def _count(session: Session, query: object) -> int:
    return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def customer_holdings(session: Session, typed: str) -> Holdings:
    """Counts of every kind of row about the customer, and their newest tickets. Raises NotAnAddress."""
    address = customer_address(typed)
    customer = session.scalar(select(Customer).where(Customer.email == address))
    customer_id = customer.id if customer is not None else -1
    ticket_ids = select(Ticket.id).where(Ticket.customer_id == customer_id).scalar_subquery()
    theirs = Message.ticket_id.in_(select(Ticket.id).where(Ticket.customer_id == customer_id))
    message_ids = select(Message.id).where(theirs)

    def count(model: type, *where: object) -> int:
        return _count(session, select(func.count()).select_from(model).where(*where))  # type: ignore[arg-type]

    tickets = count(Ticket, Ticket.customer_id == customer_id)
    messages = count(Message, theirs)
    posted_tickets = count(Ticket, Ticket.customer_id == customer_id, Ticket.slack_ts.is_not(None))
    posted_messages = count(Message, theirs, Message.slack_ts.is_not(None))
    attachment_counts = dict(
        session.execute(
            select(Attachment.message_id, func.count())
            .where(Attachment.message_id.in_(message_ids))
            .group_by(Attachment.message_id)
        ).all()
    )
    listed_rows = session.execute(
        select(Ticket)
        .where(Ticket.customer_id == customer_id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(TICKETS_LISTED)
    ).scalars()
    listed = []
    for ticket in listed_rows:
        per_message = session.execute(select(Message.id).where(Message.ticket_id == ticket.id)).scalars()
        ids = list(per_message)
        listed.append(
            HeldTicket(
                number=ticket.number,
                subject=ticket.subject,
                status=ticket.status,
                created_at=ticket.created_at,
                messages=len(ids),
                attachments=sum(int(attachment_counts.get(i, 0)) for i in ids),
                slack_channel=ticket.slack_channel,
                slack_ts=ticket.slack_ts,
            )
        )
    return Holdings(
        address=address,
        name=customer.name if customer is not None else "",
        known_since=customer.created_at if customer is not None else None,
        tickets=tickets,
        messages=messages,
        raw_mails=count(Message, theirs, Message.raw.is_not(None)),
        attachments=sum(int(n) for n in attachment_counts.values()),
        surveys=count(Survey, Survey.ticket_id.in_(ticket_ids)),
        survey_comments=count(
            Survey, Survey.ticket_id.in_(ticket_ids), Survey.comment.is_not(None), Survey.comment != ""
        ),
        auto_replies=count(AutoReply, or_(AutoReply.address == address, AutoReply.ticket_id.in_(ticket_ids))),
        blocks=count(BlockedSender, BlockedSender.kind == "address", BlockedSender.value == address),
        survey_opt_out=count(SurveyOptOut, SurveyOptOut.email == address) > 0,
        pages=count(Page, Page.ticket_id.in_(ticket_ids)),
        events=count(Event, or_(Event.ticket_id.in_(ticket_ids), Event.actor == f"customer:{address}")),
        slack_posts=posted_tickets + posted_messages,
        slack_files=count(
            Attachment, Attachment.message_id.in_(message_ids), Attachment.slack_file_id.is_not(None)
        ),
        listed=tuple(listed),
    )
