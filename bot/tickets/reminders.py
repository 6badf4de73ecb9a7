"""Nudging unclaimed tickets: a ticket nobody has picked up gets a reminder in its thread.

Age is counted in business minutes, so a mail that arrives on Friday night is not
"three days late" on Monday at 09:01. The nudge repeats every `nudge_minutes` of
business time until someone claims the ticket.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.outbox.queue import SLACK_POST, enqueue, slack_lane
from bot.storage.models import Ticket
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.status import TicketStatus

# Business time only moves during opening hours; anything older than this in calendar
# time is certainly due, which bounds how far back each run looks at every ticket.
_SCAN_LIMIT = 500


def nudge_unclaimed(
    session: Session, calendar: BusinessCalendar, *, nudge_minutes: float, now: datetime
) -> list[int]:
    """Queue a thread nudge for each unclaimed ticket that has waited long enough; returns their numbers."""
    threshold = nudge_minutes * 60
    candidates = session.scalars(
        select(Ticket)
        .where(
            Ticket.status == TicketStatus.OPEN,
            Ticket.owner.is_(None),
            Ticket.slack_ts.is_not(None),
            Ticket.auto_reason.is_(None),  # bounces and auto-replies are no one's job to claim
            Ticket.created_at <= now - timedelta(minutes=nudge_minutes),
        )
        .order_by(Ticket.created_at)
        .limit(_SCAN_LIMIT)
    ).all()
    nudged: list[int] = []
    for ticket in candidates:
        since = ticket.nudged_at or ticket.created_at
        if calendar.business_seconds_between(since, now) < threshold:
            continue
        waited = calendar.business_seconds_between(ticket.created_at, now) / 60
        text = (
            f":alarm_clock: Ticket #{ticket.number} is still unclaimed after "
            f"{_minutes(waited)} of business time. Can someone pick it up?"
        )
        enqueue(
            session,
            kind=SLACK_POST,
            lane=slack_lane(ticket.slack_channel or ""),
            now=now,
            ticket_id=ticket.id,
            payload={"channel": ticket.slack_channel, "thread_ts": ticket.slack_ts, "text": text},
            dedupe_key=f"nudge:{ticket.id}:{now.isoformat()}",
        )
        ticket.nudged_at = now
        record_event(
            session, ticket_id=ticket.id, actor=SYSTEM, action="nudged", at=now, waited_minutes=waited
        )
        nudged.append(ticket.number)
    return nudged


def _minutes(minutes: float) -> str:
    whole = int(minutes)
    if whole < 120:
        return f"{whole} minutes"
    return f"{whole // 60} h {whole % 60:02d} min"
