"""Writing a planned batch of mails (`bot.tickets.ingest_plan`): one insert per table,
ids read back in mail order, and the outbox rows that will show it all in Slack."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from bot.outbox.queue import (
    MAX_UPLOADS_PER_MESSAGE,
    SLACK_ATTACHMENT_UPLOAD,
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_POST,
    SLACK_TICKET_REFRESH,
    files_lane,
    update_lane,
    upload_key,
    upload_payload,
)
from bot.storage.counters import TICKET_NUMBER
from bot.storage.models import Attachment, Counter, Customer, Event, Message, OutboxItem, Ticket
from bot.tickets.ingest_plan import BatchPlan, EventPlan, MessagePlan, OutboxPlan, TicketPlan, chunks
from bot.tickets.prepared_mail import UNREADABLE_SUBJECT
from bot.tickets.spam import SPAM


def write_batch(batch: BatchPlan) -> None:
    """Insert everything the batch planned, in mail order, with one statement per table."""
    session = batch.session
    if batch.new_customers:
        ids = session.scalars(
            insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [{"email": c.email, "name": c.name, "created_at": batch.now} for c in batch.new_customers],
        ).all()
        for customer, customer_id in zip(batch.new_customers, ids, strict=True):
            customer.id = customer_id
    for customer in batch.customers.values():
        if customer.renamed:
            session.execute(update(Customer).where(Customer.id == customer.id).values(name=customer.name))

    if batch.unused_numbers:
        # Still ours: the UPDATE that took them holds the counter's row lock.
        session.execute(
            update(Counter)
            .where(Counter.name == TICKET_NUMBER)
            .values(value=Counter.value - batch.unused_numbers)
        )
    if batch.new_tickets:
        ids = session.scalars(
            insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True),
            [_ticket_row(batch, ticket) for ticket in batch.new_tickets],
        ).all()
        for ticket, ticket_id in zip(batch.new_tickets, ids, strict=True):
            ticket.id = ticket_id

    if batch.messages:
        ids = session.scalars(
            insert(Message).returning(Message.id, sort_by_parameter_order=True),
            [message_row(batch, message) for message in batch.messages],
        ).all()
        for message, message_id in zip(batch.messages, ids, strict=True):
            message.id = message_id
        owners = [
            message
            for message in batch.messages
            if message.mail.parsed is not None
            for _ in message.mail.parsed.attachments
        ]
        attachments = [
            {
                "message_id": message.id,
                "filename": a.filename[:500],
                "content_type": a.content_type[:200],
                "size": a.size,
                "slack_file_id": None,
            }
            for message in batch.messages
            if message.mail.parsed is not None
            for a in message.mail.parsed.attachments
        ]
        if attachments:
            attachment_ids = session.scalars(
                insert(Attachment).returning(Attachment.id, sort_by_parameter_order=True), attachments
            ).all()
            for message, attachment_id in zip(owners, attachment_ids, strict=True):
                message.attachment_ids.append(attachment_id)

    if batch.events:
        session.execute(insert(Event), [_event_row(batch, event) for event in batch.events])
    _write_outbox(batch)
    # The followed-up tickets' new status and updated_at.
    session.flush()


def _write_outbox(batch: BatchPlan) -> None:
    session = batch.session
    keyed = {_outbox_key(item): item for item in batch.outbox}
    keyed.pop(None, None)
    taken: set[str] = set()
    for keys in chunks([key for key in keyed if key is not None]):
        taken.update(session.scalars(select(OutboxItem.dedupe_key).where(OutboxItem.dedupe_key.in_(keys))))
    waiting: set[int] = set()
    refreshed = [item.ticket.id for item in batch.outbox if item.kind == SLACK_TICKET_REFRESH]
    for chunk in chunks(refreshed):
        waiting.update(
            session.scalars(
                select(OutboxItem.ticket_id).where(
                    OutboxItem.ticket_id.in_(chunk),
                    OutboxItem.kind.in_([SLACK_TICKET_REFRESH, SLACK_TICKET_POST]),
                    OutboxItem.status == "pending",
                    OutboxItem.attempts == 0,
                )
            )
        )
    rows = []
    for item in batch.outbox:
        key = _outbox_key(item)
        if key is not None and key in taken:
            continue
        if item.kind == SLACK_TICKET_REFRESH and item.ticket.id in waiting:
            continue
        rows.append(
            _outbox_row(
                batch,
                item.kind,
                update_lane(batch.lane) if item.kind == SLACK_TICKET_REFRESH else batch.lane,
                {"message_id": item.message.id} if item.message is not None else {},
                item.ticket.id,
                key,
            )
        )
    rows.extend(_upload_rows(batch))
    if rows:
        session.execute(insert(OutboxItem), rows)


def _outbox_row(
    batch: BatchPlan, kind: str, lane: str, payload: dict[str, Any], ticket_id: int, key: str | None
) -> dict[str, Any]:
    """An OutboxItem as `enqueue` would add it, for one bulk insert."""
    return {
        "kind": kind,
        "lane": lane,
        "payload": payload,
        "ticket_id": ticket_id,
        "dedupe_key": key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": batch.now,
        "created_at": batch.now,
        "result": {},
        "last_error": None,
        "delivered_at": None,
    }


def _upload_rows(batch: BatchPlan) -> list[dict[str, Any]]:
    """One upload per attachment of a customer's own mail, in mail and part order.

    Automatic mail (bounces, auto-replies) and mail set aside as unreadable get none:
    what they carry is a report or unknown, not something a customer sent us to see.
    Which attachments are worth a file (not a signature logo, not over the size
    limit) is decided at delivery, where the bytes are read back from the raw source.
    """
    rows = []
    for message in batch.messages:
        parsed = message.mail.parsed
        if parsed is None or parsed.auto_reason is not None or message.ticket.status == SPAM:
            continue
        for attachment_id in message.attachment_ids[:MAX_UPLOADS_PER_MESSAGE]:
            rows.append(
                _outbox_row(
                    batch,
                    SLACK_ATTACHMENT_UPLOAD,
                    files_lane(batch.lane),
                    upload_payload(attachment_id, message.id, opens_ticket=message.opens_ticket),
                    message.ticket.id,
                    upload_key(attachment_id),
                )
            )
    return rows


def _outbox_key(item: OutboxPlan) -> str | None:
    if item.kind == SLACK_TICKET_POST:
        return f"ticket-post:{item.ticket.id}"
    if item.kind == SLACK_THREAD_MESSAGE and item.message is not None:
        return f"thread-message:{item.message.id}"
    return None


def _ticket_row(batch: BatchPlan, ticket: TicketPlan) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "customer_id": ticket.customer.id if ticket.customer is not None else None,
        "subject": ticket.subject,
        "status": ticket.status,
        "owner": None,
        "auto_reason": ticket.auto_reason,
        "malformed": ticket.malformed,
        "created_at": batch.now,
        "updated_at": batch.now,
        "resolved_at": None,
        "slack_channel": batch.channel,
        "slack_ts": None,
        "nudged_at": None,
    }


def message_row(batch: BatchPlan, message: MessagePlan) -> dict[str, Any]:
    """The `messages` row one planned mail becomes (unreadable mail: kept raw, flagged)."""
    mail, parsed = message.mail, message.mail.parsed
    row: dict[str, Any] = {
        "ticket_id": message.ticket.id,
        "direction": "in",
        "mailbox": batch.mailbox,
        "dedupe_key": mail.dedupe_key,
        "raw": mail.raw,
        "imap_uid": mail.uid,
        "created_at": batch.now,
        "author": None,
        "slack_ts": None,
        "delivery_status": None,
        "template_name": None,
        "template_version": None,
    }
    if parsed is None:
        row.update(
            message_id=None,
            in_reply_to=None,
            references=[],
            from_address="",
            from_name="",
            subject=UNREADABLE_SUBJECT,
            headers=[],
            text="",
            view_text="",
            html=None,
            auto_reason="malformed",
            parse_error=(mail.error or "unreadable")[:2000],
            defects=[],
            sent_at=None,
        )
        return row
    row.update(
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
        auto_reason=parsed.auto_reason,
        parse_error=None,
        defects=list(parsed.defects),
        sent_at=parsed.date,
    )
    return row


def _event_row(batch: BatchPlan, event: EventPlan) -> dict[str, Any]:
    data = event.data if event.message is None else {"message_id": event.message.id, **event.data}
    return {
        "ticket_id": event.ticket.id,
        "actor": event.actor,
        "action": event.action,
        "at": batch.now,
        "data": data,
    }
