"""Each call's and SMS's story as Twilio tells it (queued, ringing, in-progress, completed,
busy, no-answer, failed; sent, delivered, undelivered), kept on its row and, for a page's
call, in the ticket's timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import OutboxItem
from bot.storage.models_phone import PhoneDelivery
from bot.tickets.events import SYSTEM, record_event

# What Twilio's status callbacks may say, calls and messages together.
KNOWN_STATUSES = frozenset(
    {
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "answered",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
        "accepted",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
    }
)


def record_status(
    session: Session, *, outbox: OutboxItem, kind: str, sid: str, status: str, at: datetime
) -> PhoneDelivery:
    """Note `status` for the call or SMS of outbox row `outbox`, once per status."""
    row = _row(session, outbox, kind, sid, status, at)
    if row.sid is None:
        row.sid = sid
    if any(entry["status"] == status for entry in row.timeline):
        return row
    entry = {"status": status, "at": at.isoformat()}
    if status == "queued" and row.timeline:
        # Twilio's first callback beat our own record of the create: queued still came first.
        row.timeline = [entry, *row.timeline]
    else:
        row.timeline = [*row.timeline, entry]
        row.status = status
    if row.ticket_id is not None and not row.test:
        record_event(
            session,
            ticket_id=row.ticket_id,
            actor=SYSTEM,
            action=f"page_{kind}_status",
            at=at,
            user=row.user_id,
            status=status,
            sid=sid,
        )
    session.flush()
    return row


def _row(
    session: Session, outbox: OutboxItem, kind: str, sid: str, status: str, at: datetime
) -> PhoneDelivery:
    """The row of `outbox`'s call or SMS, made now if need be.

    Twilio's first status callback and the worker's record of the create may come at the
    same moment; the loser of the insert reads the winner's row (a savepoint keeps the rest
    of its transaction).
    """
    row = session.scalar(select(PhoneDelivery).where(PhoneDelivery.outbox_id == outbox.id))
    if row is not None:
        return row
    payload = outbox.payload
    try:
        with session.begin_nested():
            row = PhoneDelivery(
                outbox_id=outbox.id,
                kind=kind,
                page_id=payload.get("page_id"),
                ticket_id=outbox.ticket_id,
                user_id=str(payload.get("user") or ""),
                number=str(payload.get("to") or ""),
                sid=sid,
                status=status,
                timeline=[],
                test=bool(payload.get("test")),
                created_at=at,
            )
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        found = session.scalar(select(PhoneDelivery).where(PhoneDelivery.outbox_id == outbox.id))
        assert found is not None, "the insert failed for another reason than the row being there"
        return found
