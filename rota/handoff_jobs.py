"""The rota's periodic work, run by the scheduler on the leader: expire swap offers,
remind tomorrow's holder, hand over at duty start, settle the ledger and keep the
rota planned ahead.

Each step claims its marker in the caller's transaction (see rota/handoffs.py) and
returns notices: who must be told what, with the idempotency key of the telling. The
Slack side words them and queues them in the same transaction, so a step is told once
however often, or however late, the job runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.config import Settings
from bot.phone.numbers import number_of
from rota import handoffs, ledger, store, swaps


@dataclass(frozen=True)
class SwapExpired:
    """An offer of a duty nobody answered: the offerer keeps the duty."""

    swap_id: int
    user: str  # who offered it
    offered_to: str | None
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"swap-expired:{self.swap_id}"


@dataclass(frozen=True)
class DutyReminder:
    """The day before: the holder is reminded of the duty ahead."""

    duty_id: int
    user: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"duty-reminder:{self.duty_id}:{self.user}"


@dataclass(frozen=True)
class HandedOver:
    """A duty started: the channel, the topic and the `@oncall` group follow its holder.

    `continues`: the same person held the duty before, so nobody is told anew and the
    phone's Do Not Disturb was already checked.
    """

    duty_id: int
    holder: str | None  # None: the duty is unassigned
    holder_name: str | None  # the roster's name for the topic; None when the holder is not on it
    end: datetime
    previous: str | None
    continues: bool

    @property
    def key(self) -> str:
        return f"handoff:{self.duty_id}"


@dataclass(frozen=True)
class DutyDndWarning:
    """The new holder's notifications are paused: `to` (the holder or a manager) hears of it."""

    check_id: int  # the duty-start check that saw it (one warning per check and person)
    to: str
    holder: str
    as_manager: bool  # `to` is told as a manager (a holder who manages is told so too)

    @property
    def key(self) -> str:
        return f"dnd-duty:{self.check_id}:{self.to}"


@dataclass(frozen=True)
class NoPhoneWarning:
    """The new holder registered no phone while pages call or text: `to` hears that calls
    cannot reach them (the holder, to register one; the managers, who are paged last)."""

    duty_id: int
    to: str
    holder: str
    as_manager: bool

    @property
    def key(self) -> str:
        return f"no-phone:{self.duty_id}:{self.to}"


RotaNotice = SwapExpired | DutyReminder | HandedOver | DutyDndWarning | NoPhoneWarning


@dataclass
class TickReport:
    expired: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)
    handed_off: list[int] = field(default_factory=list)
    settled: int = 0
    extended_until: datetime | None = None
    notices: list[RotaNotice] = field(default_factory=list)


def tick_rota(session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime) -> TickReport:
    """Take every rota step that is due; the report says what happened and who to tell."""
    report = TickReport()
    for swap in swaps.expire_swaps(session, now):
        report.expired.append(swap.id)
        if swap.kind == "swap" and swap.from_user:
            report.notices.append(
                SwapExpired(swap.id, swap.from_user, swap.to_user, swap.duty.start, swap.duty.end)
            )
    for duty in handoffs.due_reminders(session, now):
        report.reminded.append(duty.id)
        assert duty.user_id is not None
        report.notices.append(DutyReminder(duty.id, duty.user_id, duty.start, duty.end))
    for handoff in handoffs.due_handoffs(session, now):
        report.handed_off.append(handoff.duty.id)
        notice = _handed_over(session, handoff)
        report.notices.append(notice)
        report.notices.extend(_no_phone(session, settings, notice))
    report.settled = len(ledger.settle_duties(session, settings.compensation(), calendar, now=now))
    if settings.comp_page_work:
        report.settled += len(
            ledger.settle_pages(
                session,
                settings.compensation(),
                calendar,
                now=now,
                workday_hours=Decimal(str(settings.comp_workday_hours)),
            )
        )
    extended = store.extend_rota(
        session,
        calendar,
        settings.plan_config(),
        now=now,
        until=now + timedelta(weeks=settings.rota_plan_weeks),
    )
    if extended is not None:
        report.extended_until = extended.until
    return report


def _handed_over(session: Session, handoff: handoffs.HandOff) -> HandedOver:
    duty = handoff.duty
    member = store.member(session, duty.user_id) if duty.user_id is not None else None
    return HandedOver(
        duty_id=duty.id,
        holder=duty.user_id,
        holder_name=member.name if member else None,
        end=duty.end,
        previous=handoff.previous,
        continues=handoff.continues,
    )


def _no_phone(session: Session, settings: Settings, notice: HandedOver) -> list[NoPhoneWarning]:
    phone = settings.phone
    if notice.holder is None or notice.continues or phone is None or phone.twilio is None:
        return []
    plan = phone.policy.level("oncall") if phone.policy is not None else None
    if plan is None or all(action.channel == "slack" for action in plan.actions):
        return []  # the policy never calls the person on call: nothing is missing
    if number_of(session, notice.holder) is not None:
        return []
    targets = dict.fromkeys([notice.holder, *sorted(settings.managers)])
    return [
        NoPhoneWarning(notice.duty_id, to, notice.holder, to in settings.managers and to != notice.holder)
        for to in targets
    ]


def duty_dnd_observed(
    check_id: int, holder: str, managers: Iterable[str], *, paused: bool
) -> list[DutyDndWarning]:
    """What Slack said of a new holder's notifications at duty start: who must be warned.

    Pages would not wake a paused phone: the holder is told to end Do Not Disturb, and the
    managers (who are paged last) learn that the first levels may stay silent.
    """
    if not paused:
        return []
    managers = list(managers)
    targets = dict.fromkeys([holder, *managers])
    return [DutyDndWarning(check_id, target, holder, target in managers) for target in targets]
