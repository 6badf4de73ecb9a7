"""Answering a customer: a reply is stored, audited and queued for SMTP in one transaction.

Everything the email needs (recipient, subject, threading headers, Message-ID) is
decided here and stored on the Message, so the outbox can send the same email as
often as it must and the Slack thread can later show exactly what went out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.mail.compose import compose_reply, new_message_id, reply_subject, sender_name, thread_references
from bot.outbox.queue import SMTP_SEND, enqueue, enqueue_ticket_refresh, slack_lane
from bot.storage.models import Message, Ticket
from bot.tickets.events import record_event
from bot.tickets.status import TicketStatus
from bot.tickets.workflow import TicketError, claim_ticket

if TYPE_CHECKING:
    from bot.config import Settings

# All replies share one lane: the outbox sends them in the order agents pressed Send.
SMTP_LANE = "smtp"
# The Message.mailbox of our own replies, which keeps their dedupe keys apart from mail we fetched.
SENT_MAILBOX = "sent"
_TEXT_LIMIT = 200_000

# Reply all, but never a mass mailing: a customer's mail with 500 addresses on it must not
# turn one agent's answer into 500 emails from our domain.
CC_LIMIT = 20
# An address as SMTP takes it without SMTPUTF8: a dot-atom local part and a domain with a
# dot in it (`bob@gmail` is a typo, not an address). Domains per RFC 1035 labels.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
_ADDRESS_LIMIT = 254  # RFC 5321 §4.5.3.1.3, the longest path
_NAME_LIMIT = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_QUOTED_PAIR = re.compile(r"\\(.)")
# What an agent's Cc may hold: 20 addresses with names, and no more text than that.
_CC_TEXT_LIMIT = CC_LIMIT * (_ADDRESS_LIMIT + _NAME_LIMIT + 8)
# How much of a customer's To or Cc header is read for the default: a hostile header of
# megabytes is kept in the raw source but must not stall opening the reply modal.
_HEADER_READ_LIMIT = 64 * 1024


class CcError(TicketError):
    """The Cc of a reply cannot be used as given; the message says what to change."""


@dataclass(frozen=True)
class Recipients:
    """Who a reply by a person goes to, as the modal proposes it."""

    to: Address | None
    cc: tuple[Address, ...]
    left_out: int  # addresses on the customer's mail past CC_LIMIT, not copied


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


def reply_recipients(session: Session, ticket_id: int, support_address: str) -> Recipients:
    """To and the default Cc of a reply by a person, as the reply modal shows them."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return Recipients(None, (), 0)
    latest = message_to_answer(session, ticket.id)
    to = recipient_of(ticket, latest, support_address)
    cc, left_out = default_cc(latest, to, support_address)
    return Recipients(to, tuple(cc), left_out)


def default_cc(latest: Message | None, to: Address | None, support_address: str) -> tuple[list[Address], int]:
    """Reply all: everyone on the customer's latest message (To, then Cc) but us and the
    reply's own recipient, once each, at most CC_LIMIT; and how many more were left out.

    Its sender comes first when they asked for no other address (no Reply-To): when a
    colleague the customer copied answers with reply-all, the To stays the customer and
    the colleague who wrote must still get our answer.

    Addresses we could not send to (malformed, or not plain ASCII) are skipped: the
    customer's header is not the agent's mistake to be told about.
    """
    if latest is None:
        return [], 0
    headers = [(name.lower(), value) for name, value in latest.headers or []]
    found: list[Address] = []
    if latest.from_address and not any(name == "reply-to" for name, _ in headers):
        sender = _one_address(f"{_quoted(latest.from_name)} <{latest.from_address}>")
        if sender is not None:
            found.append(sender)
    found += [
        address
        for kind in ("to", "cc")
        for name, value in headers
        if name == kind
        for address in (_one_address(piece) for piece in _split_list(_unfold(value[:_HEADER_READ_LIMIT])))
        if address is not None
    ]
    unique = _without(found, to, support_address)
    return unique[:CC_LIMIT], max(0, len(unique) - CC_LIMIT)


def parse_cc(text: str, support_address: str) -> list[Address]:
    """The Cc an agent typed (addresses separated by commas, semicolons or new lines, each
    `name@example.com` or `Name <name@example.com>`); raises CcError saying what is wrong."""
    if len(text) > _CC_TEXT_LIMIT:
        raise CcError(f"That is more than a Cc can hold; copy at most {CC_LIMIT} people.")
    own = support_address.lower()
    found: list[Address] = []
    for piece in _split_list(text):
        if not piece.strip():
            continue
        address = _one_address(piece)
        if address is None:
            shown = " ".join(piece.split())
            shown = shown if len(shown) <= 60 else shown[:59] + "…"
            raise CcError(f"“{shown}” is not an email address; separate addresses with commas.")
        if address.addr_spec.lower() == own:
            raise CcError(f"{own} is our own support address: a copy would come back as a new ticket.")
        found.append(address)
    unique = _without(found, None, support_address)
    if len(unique) > CC_LIMIT:
        raise CcError(f"A reply can be copied to at most {CC_LIMIT} people; this lists {len(unique)}.")
    return unique


