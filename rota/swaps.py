"""Swaps and covers: a duty changing hands after the rota was published.

- A **swap** is an offer: the holder offers a duty to a colleague, who accepts or
  declines before it expires.
- A **cover** is taken: anyone on the rota takes a duty outright (the holder is
  ill, or it is unassigned).

With approval on, an accepted swap or a cover waits for a manager. Once applied,
the duty is pinned (re-planning keeps it) and everything else (hand-offs, the
`@oncall` group, calendar feeds, the ledger) follows the new holder. A duty
already under way is split: the first holder keeps what they held, the new one
takes the rest from now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import DutySwap, RotaDuty, TimeOffRecord
from bot.tickets.events import record_event
from rota.errors import (
    AlreadyClosed,
    AlreadyRequested,
    AlreadyYours,
    AwayThen,
    CannotSwapWithYourself,
    DutyMovedOn,
    DutyNotFound,
    DutyOver,
    NotInRequest,
    NotYourDuty,
    OfferExpired,
    OfferNotForYou,
    OffRota,
    RequestNotFound,
)
from rota.errors import RequestClosed as RequestClosed  # re-exported: callers catch `swaps.RequestClosed`
from rota.store import SYSTEM, DutyView, _duty_view, _require_member

OPEN = ("offered", "awaiting_approval")


@dataclass(frozen=True)
class SwapView:
    id: int
    kind: str  # swap | cover
    duty: DutyView
    from_user: str | None
    to_user: str
    status: str
    note: str
    expires_at: datetime | None
    decided_by: str | None


@dataclass(frozen=True)
class SwapOutcome:
    swap: SwapView
    # Set when the duty changed hands now: the duty as it stands, and whether it was under way.
    applied: DutyView | None = None
    under_way: bool = False


def offer_swap(
    session: Session,
    duty_id: int,
    *,
    from_user: str,
    to_user: str,
    note: str = "",
    now: datetime,
    expires_in: timedelta,
) -> SwapView:
    row = _open_duty(session, duty_id, now)
    if row.user_id != from_user:
        raise NotYourDuty(row.id, from_user)
    if to_user == from_user:
        raise CannotSwapWithYourself()
    _check_can_take(session, row, to_user, now)
    _check_no_open_request(session, row.id, now)
    swap = DutySwap(
        duty_id=row.id,
        kind="swap",
        from_user=from_user,
        to_user=to_user,
        status="offered",
        note=note.strip()[:500],
        created_at=now,
        expires_at=min(now + expires_in, row.end),
    )
    session.add(swap)
    session.flush()
    record_event(
        session, ticket_id=None, actor=from_user, action="rota.swap_offered", at=now, swap=swap.id, to=to_user
    )
    return _view(session, swap)


def answer_swap(
    session: Session, swap_id: int, *, user: str, accept: bool, now: datetime, approval: bool
) -> SwapOutcome:
    swap = _swap(session, swap_id)
    if swap.to_user != user:
        raise OfferNotForYou(swap.id, swap.to_user, user)
    if swap.status != "offered":
        raise AlreadyClosed(swap.id, swap.status, offer=True)
    # Refusals raise, which rolls the transaction back: the periodic expiry closes such requests.
    if swap.expires_at is not None and swap.expires_at <= now:
        raise OfferExpired(swap.id)
    row = session.get(RotaDuty, swap.duty_id)
    if row is None or row.user_id != swap.from_user or row.end <= now:
        raise DutyMovedOn(swap.id, offer=True)
    if not accept:
        _close(session, swap, "declined", user, now)
        return SwapOutcome(_view(session, swap))
    _check_can_take(session, row, user, now)
    if approval:
        swap.status = "awaiting_approval"
        record_event(session, ticket_id=None, actor=user, action="rota.swap_accepted", at=now, swap=swap.id)
        return SwapOutcome(_view(session, swap))
    return _apply(session, swap, user, now)


def cover_duty(
    session: Session, duty_id: int, *, user: str, now: datetime, approval: bool, note: str = ""
) -> SwapOutcome:
    row = _open_duty(session, duty_id, now)
    if row.user_id == user:
        raise AlreadyYours(row.id, user)
    _check_can_take(session, row, user, now)
    _check_no_open_request(session, row.id, now)
    swap = DutySwap(
        duty_id=row.id,
        kind="cover",
        from_user=row.user_id,
        to_user=user,
        status="awaiting_approval" if approval else "offered",
        note=note.strip()[:500],
        created_at=now,
        expires_at=row.end,
    )
    session.add(swap)
    session.flush()
    record_event(session, ticket_id=None, actor=user, action="rota.cover_asked", at=now, swap=swap.id)
    if approval:
        return SwapOutcome(_view(session, swap))
    return _apply(session, swap, user, now)


def decide_swap(session: Session, swap_id: int, *, manager: str, approve: bool, now: datetime) -> SwapOutcome:
    swap = _swap(session, swap_id)
    if swap.status != "awaiting_approval":
        raise AlreadyClosed(swap.id, swap.status, offer=False)
    row = session.get(RotaDuty, swap.duty_id)
    if row is None or row.end <= now or row.user_id != swap.from_user:
        raise DutyMovedOn(swap.id, offer=False)
    if not approve:
        _close(session, swap, "rejected", manager, now)
        return SwapOutcome(_view(session, swap))
    return _apply(session, swap, manager, now)


def cancel_swap(session: Session, swap_id: int, *, user: str, now: datetime) -> SwapView:
    swap = _swap(session, swap_id)
    if user not in (swap.from_user, swap.to_user):
        raise NotInRequest(swap.id, user)
    if swap.status not in OPEN:
        raise AlreadyClosed(swap.id, swap.status, offer=False)
    _close(session, swap, "cancelled", user, now)
    return _view(session, swap)


def expire_swaps(session: Session, now: datetime) -> list[SwapView]:
    """Close offers nobody answered in time, and requests overtaken by events (the duty
    changed hands or ended); returns the expired ones, whose offerers should hear of it."""
    rows = session.scalars(select(DutySwap).where(DutySwap.status.in_(OPEN)).order_by(DutySwap.id)).all()
    expired = []
    for swap in rows:
        if _stale(session, swap, now):
            _close(session, swap, "cancelled", SYSTEM, now)
        elif swap.expires_at is not None and swap.expires_at <= now:
            _close(session, swap, "expired", SYSTEM, now)
            expired.append(swap)
    return [_view(session, swap) for swap in expired]


def _stale(session: Session, swap: DutySwap, now: datetime) -> bool:
    row = session.get(RotaDuty, swap.duty_id)
    return row is None or row.end <= now or row.user_id != swap.from_user


def open_requests(session: Session, *, user: str | None = None) -> list[SwapView]:
    query = select(DutySwap).where(DutySwap.status.in_(OPEN)).order_by(DutySwap.id)
    if user is not None:
        query = query.where((DutySwap.from_user == user) | (DutySwap.to_user == user))
    return [_view(session, s) for s in session.scalars(query)]


def swap_view(session: Session, swap_id: int) -> SwapView:
    return _view(session, _swap(session, swap_id))


# -- inside ----------------------------------------------------------------------


def _apply(session: Session, swap: DutySwap, actor: str, now: datetime) -> SwapOutcome:
    row = session.get(RotaDuty, swap.duty_id)
    assert row is not None
    under_way = row.start < now < row.end
    if under_way:
        # The first holder keeps (and is compensated for) what they held; the rest is the new holder's.
        taken = RotaDuty(
            start=now,
            end=row.end,
            user_id=swap.to_user,
            pinned=True,
            origin=swap.kind,
            why=_why(swap),
            published_at=now,
            published_by=actor,
            reminded_at=now,  # starts now: no reminder the day before
        )
        row.end = now
        row.published_at = now  # calendar feeds read this as the event's last change
        session.flush()  # the shortened duty first, so the new one never overlaps it
        session.add(taken)
        session.flush()
        swap.duty_id = taken.id
        applied = taken
    else:
        row.user_id = swap.to_user
        row.pinned = True
        row.origin = swap.kind
        row.why = _why(swap)
        row.reminded_at = None  # the new holder gets their own reminder
        row.published_at = now
        applied = row
    swap.status, swap.decided_at, swap.decided_by = "accepted", now, actor
    record_event(
        session,
        ticket_id=None,
        actor=actor,
        action="rota.swap_applied",
        at=now,
        swap=swap.id,
        kind=swap.kind,
        duty=applied.id,
        before=swap.from_user,
        after=swap.to_user,
    )
    return SwapOutcome(_view(session, swap), _duty_view(applied), under_way)


def _why(swap: DutySwap) -> str:
    # Plain text with the Slack id: what a duty says about its origin is not Slack's to format.
    return f"{swap.kind} from {swap.from_user}" if swap.from_user else f"{swap.kind} of an unassigned duty"


def _open_duty(session: Session, duty_id: int, now: datetime) -> RotaDuty:
    row = session.get(RotaDuty, duty_id)
    if row is None:
        raise DutyNotFound(duty_id)
    if row.end <= now:
        raise DutyOver(duty_id)
    return row


def _check_can_take(session: Session, row: RotaDuty, user: str, now: datetime) -> None:
    member = _require_member(session, user)
    if not member.active:
        raise OffRota(user)
    away = session.scalar(
        select(TimeOffRecord).where(
            TimeOffRecord.user_id == user,
            TimeOffRecord.cancelled_at.is_(None),
            TimeOffRecord.start < row.end,
            TimeOffRecord.end > max(row.start, now),
        )
    )
    if away is not None:
        raise AwayThen(user, away.first_day, away.last_day)


def _check_no_open_request(session: Session, duty_id: int, now: datetime) -> None:
    pending = None
    for request in session.scalars(
        select(DutySwap).where(DutySwap.duty_id == duty_id, DutySwap.status.in_(OPEN))
    ):
        if _stale(session, request, now):
            _close(session, request, "cancelled", SYSTEM, now)  # the duty changed hands since
        else:
            pending = request
    if pending is not None:
        raise AlreadyRequested(duty_id, pending.id, pending.to_user, pending.status)


def _swap(session: Session, swap_id: int) -> DutySwap:
    swap = session.get(DutySwap, swap_id)
    if swap is None:
        raise RequestNotFound(swap_id)
    return swap


def _close(session: Session, swap: DutySwap, status: str, actor: str, now: datetime) -> None:
    swap.status, swap.decided_at, swap.decided_by = status, now, actor
    record_event(session, ticket_id=None, actor=actor, action=f"rota.swap_{status}", at=now, swap=swap.id)


def _view(session: Session, swap: DutySwap) -> SwapView:
    row = session.get(RotaDuty, swap.duty_id)
    assert row is not None
    return SwapView(
        swap.id,
        swap.kind,
        _duty_view(row),
        swap.from_user,
        swap.to_user,
        swap.status,
        swap.note,
        swap.expires_at,
        swap.decided_by,
    )
