"""Swaps and covers as use cases: make the change, and say who must be told what.

`rota.swaps` holds the rules of one request; these functions run one step of a
request for a person (offer, answer, decide, withdraw, cover, expire) and return the
outcome with its notices. Nothing here sends anything: the caller queues the notices
in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from rota import store, swaps
from rota.errors import NoDutyNow, NoDutyThatNight
from rota.notices import SwapNews, SwapNotice
from rota.store import DutyView
from rota.swaps import SwapOutcome, SwapView


@dataclass(frozen=True)
class SwapPolicy:
    approval: bool  # an accepted swap or a cover waits for a manager
    managers: frozenset[str]
    expires_in: timedelta  # how long an offer waits for an answer


@dataclass(frozen=True)
class SwapResult:
    outcome: SwapOutcome
    actor: str
    notices: tuple[SwapNotice, ...]

    @property
    def swap(self) -> SwapView:
        return self.outcome.swap

    @property
    def duty(self) -> DutyView:
        """The duty as it stands: after a split, the part that changed hands."""
        return self.outcome.applied or self.outcome.swap.duty

    @property
    def by_manager(self) -> bool:
        return self.actor not in (self.swap.from_user, self.swap.to_user)


def night_duty(session: Session, user: str, night: date, team_tz: ZoneInfo) -> DutyView:
    """The duty on the night of `night` as `user` counts nights (their own time zone)."""
    found = store.member(session, user)
    duty = store.duty_on_night(session, night, found.tz if found is not None else team_tz)
    if duty is None:
        raise NoDutyThatNight(night)
    return duty


def offer(
    session: Session, duty_id: int, *, user: str, to_user: str, note: str, now: datetime, policy: SwapPolicy
) -> SwapResult:
    swap = swaps.offer_swap(
        session, duty_id, from_user=user, to_user=to_user, note=note, now=now, expires_in=policy.expires_in
    )
    return SwapResult(
        SwapOutcome(swap), user, (SwapNotice(to_user, SwapNews.OFFERED, swap, swap.duty, user),)
    )


def offer_night(
    session: Session,
    night: date,
    *,
    user: str,
    to_user: str,
    note: str,
    now: datetime,
    policy: SwapPolicy,
    team_tz: ZoneInfo,
) -> SwapResult:
    duty = night_duty(session, user, night, team_tz)
    return offer(session, duty.id, user=user, to_user=to_user, note=note, now=now, policy=policy)


def cover(
    session: Session, night: date | None, *, user: str, now: datetime, policy: SwapPolicy, team_tz: ZoneInfo
) -> SwapResult:
    """Take the duty of `night`, or the one under way when no night is given."""
    if night is None:
        duty = store.duty_at(session, now)
        if duty is None:
            raise NoDutyNow()
    else:
        duty = night_duty(session, user, night, team_tz)
    outcome = swaps.cover_duty(session, duty.id, user=user, now=now, approval=policy.approval)
    return _result(outcome, user, policy)


def answer(
    session: Session, swap_id: int, *, user: str, accept: bool, now: datetime, policy: SwapPolicy
) -> SwapResult:
    outcome = swaps.answer_swap(session, swap_id, user=user, accept=accept, now=now, approval=policy.approval)
    return _result(outcome, user, policy)


def decide(
    session: Session, swap_id: int, *, manager: str, approve: bool, now: datetime, policy: SwapPolicy
) -> SwapResult:
    outcome = swaps.decide_swap(session, swap_id, manager=manager, approve=approve, now=now)
    decided = _result(outcome, manager, policy)
    # Every manager got the request; the others can stand down, as paged people do when
    # someone acknowledges (their DM keeps its buttons; a late click is told).
    others = tuple(
        SwapNotice(other, SwapNews.DECIDED_ELSEWHERE, decided.swap, decided.duty, manager)
        for other in sorted(policy.managers - {manager})
    )
    return SwapResult(outcome, manager, others + decided.notices)


def withdraw(session: Session, swap_id: int, *, user: str, now: datetime) -> SwapResult:
    swap = swaps.cancel_swap(session, swap_id, user=user, now=now)
    other = swap.to_user if user != swap.to_user else swap.from_user
    # A cover's holder never heard of the request, so there is nobody to tell.
    told = (
        (SwapNotice(other, SwapNews.WITHDRAWN, swap, swap.duty, user),)
        if other and swap.kind == "swap"
        else ()
    )
    return SwapResult(SwapOutcome(swap), user, told)


def expire(session: Session, now: datetime) -> list[SwapNotice]:
    """Close the requests whose time is up; the offerers of unanswered swaps are told."""
    return [
        SwapNotice(swap.from_user, SwapNews.EXPIRED, swap, swap.duty, store.SYSTEM)
        for swap in swaps.expire_swaps(session, now)
        if swap.kind == "swap" and swap.from_user
    ]


def _result(outcome: SwapOutcome, actor: str, policy: SwapPolicy) -> SwapResult:
    return SwapResult(outcome, actor, tuple(_told(outcome, actor, policy.managers)))


def _told(outcome: SwapOutcome, actor: str, managers: frozenset[str]) -> list[SwapNotice]:
    swap = outcome.swap
    duty = outcome.applied or swap.duty
    giver, taker = swap.from_user, swap.to_user
    by_manager = actor not in (giver, taker)

    def notice(to: str, news: SwapNews) -> SwapNotice:
        return SwapNotice(to, news, swap, duty, actor, outcome.under_way, by_manager)

    if swap.status == "awaiting_approval":
        told = [notice(manager, SwapNews.NEEDS_APPROVAL) for manager in sorted(managers)]
        if swap.kind == "swap" and giver:
            told.append(notice(giver, SwapNews.ACCEPTED_AWAITS_MANAGER))
        return told
    if swap.status == "declined":
        return [notice(giver, SwapNews.DECLINED)] if giver else []
    if swap.status == "rejected":
        return [notice(person, SwapNews.REJECTED) for person in (giver, taker) if person]
    if swap.status != "accepted":
        return []
    # Applied: the duty changed hands.
    told = []
    if giver and giver != actor:
        told.append(notice(giver, SwapNews.HANDED_OVER))
    if by_manager:
        told.append(notice(taker, SwapNews.NOW_YOURS))
    return told
