"""Erasing the rows about a set of tickets (and an address) from the database.

With `keep_stats` the rows the stats read are kept but emptied of everything about the
customer (a ticket keeps its times, status, owner and tags; a reply its author, time and
template; a survey its score without the comment; an event who did what and when), so the
figures of past periods do not change. Without it, the tickets and all their rows go.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, and_, cast, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from bot.storage.models import (
    Attachment,
    AutoReply,
    BlockedSender,
    Customer,
    Event,
    LedgerLine,
    Message,
    OutboxItem,
    Page,
    PageAttempt,
    Survey,
    SurveyOptOut,
    Ticket,
    TicketTag,
    TicketTriage,
    UrgencyRule,
)
from bot.storage.models_privacy import ErasedTicket

ERASED_ACTOR = "customer:erased"
# Keys of an event's data that say nothing about the customer, and that the stats read.
_KEPT_EVENT_KEYS = frozenset(
    {"previous", "status", "tag", "template", "template_name", "version", "round", "solved", "step", "level"}
)


def blank_messages(session: Session, message_ids: list[int]) -> None:
    """Empty messages of every text, header and address, keeping who replied when (stats)."""
    if not message_ids:
        return
    session.execute(delete(Attachment).where(Attachment.message_id.in_(message_ids)))
    session.execute(
        update(Message)
        .where(Message.id.in_(message_ids))
        .values(
            # Unique per mailbox: the id keeps blanked rows apart, and no mail's key looks like it.
            mailbox="",
            dedupe_key=literal("erased:") + cast(Message.id, String),
            message_id=None,
            in_reply_to=None,
            references=[],
            from_address="",
            from_name="",
            subject="",
            headers=[],
            text="",
            view_text="",
            html=None,
            raw=None,
            parse_error=None,
            defects=[],
            imap_uid=None,
            slack_ts=None,
        )
        .execution_options(synchronize_session=False)
    )


def anonymise_tickets(session: Session, ticket_ids: list[int], erasure_id: int) -> None:
    if not ticket_ids:
        return
    session.execute(
        update(Ticket)
        .where(Ticket.id.in_(ticket_ids))
        .values(subject="", customer_id=None, slack_channel=None, slack_ts=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        # "erased" is no status the answer page takes: the links in her mail stop working,
        # and nothing she answers there can bring a comment back.
        update(Survey).where(Survey.ticket_id.in_(ticket_ids)).values(comment=None, status="erased"),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(TicketTriage).where(TicketTriage.ticket_id.in_(ticket_ids)).values(reason=""),
        execution_options={"synchronize_session": False},
    )
    events = session.execute(
        select(Event.id, Event.actor, Event.data).where(Event.ticket_id.in_(ticket_ids))
    ).all()
    scrub_events(session, events)
    session.execute(
        ErasedTicket.__table__.insert(),
        [{"ticket_id": ticket_id, "erasure_id": erasure_id} for ticket_id in ticket_ids],
    )


def scrub_events(session: Session, events: list[Any]) -> None:
    changes = []
    for event_id, actor, data in events:
        kept = {k: v for k, v in (data or {}).items() if k in _KEPT_EVENT_KEYS}
        new_actor = ERASED_ACTOR if str(actor).startswith("customer:") else actor
        if kept != data or new_actor != actor:
            changes.append({"id": event_id, "actor": new_actor, "data": kept})
    if changes:
        session.execute(update(Event), changes, execution_options={"synchronize_session": False})


def delete_tickets(session: Session, ticket_ids: list[int]) -> None:
    """Every row of the tickets, the tickets last (foreign keys)."""
    if not ticket_ids:
        return
    message_ids = select(Message.id).where(Message.ticket_id.in_(ticket_ids)).scalar_subquery()
    session.execute(delete(Attachment).where(Attachment.message_id.in_(message_ids)))
    for model in (Message, Event, Survey, TicketTriage, TicketTag, AutoReply, OutboxItem):
        session.execute(delete(model).where(model.ticket_id.in_(ticket_ids)))  # type: ignore[attr-defined]
    session.execute(
        update(BlockedSender).where(BlockedSender.ticket_id.in_(ticket_ids)).values(ticket_id=None)
    )
    # A page that earned someone night pay stays (the ledger is theirs, not the customer's);
    # it holds no text of the customer, only who was woken when.
    paid = select(LedgerLine.page_id).where(LedgerLine.page_id.is_not(None))
    unpaid = select(Page.id).where(Page.ticket_id.in_(ticket_ids), Page.id.not_in(paid)).scalar_subquery()
    session.execute(delete(PageAttempt).where(PageAttempt.page_id.in_(unpaid)))
    session.execute(delete(Page).where(Page.id.in_(unpaid)))
    if session.scalar(select(Page.id).where(Page.ticket_id.in_(ticket_ids)).limit(1)) is not None:
        # Kept pages need their ticket: keep it, emptied, like with keep_stats.
        kept = list(session.scalars(select(Page.ticket_id).where(Page.ticket_id.in_(ticket_ids))))
        ticket_ids = [t for t in ticket_ids if t not in set(kept)]
        session.execute(
            update(Ticket).where(Ticket.id.in_(kept)).values(subject="", customer_id=None, slack_ts=None)
        )
    session.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))


def events_naming(session: Session, address: str) -> list[Any]:
    """Events naming the address (a block or an opt-out is logged with it): a scan of the whole
    log, read before the erasure's first write so SQLite's write lock is not held through it."""
    return list(
        session.execute(
            select(Event.id, Event.actor, Event.data, Event.ticket_id).where(
                or_(
                    Event.actor == f"customer:{address}",
                    cast(Event.data, String).contains(address, autoescape=True),
                )
            )
        ).all()
    )


def erase_address_rows(session: Session, address: str, events: list[Any], ticket_ids: list[int]) -> int:
    """Rows naming the address outside its tickets: blocks, opt-outs, rules, auto replies,
    and the `events` found by `events_naming` (those of her tickets are scrubbed already)."""
    removed = 0
    for statement in (
        # Addresses are compared lowercased, however they were stored.
        delete(BlockedSender).where(
            BlockedSender.kind == "address", func.lower(BlockedSender.value) == address
        ),
        delete(SurveyOptOut).where(func.lower(SurveyOptOut.email) == address),
        delete(UrgencyRule).where(UrgencyRule.kind == "sender", func.lower(UrgencyRule.pattern) == address),
        delete(AutoReply).where(func.lower(AutoReply.address) == address),
    ):
        removed += int(session.execute(statement).rowcount or 0)
    erased = set(ticket_ids)
    changes = [
        {
            "id": event_id,
            "actor": ERASED_ACTOR if str(actor).startswith("customer:") else actor,
            "data": {k: v for k, v in (data or {}).items() if address not in str(v).lower()},
        }
        for event_id, actor, data, ticket_id in events
        if ticket_id not in erased
    ]
    if changes:
        session.execute(update(Event), changes, execution_options={"synchronize_session": False})
    return removed


def drop_customer(session: Session, address: str) -> None:
    customer_id = session.scalar(select(Customer.id).where(func.lower(Customer.email) == address))
    if customer_id is None:
        return
    still = session.scalar(select(Ticket.id).where(Ticket.customer_id == customer_id).limit(1))
    if still is None:
        session.execute(delete(Customer).where(Customer.id == customer_id))


def drop_orphan_customers(session: Session, customer_ids: set[int]) -> None:
    """Customers whose last ticket was just erased (retention): nothing of theirs is left."""
    if not customer_ids:
        return
    in_use = select(Ticket.customer_id).where(
        and_(Ticket.customer_id.is_not(None), Ticket.customer_id.in_(customer_ids))
    )
    session.execute(delete(Customer).where(Customer.id.in_(customer_ids), Customer.id.not_in(in_use)))
