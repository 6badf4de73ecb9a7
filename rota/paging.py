"""Paging: waking someone for an urgent ticket after hours, and escalating until someone answers.

The chain has three levels, each paged once and then repeated `page_repeats` times,
`page_repeat_minutes` apart:

1. the person on call now;
2. the backup, the next person on the rota;
3. the managers.

A level with nobody in it (an unassigned duty, no managers) is skipped. An
acknowledgement stops the chain at once, and so does the ticket being claimed or
resolved by other means. When a paged person's notifications are paused (Slack's
Do Not Disturb), the chain moves to the next level after `page_dnd_escalate_minutes`
instead of repeating into silence.

Each step is taken in one transaction that advances the page's step counter and
records who was paged, together with the caller's outbox rows; a step is therefore
taken once, whatever restarts or replicas do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Page, PageAttempt, RotaDuty, Ticket
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.status import TicketStatus
from rota.page_policy import PagePlan, repeating_plan

if TYPE_CHECKING:
    from bot.config import Settings

LEVELS = ("oncall", "backup", "managers")


class PagingError(ValueError):
    """A request about a page that cannot be honoured; the message is for the person who asked."""


@dataclass(frozen=True)
class PagePolicy:
    repeat_every: timedelta
    repeats: int
    managers: tuple[str, ...]
    dnd_escalate_after: timedelta
    # PAGE_POLICY (rota/page_policy.py): each level's channels and offsets. None: a Slack DM
    # per level, repeated `repeats` times `repeat_every` apart. Either way a level's last
    # step is followed by `repeat_every` before the next level starts.
    plan: PagePlan | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PagePolicy:
        return cls(
            repeat_every=timedelta(minutes=settings.page_repeat_minutes),
            repeats=settings.page_repeats,
            managers=tuple(sorted(settings.managers)),
            dnd_escalate_after=timedelta(minutes=settings.page_dnd_escalate_minutes),
            plan=settings.phone.policy if settings.phone else None,
        )

    @property
    def effective_plan(self) -> PagePlan:
        return self.plan if self.plan is not None else repeating_plan(self.repeats, self.repeat_every)


@dataclass(frozen=True)
class _Moment:
    """One step of a chain as the policy lays it out for the people there are now."""

    level: str
    users: tuple[str, ...]
    offset: timedelta  # from the level's start
    channels: tuple[str, ...]
    index: int  # within its level: 0 the first, 1… the later ones (repeats, calls)


@dataclass(frozen=True)
class PageStep:
    """One step of a chain, for the caller to turn into messages."""

    page_id: int
    ticket_id: int
    step: int  # 0 for the first page
    level: str  # oncall | backup | managers | exhausted | cancelled
    users: tuple[str, ...]  # paged at this step
    repeat: int  # 0: first page of this level, 1…: a repeat
    reason: str = ""  # why the chain ended (exhausted, cancelled)
    claimed_by: str | None = None  # ended because this person claimed the ticket
    channels: tuple[str, ...] = ("slack",)  # slack, call, sms: how this step reaches them


@dataclass(frozen=True)
class Acknowledged:
    page_id: int
    ticket_id: int
    by: str
    at: datetime
    after: timedelta  # from the first page
    paged: tuple[str, ...]  # everyone who was paged, to tell them
    first: bool  # False: someone had already acknowledged (`by` is who)


def start_page(
    session: Session,
    *,
    ticket_id: int,
    now: datetime,
    settings: Settings | None = None,
    policy: PagePolicy | None = None,
    reason: str = "",
) -> PageStep | None:
    """Open the chain for a ticket and take its first step; None if the ticket was already paged."""
    if policy is None:
        assert settings is not None, "start_page needs settings or a policy"
        policy = PagePolicy.from_settings(settings)
    existing = session.scalar(select(Page).where(Page.ticket_id == ticket_id))
    if existing is not None:
        return None
    page = Page(ticket_id=ticket_id, status="active", step=0, next_step_at=now, started_at=now)
    session.add(page)
    session.flush()
    record_event(session, ticket_id=ticket_id, actor=SYSTEM, action="paging_started", at=now, reason=reason)
    return _step(session, page, now, policy)


def due_steps(session: Session, now: datetime, policy: PagePolicy) -> list[PageStep]:
    """Take every step whose time has come (repeats, escalations, the end of chains)."""
    pages = session.scalars(
        select(Page)
        .where(Page.status == "active", Page.next_step_at <= now)
        .order_by(Page.next_step_at)
        .with_for_update(skip_locked=True)
    ).all()
    return [_step(session, page, now, policy) for page in pages]


def acknowledge(session: Session, page_id: int, *, user: str, now: datetime) -> Acknowledged:
    page = session.get(Page, page_id, with_for_update=True)
    if page is None:
        raise PagingError("That page no longer exists.")
    paged = _paged(session, page.id)
    if page.status == "acknowledged":
        assert page.acknowledged_by is not None and page.acknowledged_at is not None
        return Acknowledged(
            page.id,
            page.ticket_id,
            page.acknowledged_by,
            page.acknowledged_at,
            page.acknowledged_at - page.started_at,
            paged,
            first=False,
        )
    # A page that ran out or was cancelled can still be acknowledged: someone is on it now.
    page.status, page.acknowledged_by, page.acknowledged_at = "acknowledged", user, now
    page.next_step_at, page.closed_at = None, page.closed_at or now
    after = now - page.started_at
    record_event(
        session,
        ticket_id=page.ticket_id,
        actor=user,
        action="page_acknowledged",
        at=now,
        seconds=int(after.total_seconds()),
    )
    return Acknowledged(page.id, page.ticket_id, user, now, after, paged, first=True)


def record_dnd(
    session: Session, page_id: int, step: int, user: str, *, dnd: bool, policy: PagePolicy
) -> bool:
    """Note what Slack said about a paged person's notifications; True if the chain moves on sooner."""
    attempt = session.scalar(
        select(PageAttempt).where(
            PageAttempt.page_id == page_id, PageAttempt.step == step, PageAttempt.user_id == user
        )
    )
    if attempt is None:
        return False
    attempt.dnd = dnd
    page = session.get(Page, page_id)
    if not dnd or page is None or page.status != "active" or attempt.level == "managers":
        return False
    if page.step != step + 1:
        return False  # the chain has moved on since this page went out
    others = session.scalars(
        select(PageAttempt).where(PageAttempt.page_id == page_id, PageAttempt.step == step)
    ).all()
    if any(other.dnd is not True for other in others):
        return False  # someone else paged at this step may still wake up
    moments = _schedule(session, attempt.at, policy)
    rest = [i for i in range(step + 1, len(moments)) if moments[i].level == attempt.level]
    if any(channel != "slack" for i in rest for channel in moments[i].channels):
        return False  # a call or SMS still to come rings whatever Slack holds back
    # Skip this level's remaining repeats: paging a paused phone again wakes nobody.
    page.step = (rest[-1] if rest else step) + 1
    sooner = attempt.at + policy.dnd_escalate_after
    page.next_step_at = min(page.next_step_at or sooner, sooner)
    record_event(session, ticket_id=page.ticket_id, actor=SYSTEM, action="page_dnd", at=attempt.at, user=user)
    return True