def format_cc(addresses: Sequence[Address]) -> str:
    """A Cc as one line (how it is stored in the reply's headers and prefilled in the modal)."""
    return ", ".join(str(a) for a in addresses)


def _checked_cc(cc: Sequence[Address], to: Address, support_address: str) -> list[Address]:
    """The Cc a caller asked for, refused if the modal would have refused it, less the To."""
    for address in cc:
        spec = address.addr_spec
        if len(spec) > _ADDRESS_LIMIT or not _ADDR_SPEC.fullmatch(spec):
            raise CcError(f"“{spec[:60]}” is not an email address.")
        if spec.lower() == support_address.lower():
            raise CcError(f"{support_address} is our own support address and cannot be copied.")
    unique = _without(cc, to, support_address)
    if len(unique) > CC_LIMIT:
        raise CcError(f"A reply can be copied to at most {CC_LIMIT} people; this lists {len(unique)}.")
    return unique


def _without(addresses: Sequence[Address], to: Address | None, support_address: str) -> list[Address]:
    # Case-insensitive: Ann@Example.com and ann@example.com are one mailbox in practice,
    # and our own address in capitals is still ourselves (a copy would loop back as a ticket).
    seen = {support_address.lower()}
    if to is not None:
        seen.add(to.addr_spec.lower())
    unique: list[Address] = []
    for address in addresses:
        key = address.addr_spec.lower()
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return unique


def _split_list(text: str) -> Iterator[str]:
    """The pieces of an address list: split at commas, semicolons (Outlook's separator),
    colons (a group's name) and line breaks, but not inside quotes or angle brackets."""
    piece: list[str] = []
    quoted = escaped = angle = False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif not angle and ch in ",;:\r\n":
            yield "".join(piece)
            piece = []
            continue
        piece.append(ch)
    yield "".join(piece)


def _quoted(name: str) -> str:
    escaped = (name or "").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _unfold(value: str) -> str:
    # A stored header keeps its folding; a line break there is not a separator.
    return value.replace("\r", "").replace("\n", "")


def _one_address(piece: str) -> Address | None:
    """`name@example.com` or `Name <name@example.com>` as an Address we can send to, else None."""
    piece = " ".join(piece.split())
    if piece.endswith(">") and "<" in piece:
        at = piece.rindex("<")
        name, spec = piece[:at].strip(), piece[at + 1 : -1].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = _QUOTED_PAIR.sub(r"\1", name[1:-1])
    else:
        name, spec = "", piece
    if not spec or len(spec) > _ADDRESS_LIMIT or not _ADDR_SPEC.fullmatch(spec):
        return None
    name = " ".join(_CONTROL.sub(" ", name).split())[:_NAME_LIMIT]
    try:
        return Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError):
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
    cc: Sequence[Address] | None = None,
) -> Message:
    """Store a reply and queue it for SMTP; raises TicketError with a sentence for the agent.

    The agent claims an unclaimed ticket by answering it, and the ticket then waits on
    the customer (a resolved ticket stays resolved: a courtesy note after closing must
    not put it back in anyone's queue).

    An `automatic` reply (auto-acknowledgement, template automation) claims nothing: a
    robot is nobody's owner, and the ticket must stay in the unclaimed queue for a person.
    `await_customer=False` leaves the status alone (an acknowledgement answers nothing).

    `cc` is who else gets the reply (the To and duplicates are dropped); None means
    everyone else on the customer's latest mail (`default_cc`). An automatic reply is
    never copied to anyone: RFC 3834 §3.1.2 sends automatic responses to the sender
    only, and copying whoever a mail names would make us a spam reflector.
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
    if automatic:
        copies: list[Address] = []
    elif cc is None:
        copies = default_cc(latest, to, settings.support_address)[0]
    else:
        copies = _checked_cc(cc, to, settings.support_address)

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
            cc=copies,
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
        cc=[a.addr_spec for a in copies],
        template=template_name,
        template_version=template_version,
        automatic=automatic,
    )

    if ticket.owner is None and ticket.status != TicketStatus.RESOLVED and not automatic:
        # The same conditional UPDATE as the Claim button: a colleague's claim that lands
        # first wins, and this reply still goes out.
        claim_ticket(session, ticket.id, agent_id, now)
    if await_customer and ticket.status not in {TicketStatus.WAITING, TicketStatus.RESOLVED}:
        previous = ticket.status
        ticket.status = TicketStatus.WAITING
        record_event(
            session,
            ticket_id=ticket.id,
            actor=agent_id,
            action="waiting_on_customer",
            at=now,
            previous=previous,
            status=TicketStatus.WAITING,
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
    cc: Sequence[Address] = (),
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
        cc=cc,
    )
    headers = [["To", str(to)]]
    if cc:
        # Stored beside the To so every retry copies exactly the people the agent sent to.
        headers.append(["Cc", format_cc(cc)])
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


def stored_cc(message: Message) -> list[Address]:
    """Who `send_reply` decided to copy, read back from the stored Cc header (none: [])."""
    for name, value in message.headers or []:
        if name.lower() == "cc":
            try:
                return list(policy.default.header_factory("Cc", value).addresses)
            except (HeaderParseError, IndexError) as exc:
                raise ValueError(f"reply {message.id} has an unreadable Cc: {exc}") from None
    return []
