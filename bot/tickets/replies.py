"""Answering a customer: a reply is stored, audited and queued for SMTP in one transaction.

Everything the email needs (recipient, subject, threading headers, Message-ID) is
decided here and stored on the Message, so the outbox can send the same email as
often as it must and the Slack thread can later show exactly what went out.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.utils import getaddresses
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.mail.compose import compose_reply, new_message_id, reply_subject, sender_name, thread_references
from bot.outbox.queue import SMTP_SEND, enqueue, enqueue_ticket_refresh, slack_lane
from bot.storage.models import Message, Ticket
from bot.tickets.events import record_event
from bot.tickets.workflow import TicketError, claim_ticket

if TYPE_CHECKING:
    from bot.config import Settings

# All replies share one lane: the outbox sends them in the order agents pressed Send.
SMTP_LANE = "smtp"
# The Message.mailbox of our own replies, which keeps their dedupe keys apart from mail we fetched.
SENT_MAILBOX = "sent"
_TEXT_LIMIT = 200_000


def message_to_answer(session: Session, ticket_id: int) -> Message | None:
    """The customer's latest message: the one a reply answers and threads under.

    Out-of-office and other automatic mail is only answered when nothing a person wrote
    is on the ticket, so a reply's In-Reply-To points at what the customer actually said.
    """
    latest = select(Message).where(Message.ticket_id == ticket_id, Message.direction == "in")
    human = session.scalar(latest.where(Message.auto_reason.is_(None)).order_by(Message.id.desc()).limit(1))
    return human or session.scalar(latest.order_by(Message.id.desc()).limit(1))


def recipient_of(ticket: Ticket, latest: Message | None, support_address: str) -> Address | None:
    """Where a reply goes: the Reply-To of the customer's latest message, else the customer."""
    own = support_address.lower()
    candidates: list[tuple[str, str]] = []
    if latest is not None:
        for name, value in latest.headers or []:
            if name.lower() == "reply-to":
                candidates.extend(getaddresses([value]))
                break
    customer = ticket.customer
    if customer is not None:
        candidates.append((customer.name, customer.email))
    if latest is not None:
        candidates.append((latest.from_name, latest.from_address))
    for name, address in candidates:
        address = address.strip().lower()
        # Never our own address: a reply to ourselves would come back in as a new ticket.
        if "@" in address and address != own:
            display = name if name and "@" not in name else (customer.name if customer else "")
            try:
                return Address(display_name=" ".join((display or "").split()), addr_spec=address)
            except (ValueError, IndexError):
                continue  # unwritable as an address (e.g. odd quoting); try the next one
    return None


def threading_of(ticket: Ticket, latest: Message | None) -> tuple[str | None, list[str], str]:
    """In-Reply-To, References and Subject that keep our mail in the customer's thread."""
    if latest is None:
        return None, [], reply_subject(ticket.subject or "", ticket.number)
    references = thread_references(latest.references or [], latest.in_reply_to, latest.message_id)
    return latest.message_id, references, reply_subject(ticket.subject or latest.subject, ticket.number)