@dataclass(frozen=True)
class Stopped:
    """A chain closed early (the ticket was marked as spam): who had been woken for nothing."""

    step: PageStep
    paged: tuple[str, ...]


def cancel_page(session: Session, ticket_id: int, now: datetime, reason: str) -> Stopped | None:
    """Close the ticket's running chain now; None when no chain is running."""
    page = session.scalar(select(Page).where(Page.ticket_id == ticket_id).with_for_update())
    if page is None or page.status != "active":
        return None
    return Stopped(_close(session, page, "cancelled", now, reason), _paged(session, page.id))


def page_of_ticket(session: Session, ticket_id: int) -> Page | None:
    return session.scalar(select(Page).where(Page.ticket_id == ticket_id))


def on_call(session: Session, now: datetime) -> tuple[str | None, str | None]:
    """(who is on call now, the backup: the next different person on the rota)."""
    current = session.scalar(
        select(RotaDuty).where(RotaDuty.start <= now, RotaDuty.end > now).order_by(RotaDuty.start).limit(1)
    )
    holder = current.user_id if current is not None else None
    after = current.end if current is not None else now
    upcoming = session.scalars(
        select(RotaDuty.user_id)
        .where(RotaDuty.start >= after, RotaDuty.user_id.is_not(None))
        .order_by(RotaDuty.start)
        .limit(20)
    ).all()
    backup = next((user for user in upcoming if user != holder), None)
    return holder, backup


