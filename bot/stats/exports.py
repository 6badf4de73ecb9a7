"""CSV exports for a period: tickets, the audit log, the rota, the compensation ledger.

Times are UTC in ISO 8601, so a spreadsheet or a script reads them unambiguously. Any
text cell that a spreadsheet would run as a formula is defused, as the ledger export does.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.stats.queries import first_responses
from bot.storage.models import Customer, Event, LedgerLine, Tag, Ticket, TicketTag
from rota import store
from rota.load import LoadWeights, duty_load

ExportKind = Literal["tickets", "events", "rota", "ledger"]
EXPORT_KINDS: tuple[ExportKind, ...] = ("tickets", "events", "rota", "ledger")
_CHUNK = 5000

TICKET_COLUMNS = [
    "number",
    "created_utc",
    "status",
    "owner",
    "first_response_utc",
    "resolved_utc",
    "customer",
    "subject",
    "tags",
]
EVENT_COLUMNS = ["at_utc", "ticket", "actor", "action", "data"]
ROTA_COLUMNS = ["start_utc", "end_utc", "user_id", "name", "origin", "after_hours", "load"]
LEDGER_COLUMNS = ["date_utc", "user_id", "name", "kind", "amount", "unit", "balance", "note", "by"]


def csv_safe(value: object) -> str:
    text = "" if value is None else str(value)
    # = + - @ (and tab, CR) at the start make spreadsheets evaluate the cell: customer text can't.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def tickets_csv(session: Session, start: datetime, end: datetime) -> str:
    """Tickets created in [start, end), oldest first."""
    first = {
        r.ticket_id: datetime.fromtimestamp(r.first_reply, UTC)
        for r in first_responses(session, start, end)
        if r.first_reply is not None
    }
    tags: dict[int, list[str]] = {}
    for ticket_id, name in session.execute(
        select(TicketTag.ticket_id, Tag.name)
        .join(Tag, Tag.id == TicketTag.tag_id)
        .join(Ticket, Ticket.id == TicketTag.ticket_id)
        .where(Ticket.created_at >= start, Ticket.created_at < end)
        .order_by(Tag.name)
    ):
        tags.setdefault(int(ticket_id), []).append(str(name))
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.number,
            Ticket.created_at,
            Ticket.status,
            Ticket.owner,
            Ticket.resolved_at,
            Customer.email,
            Ticket.subject,
        )
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(Ticket.created_at >= start, Ticket.created_at < end)
        .order_by(Ticket.created_at, Ticket.id)
        .execution_options(yield_per=_CHUNK)
    )
    return _write(
        TICKET_COLUMNS,
        (
            [
                number,
                _when(created),
                status,
                owner or "",
                _when(first.get(ticket_id)),
                _when(resolved),
                csv_safe(email),
                csv_safe(subject),
                ";".join(tags.get(ticket_id, [])),
            ]
            for ticket_id, number, created, status, owner, resolved, email, subject in rows
        ),
    )


def events_csv(session: Session, start: datetime, end: datetime) -> str:
    """The audit log of [start, end), in order, with each event's details as JSON."""
    rows = session.execute(
        select(Event.at, Ticket.number, Event.actor, Event.action, Event.data)
        .outerjoin(Ticket, Ticket.id == Event.ticket_id)
        .where(Event.at >= start, Event.at < end)
        .order_by(Event.at, Event.id)
        .execution_options(yield_per=_CHUNK)
    )
    return _write(
        EVENT_COLUMNS,
        (
            [
                _when(at),
                "" if number is None else number,
                csv_safe(actor),
                action,
                csv_safe(json.dumps(data or {}, ensure_ascii=False, sort_keys=True, default=str)),
            ]
            for at, number, actor, action, data in rows
        ),
    )


def rota_csv(
    session: Session, start: datetime, end: datetime, calendar: BusinessCalendar, weights: LoadWeights
) -> str:
    """Duties overlapping [start, end), whole (not clipped), with their after-hours and load."""
    names = {m.user_id: m.name for m in store.members(session, active_only=False)}
    rows: list[list[Any]] = []
    for duty in store.duties_between(session, start, end):
        stretches = calendar.after_hours(duty.start, duty.end)
        hours = sum(s.duration.total_seconds() for s in stretches) / 3600
        rows.append(
            [
                _when(duty.start),
                _when(duty.end),
                duty.user_id or "",
                csv_safe(names.get(duty.user_id or "", "")),
                duty.origin,
                f"{hours:.2f}",
                f"{duty_load(stretches, weights):.2f}",
            ]
        )
    return _write(ROTA_COLUMNS, rows)


def ledger_csv(session: Session, start: datetime, end: datetime) -> str:
    """Ledger entries dated in [start, end), each with the person's running balance after it
    (counted from the very first entry, so the figures match `/oncall comp`)."""
    names = {m.user_id: m.name for m in store.members(session, active_only=False)}
    running: dict[tuple[str, str], Decimal] = {}
    for user, unit, total in session.execute(
        select(
            LedgerLine.user_id,
            LedgerLine.unit,
            # Taken days are stored positive and count against the balance.
            func.sum(LedgerLine.amount * case((LedgerLine.kind == "taken", -1), else_=1)),
        )
        .where(LedgerLine.at < start)
        .group_by(LedgerLine.user_id, LedgerLine.unit)
    ):
        running[(str(user), str(unit))] = Decimal(total or 0)
    rows: list[list[Any]] = []
    for line in session.scalars(
        select(LedgerLine)
        .where(and_(LedgerLine.at >= start, LedgerLine.at < end))
        .order_by(LedgerLine.at, LedgerLine.id)
    ):
        signed = -Decimal(line.amount) if line.kind == "taken" else Decimal(line.amount)
        key = (line.user_id, line.unit)
        running[key] = running.get(key, Decimal(0)) + signed
        rows.append(
            [
                line.at.strftime("%Y-%m-%d %H:%M"),
                line.user_id,
                csv_safe(names.get(line.user_id, "")),
                line.kind,
                _plain(signed),
                line.unit,
                _plain(running[key]),
                csv_safe(line.note),
                line.created_by,
            ]
        )
    return _write(LEDGER_COLUMNS, rows)


def _plain(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):f}"


def export_csv(
    kind: ExportKind,
    session: Session,
    start: datetime,
    end: datetime,
    calendar: BusinessCalendar,
    weights: LoadWeights,
) -> str:
    if kind == "tickets":
        return tickets_csv(session, start, end)
    if kind == "events":
        return events_csv(session, start, end)
    if kind == "rota":
        return rota_csv(session, start, end, calendar, weights)
    return ledger_csv(session, start, end)
