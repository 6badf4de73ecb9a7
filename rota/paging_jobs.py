"""Paging's jobs: each step of a chain (rota/paging.py), acknowledgements, early stops,
Do Not Disturb, and the morning hand-over, as notices: who must be told what, about which
page or ticket, under which idempotency key.

The Slack side (bot/slack/paging.py) words each notice and queues it in the caller's
transaction; the key names the step it reports, so a step is never told twice even if a
caller retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.storage.models import AutoReply, Page, PageAttempt, Ticket
from bot.tickets.status import TicketStatus
from rota.paging import LEVELS, Acknowledged, PagePolicy, PageStep, cancel_page, due_steps, record_dnd


@dataclass(frozen=True)
class Paged:
    """A step that pages people: each gets the page, and the ticket's thread says so."""

    step: PageStep

    @property
    def key(self) -> str:
        return f"page:{self.step.page_id}:{self.step.step}"


@dataclass(frozen=True)
class PagingEnded:
    """A chain ended unanswered (exhausted) or was closed early (cancelled).

    `stand_down`: who had been woken and must hear it is over (a chain stopped from
    outside, such as a ticket marked as spam); a chain that ran out tells the channel.
    """

    step: PageStep
    stand_down: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"page:{self.step.page_id}:{self.step.step}:{self.step.level}"

    @property
    def ask_the_channel(self) -> bool:
        return self.step.level == "exhausted"


@dataclass(frozen=True)
class PageAcknowledged:
    """The first acknowledgement: the thread hears who, everyone else paged stands down."""

    ack: Acknowledged

    @property
    def key(self) -> str:
        return f"ack:{self.ack.page_id}"

    @property
    def stand_down(self) -> tuple[str, ...]:
        return tuple(user for user in self.ack.paged if user != self.ack.by)


@dataclass(frozen=True)
class DndNoticed:
    """A paged person's notifications are paused; `escalated`: the chain moves on sooner."""

    page_id: int
    ticket_id: int
    user: str
    escalated: bool

    @property
    def key(self) -> str:
        return f"dnd:{self.page_id}:{self.user}"


PagingNotice = Paged | PagingEnded | PageAcknowledged | DndNoticed


def notice_of_step(step: PageStep, stand_down: tuple[str, ...] = ()) -> Paged | PagingEnded:
    return Paged(step) if step.level in LEVELS else PagingEnded(step, stand_down)


def paging_tick(session: Session, policy: PagePolicy, now: datetime) -> list[Paged | PagingEnded]:
    """Take every step whose time has come (repeats, escalations, the end of chains)."""
    return [notice_of_step(step) for step in due_steps(session, now, policy)]


def acknowledged(ack: Acknowledged) -> list[PageAcknowledged]:
    """Only the first acknowledgement is news; a later click is answered to its clicker alone."""
    return [PageAcknowledged(ack)] if ack.first else []


def stop_paging(session: Session, ticket_id: int, now: datetime, reason: str) -> list[PagingEnded]:
    """Close the ticket's running chain now and stand down whoever it woke; [] when none runs."""
    stopped = cancel_page(session, ticket_id, now, reason)
    if stopped is None:
        return []
    return [PagingEnded(stopped.step, stopped.paged)]


def dnd_observed(
    session: Session, page_id: int, step: int, user: str, *, paused: bool, policy: PagePolicy
) -> list[DndNoticed]:
    """What Slack said about a paged person's notifications, once the page was out.

    Recorded on the attempt; a paused phone moves the chain on sooner (rota/paging.py
    decides when), and the ticket's thread hears that the page may not wake them.
    """
    escalated = record_dnd(session, page_id, step, user, dnd=paused, policy=policy)
    page = session.get(Page, page_id)
    if not paused or page is None:
        return []
    return [DndNoticed(page_id, page.ticket_id, user, escalated)]


# -- the morning hand-over ---------------------------------------------------------------

MORNING_WINDOW = timedelta(hours=2)
MORNING_LIST_LIMIT = 40


@dataclass(frozen=True)
class NightTicket:
    """A ticket of the night and what became of it."""

    number: int
    subject: str
    status: str
    owner: str | None
    paged: tuple[str, ...] | None  # None: never paged; (): a page that reached nobody
    acknowledged_by: str | None
    acknowledged_after: timedelta | None
    auto_reply: str | None  # the kind of automatic answer it got, if any


@dataclass(frozen=True)
class MorningReport:
    """At the day's opening, for the channel: what came in overnight (since `since`)."""

    day: date
    since: datetime
    tickets: tuple[NightTicket, ...]  # the first MORNING_LIST_LIMIT
    total: int
    unclaimed: int

    @property
    def key(self) -> str:
        return f"morning:{self.day.isoformat()}"


def morning_report(session: Session, calendar: BusinessCalendar, now: datetime) -> MorningReport | None:
    """The night's report when `now` is early in an opening; None at any other time."""
    today = calendar.local_day(now)
    opening = calendar.open_interval(today)
    # A bot that was down at opening still tells the day team in the morning; later in
    # the day they have seen the night's tickets for themselves.
    if opening is None or not opening[0] <= now < min(opening[1], opening[0] + MORNING_WINDOW):
        return None
    # The night: from the last closing before this opening.
    day = today - timedelta(days=1)
    closed_at = None
    for _ in range(15):
        interval = calendar.open_interval(day)
        if interval is not None:
            closed_at = interval[1]
            break
        day -= timedelta(days=1)
    since = closed_at or opening[0] - timedelta(days=1)
    tickets = session.scalars(
        select(Ticket)
        # Spam is nobody's work: the hand-over leaves it out.
        .where(Ticket.created_at >= since, Ticket.created_at < opening[0], Ticket.status != TicketStatus.SPAM)
        .order_by(Ticket.number)
    ).all()
    unclaimed = sum(1 for t in tickets if t.status != TicketStatus.RESOLVED and not t.owner)
    night = tuple(_night_ticket(session, ticket) for ticket in tickets[:MORNING_LIST_LIMIT])
    return MorningReport(today, since, night, len(tickets), unclaimed)


def _night_ticket(session: Session, ticket: Ticket) -> NightTicket:
    page = session.scalar(select(Page).where(Page.ticket_id == ticket.id))
    auto = session.scalar(select(AutoReply).where(AutoReply.ticket_id == ticket.id).limit(1))
    paged, by, after = None, None, None
    if page is not None:
        users = session.scalars(
            select(PageAttempt.user_id).where(PageAttempt.page_id == page.id).order_by(PageAttempt.id)
        ).all()
        paged = tuple(dict.fromkeys(users))
        if page.acknowledged_by and page.acknowledged_at:
            by, after = page.acknowledged_by, page.acknowledged_at - page.started_at
    return NightTicket(
        number=ticket.number,
        subject=ticket.subject or "",
        status=ticket.status,
        owner=ticket.owner,
        paged=paged,
        acknowledged_by=by,
        acknowledged_after=after,
        auto_reply=auto.kind if auto is not None else None,
    )