# -- inside ----------------------------------------------------------------------


def _step(session: Session, page: Page, now: datetime, policy: PagePolicy) -> PageStep:
    ticket = session.get(Ticket, page.ticket_id)
    if (
        ticket is None
        or ticket.status in (TicketStatus.RESOLVED, TicketStatus.SPAM)
        or ticket.owner is not None
    ):
        if ticket is not None and ticket.status == TicketStatus.SPAM:
            return _close(session, page, "cancelled", now, "the ticket was marked as spam")
        if ticket is not None and ticket.status == TicketStatus.RESOLVED:
            return _close(session, page, "cancelled", now, "the ticket was resolved")
        if ticket is not None and ticket.owner:
            return _close(session, page, "cancelled", now, "claimed the ticket", claimed_by=ticket.owner)
        return _close(session, page, "cancelled", now, "the ticket is gone")
    moments = _schedule(session, now, policy)
    if page.step >= len(moments):
        minutes = int((now - page.started_at).total_seconds() // 60)
        return _close(session, page, "exhausted", now, f"nobody acknowledged in {minutes} minutes")
    moment = moments[page.step]
    level, users = moment.level, moment.users
    step = page.step
    for user in users:
        session.add(PageAttempt(page_id=page.id, step=step, level=level, user_id=user, at=now))
    page.step = step + 1
    following = moments[step + 1] if step + 1 < len(moments) else None
    if following is not None and following.level == level:
        page.next_step_at = now + (following.offset - moment.offset)
    else:
        page.next_step_at = now + policy.repeat_every
    record_event(
        session,
        ticket_id=page.ticket_id,
        actor=SYSTEM,
        action="paged",
        at=now,
        level=level,
        users=list(users),
        step=step,
        channels=list(moment.channels),
    )
    session.flush()
    return PageStep(
        page.id, page.ticket_id, step, level, tuple(users), moment.index, channels=moment.channels
    )


def _schedule(session: Session, now: datetime, policy: PagePolicy) -> list[_Moment]:
    """Every step of the chain, in order, for whoever holds each level now; a level with
    nobody in it (an unassigned duty, no managers) or left out of the policy is skipped."""
    holder, backup = on_call(session, now)
    plan = policy.effective_plan
    moments: list[_Moment] = []
    for name, users in (
        ("oncall", (holder,) if holder else ()),
        ("backup", (backup,) if backup else ()),
        ("managers", policy.managers),
    ):
        level_plan = plan.level(name)
        if not users or level_plan is None:
            continue
        for index, (offset, channels) in enumerate(level_plan.moments()):
            moments.append(_Moment(name, tuple(users), offset, channels, index))
    return moments


def pass_on(
    session: Session, page_id: int, *, user: str, now: datetime, policy: PagePolicy
) -> PageStep | None:
    """`user` passes the page to the next level (keypress 2): its first step is taken now.

    None when the page is no longer running (acknowledged, ended) or the chain had already
    moved past `user`'s level; the chain's other levels are unchanged.
    """
    page = session.get(Page, page_id, with_for_update=True)
    if page is None or page.status != "active":
        return None
    moments = _schedule(session, now, policy)
    current = moments[page.step - 1] if 0 < page.step <= len(moments) else None
    if current is None or user not in current.users:
        return None
    following = next((i for i in range(page.step, len(moments)) if moments[i].level != current.level), None)
    page.step = following if following is not None else len(moments)
    record_event(session, ticket_id=page.ticket_id, actor=user, action="page_passed_on", at=now)
    return _step(session, page, now, policy)


def _close(
    session: Session, page: Page, status: str, now: datetime, reason: str, claimed_by: str | None = None
) -> PageStep:
    page.status, page.next_step_at, page.closed_at = status, None, now
    by = {"claimed_by": claimed_by} if claimed_by else {}
    record_event(
        session,
        ticket_id=page.ticket_id,
        actor=SYSTEM,
        action=f"paging_{status}",
        at=now,
        reason=reason,
        **by,
    )
    return PageStep(page.id, page.ticket_id, page.step, status, (), 0, reason, claimed_by)


def _paged(session: Session, page_id: int) -> tuple[str, ...]:
    users = session.scalars(
        select(PageAttempt.user_id).where(PageAttempt.page_id == page_id).order_by(PageAttempt.id)
    )
    return tuple(dict.fromkeys(users))