def send_reply(
    session: Session,
    *,
    ticket_id: int,
    agent_id: str,
    agent_name: str,
    text: str,
    html: str | None = None,
    template_name: str | None = None,
    template_version: int | None = None,
    now: datetime,
    settings: Settings,
    automatic: bool = False,
    await_customer: bool = True,
) -> Message:
    """Store a reply and queue it for SMTP; raises TicketError with a sentence for the agent.

    The agent claims an unclaimed ticket by answering it, and the ticket then waits on
    the customer (a resolved ticket stays resolved: a courtesy note after closing must
    not put it back in anyone's queue).

    An `automatic` reply (auto-acknowledgement, template automation) claims nothing: a
    robot is nobody's owner, and the ticket must stay in the unclaimed queue for a person.
    `await_customer=False` leaves the status alone (an acknowledgement answers nothing).
    """
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(f"There is no ticket with id {ticket_id}.")
    body = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if not body.strip():
        raise TicketError("Write a message before sending: an empty reply can't go out.")
    if len(body) > _TEXT_LIMIT:
        raise TicketError("This reply is too long to send as an email; shorten it or split it.")
    if automatic and ticket.auto_reason:
        # RFC 3834 §2: never answer automatic mail automatically; that is how loops start.
        raise TicketError(f"Ticket #{ticket.number} came from automatic mail; only a person may answer it.")

    latest = message_to_answer(session, ticket.id)
    to = recipient_of(ticket, latest, settings.support_address)
    if to is None:
        raise TicketError(f"Ticket #{ticket.number} has no customer address to reply to.")

    try:
        message = queue_outgoing(
            session,
            settings,
            ticket,
            latest,
            to,
            text=body,
            html=html,
            from_name=sender_name(agent_name),
            author=agent_id,
            template_name=template_name,
            template_version=template_version,
            auto_submitted=automatic,
            now=now,
        )
    except (ValueError, TypeError) as exc:
        raise TicketError(f"This reply can't be written as an email ({exc}).") from None
    record_event(
        session,
        ticket_id=ticket.id,
        actor=agent_id,
        action="replied",
        at=now,
        message_id=message.id,
        to=to.addr_spec,
        template=template_name,
        template_version=template_version,
        automatic=automatic,
    )

    if ticket.owner is None and ticket.status != "resolved" and not automatic:
        # The same conditional UPDATE as the Claim button: a colleague's claim that lands
        # first wins, and this reply still goes out.
        claim_ticket(session, ticket.id, agent_id, now)
    if await_customer and ticket.status not in {"waiting", "resolved"}:
        previous = ticket.status
        ticket.status = "waiting"
        record_event(
            session,
            ticket_id=ticket.id,
            actor=agent_id,
            action="waiting_on_customer",
            at=now,
            previous=previous,
            status="waiting",
        )
    ticket.updated_at = now
    if ticket.slack_channel:
        enqueue_ticket_refresh(session, ticket_id=ticket.id, lane=slack_lane(ticket.slack_channel), now=now)
    return message


def queue_outgoing(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    latest: Message | None,
    to: Address,
    *,
    text: str,
    html: str | None,
    from_name: str,
    author: str,
    template_name: str | None,
    template_version: int | None,
    auto_submitted: bool | str,
    now: datetime,
    view_text: str | None = None,
    dedupe_key: str | None = None,
) -> Message:
    """Store an outgoing email in the customer's thread and queue it for SMTP, in the caller's
    transaction. Raises ValueError or TypeError for what could never be sent."""
    message_id = new_message_id(settings.support_address)
    in_reply_to, references, subject = threading_of(ticket, latest)
    # Built once now only to refuse what could never be sent; the outbox builds it again.
    compose_reply(
        from_name=from_name,
        from_address=settings.support_address,
        to_address=to.addr_spec,
        to_name=to.display_name,
        subject=subject,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        text=text,
        html=html,
        date=now,
        auto_submitted=auto_submitted,
    )
    headers = [["To", str(to)]]
    if auto_submitted:
        value = auto_submitted if isinstance(auto_submitted, str) else "auto-replied"
        headers.append(["Auto-Submitted", value])
    message = Message(
        ticket_id=ticket.id,
        direction="out",
        mailbox=SENT_MAILBOX,
        dedupe_key=dedupe_key or message_id,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        from_address=settings.support_address,
        from_name=from_name,
        subject=subject,
        headers=headers,
        text=text,
        view_text=text if view_text is None else view_text,
        html=html,
        author=author,
        created_at=now,
        delivery_status="queued",
        template_name=template_name,
        template_version=template_version,
        defects=[],
    )
    session.add(message)
    session.flush()
    enqueue(
        session,
        kind=SMTP_SEND,
        lane=SMTP_LANE,
        now=now,
        ticket_id=ticket.id,
        payload={"message_id": message.id},
        dedupe_key=f"smtp-send:{message.id}",
    )
    return message


def stored_recipient(message: Message) -> Address:
    """The recipient `send_reply` decided on, read back from the stored To header."""
    for name, value in message.headers or []:
        if name.lower() == "to":
            addresses = policy.default.header_factory("To", value).addresses
            if addresses:
                return addresses[0]
    raise ValueError(f"reply {message.id} has no recipient")
