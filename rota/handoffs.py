"""Hand-offs: the reminder the day before a duty, and the hand-over when it starts.

Each step is claimed by setting its marker on the duty in the same transaction
that queues its effects, so it happens once: a job that runs late (the bot was
down) still does it, once; a job that runs twice finds the marker set. A duty that
ended while nobody was running is marked without announcing a hand-off that would
be news from the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import RotaDuty
from bot.tickets.events import record_event
from rota.store import SYSTEM, DutyView, _duty_view

REMIND_AHEAD = timedelta(hours=24)


@dataclass(frozen=True)
class HandOff:
    duty: DutyView
    previous: str | None  # who held the phone just before (None: nobody, or the same person)
    next_start: datetime | None  # when the duty after this one starts, if published
    continues: bool = False  # the same person held the duty just before: nothing changes hands


def due_reminders(session: Session, now: datetime, ahead: timedelta = REMIND_AHEAD) -> list[DutyView]:
    """Duties starting within `ahead` whose holder has not been reminded; marks them reminded."""
    rows = session.scalars(
        select(RotaDuty)
        .where(
            RotaDuty.reminded_at.is_(None),
            RotaDuty.user_id.is_not(None),
            RotaDuty.start > now,
            RotaDuty.start <= now + ahead,
        )
        .order_by(RotaDuty.start)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.reminded_at = now
        _system_event(session, "rota.reminded", now, duty=row.id, user=row.user_id)
    return [_duty_view(row) for row in rows]


def due_handoffs(session: Session, now: datetime) -> list[HandOff]:
    """Duties that have started and not been handed over; marks them. Stale ones are marked silently."""
    rows = session.scalars(
        select(RotaDuty)
        .where(RotaDuty.handed_off_at.is_(None), RotaDuty.start <= now)
        .order_by(RotaDuty.start)
        .with_for_update(skip_locked=True)
    ).all()
    handoffs: list[HandOff] = []
    for row in rows:
        row.handed_off_at = now
        if row.end <= now:
            _system_event(session, "rota.handoff_missed", now, duty=row.id)
            continue
        before = session.scalar(select(RotaDuty).where(RotaDuty.end == row.start).limit(1))
        after = session.scalar(select(RotaDuty).where(RotaDuty.start == row.end).limit(1))
        previous = before.user_id if before is not None and before.user_id != row.user_id else None
        _system_event(
            session,
            "rota.handoff",
            now,
            duty=row.id,
            user=row.user_id,
            previous=previous,
            late_seconds=int((now - row.start).total_seconds()),
        )
        continues = before is not None and before.user_id == row.user_id
        handoffs.append(
            HandOff(_duty_view(row), previous, after.start if after is not None else None, continues)
        )
    return handoffs


def _system_event(session: Session, action: str, now: datetime, **data: object) -> None:
    """A rota event the scheduler caused, about no ticket."""
    record_event(session, ticket_id=None, actor=SYSTEM, action=action, at=now, **data)
