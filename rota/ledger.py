"""The compensation ledger as stored: duties settled into earned entries, days taken,
managers' adjustments, balances and a CSV export.

The arithmetic is rota/compensation.py's; this module keeps the entries. A duty is
settled once, when it ends (a unique key makes a retried job harmless), and its
entry is the change in the holder's rounded running total, so a person's balance
is always the exact sum rounded once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.storage.models import LedgerLine, Page, RotaDuty, Ticket
from bot.tickets.events import record_event
from bot.tickets.status import TicketStatus
from rota.compensation import CompensationPolicy, earned_entries, page_work_earning
from rota.duties import Duty
from rota.errors import BadAmount, NoDaysGiven, NotDaysInLieu, ReasonNeeded
from rota.store import SYSTEM, _require_member

_MAX_ADJUSTMENT = Decimal(10_000)


@dataclass(frozen=True)
class LineView:
    id: int
    user_id: str
    kind: str
    amount: Decimal
    unit: str
    at: datetime
    note: str
    created_by: str

    @property
    def signed(self) -> Decimal:
        return -self.amount if self.kind == "taken" else self.amount


def settle_duties(
    session: Session, policy: CompensationPolicy, calendar: BusinessCalendar, *, now: datetime
) -> list[LineView]:
    """Write what each duty that has ended earned; each duty once."""
    due = session.scalars(
        select(RotaDuty)
        .where(RotaDuty.end <= now, RotaDuty.settled_at.is_(None))
        .order_by(RotaDuty.end)
        .with_for_update(skip_locked=True)
    ).all()
    written: list[LineView] = []
    for row in due:
        row.settled_at = now
        if row.user_id is None:
            continue
        # Rounding is cumulative per person: recompute over everything they held, keep the last step.
        held = session.scalars(
            select(RotaDuty).where(
                RotaDuty.user_id == row.user_id, RotaDuty.end <= row.end, RotaDuty.start < row.end
            )
        ).all()
        entries = earned_entries([Duty(d.start, d.end, d.user_id) for d in held], policy, calendar)
        mine = [e for e in entries if e.at == row.end]
        if not mine:
            continue
        entry = mine[-1]
        line = LedgerLine(
            user_id=row.user_id,
            kind="earned",
            amount=entry.amount,
            unit=entry.unit,
            at=row.end,
            note=entry.note,
            duty_id=row.id,
            created_by=SYSTEM,
            created_at=now,
        )
        written.append(_kept(session, line))
    return written


def settle_pages(
    session: Session,
    policy: CompensationPolicy,
    calendar: BusinessCalendar,
    *,
    now: datetime,
    workday_hours: Decimal = Decimal(8),
) -> list[LineView]:
    """Credit night work on pages: whoever acknowledged earns the after-hours time from the
    page to the ticket's resolution. Each page once; a page still open waits."""
    rows = session.execute(
        select(Page, Ticket)
        .join(Ticket, Ticket.id == Page.ticket_id)
        .outerjoin(LedgerLine, LedgerLine.page_id == Page.id)
        .where(
            Page.acknowledged_by.is_not(None),
            Ticket.status == TicketStatus.RESOLVED,
            Ticket.resolved_at.is_not(None),
            Ticket.resolved_at <= now,
            LedgerLine.id.is_(None),
        )
        .order_by(Page.id)
    ).all()
    written: list[LineView] = []
    for page, ticket in rows:
        assert page.acknowledged_by is not None and ticket.resolved_at is not None
        amount = page_work_earning(
            page.started_at, ticket.resolved_at, policy, calendar, workday_hours=workday_hours
        )
        local = page.started_at.astimezone(calendar.tz)
        line = LedgerLine(
            user_id=page.acknowledged_by,
            kind="earned",
            amount=amount,
            unit=policy.unit,
            at=ticket.resolved_at,
            note=f"night work on ticket #{ticket.number}, paged {local:%Y-%m-%d %H:%M} ({calendar.tz.key})",
            page_id=page.id,
            created_by=SYSTEM,
            created_at=now,
        )
        written.append(_kept(session, line))
    return written


def take_days(
    session: Session, user_id: str, days: list[date], *, by: str, now: datetime, unit: str = "days"
) -> LineView:
    """Record days off in lieu taken (one entry, one day per date)."""
    _require_member(session, user_id)
    if not days:
        raise NoDaysGiven()
    if unit != "days":
        raise NotDaysInLieu(unit)
    note = "days off: " + ", ".join(d.isoformat() for d in sorted(set(days)))
    line = LedgerLine(
        user_id=user_id,
        kind="taken",
        amount=Decimal(len(set(days))),
        unit="days",
        at=now,
        note=note,
        created_by=by,
        created_at=now,
    )
    view = _kept(session, line)
    record_event(session, ticket_id=None, actor=by, action="rota.comp_taken", at=now, user=user_id, note=note)
    return view


def adjust(
    session: Session, user_id: str, amount: Decimal, reason: str, *, by: str, now: datetime, unit: str
) -> LineView:
    """A manager's correction, positive or negative, with its reason."""
    _require_member(session, user_id)
    if not reason.strip():
        raise ReasonNeeded()
    if not amount.is_finite() or amount == 0 or abs(amount) > _MAX_ADJUSTMENT:
        raise BadAmount(amount)
    line = LedgerLine(
        user_id=user_id,
        kind="adjusted",
        amount=amount,
        unit=unit,
        at=now,
        note=reason.strip()[:500],
        created_by=by,
        created_at=now,
    )
    view = _kept(session, line)
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="rota.comp_adjusted",
        at=now,
        user=user_id,
        amount=str(amount),
    )
    return view


def lines(session: Session, *, user_id: str | None = None) -> list[LineView]:
    query = select(LedgerLine).order_by(LedgerLine.at, LedgerLine.id)
    if user_id is not None:
        query = query.where(LedgerLine.user_id == user_id)
    return [_line_view(line) for line in session.scalars(query)]


def balances(session: Session) -> dict[tuple[str, str], Decimal]:
    """(user, unit) → earned + adjusted − taken."""
    totals: dict[tuple[str, str], Decimal] = {}
    for line in lines(session):
        key = (line.user_id, line.unit)
        totals[key] = totals.get(key, Decimal(0)) + line.signed
    return totals


def ledger_csv(session: Session, names: dict[str, str] | None = None) -> str:
    """Every entry, oldest first, with the running balance per person: for payroll."""
    names = names or {}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date_utc", "user_id", "name", "kind", "amount", "unit", "balance", "note", "by"])
    running: dict[tuple[str, str], Decimal] = {}
    for line in lines(session):
        key = (line.user_id, line.unit)
        running[key] = running.get(key, Decimal(0)) + line.signed
        writer.writerow(
            [
                line.at.strftime("%Y-%m-%d %H:%M"),
                line.user_id,
                names.get(line.user_id, ""),
                line.kind,
                _plain(line.signed),
                line.unit,
                _plain(running[key]),
                _csv_safe(line.note),
                line.created_by,
            ]
        )
    return out.getvalue()


def _plain(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):f}"


def _csv_safe(text: str) -> str:
    # A note starting with = + - @ would run as a formula when the export is opened in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _kept(session: Session, line: LedgerLine) -> LineView:
    """Add the line and flush it, so its view carries the id it was given."""
    session.add(line)
    session.flush()
    return _line_view(line)


def _line_view(line: LedgerLine) -> LineView:
    return LineView(
        line.id,
        line.user_id,
        line.kind,
        Decimal(line.amount),
        line.unit,
        line.at,
        line.note,
        line.created_by,
    )
