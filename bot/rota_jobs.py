"""The rota's periodic work, run by the scheduler on the leader: expire swap offers,
remind tomorrow's holder, hand over at duty start, settle the ledger, keep the
rota planned ahead, and keep the roster in step with the staff.

Each step's effects (DMs, the channel post, the topic, the `@oncall` group) are
outbox rows written in the same transaction as the step's marker, so a step
happens once however often, or however late, the job runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.config import Settings
from bot.outbox.queue import (
    SLACK_DND_CHECK,
    SLACK_SET_TOPIC,
    SLACK_USERGROUP,
    enqueue,
    enqueue_post,
    slack_lane,
)
from bot.slack.render import slack_date
from rota import handoffs, ledger, store, swaps

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    expired: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)
    handed_off: list[int] = field(default_factory=list)
    settled: int = 0
    extended_until: datetime | None = None


def rota_tick(session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime) -> TickReport:
    report = TickReport()
    for swap in swaps.expire_swaps(session, now):
        report.expired.append(swap.id)
        if swap.kind == "swap" and swap.from_user:
            _dm(
                session,
                swap.from_user,
                f"Your offer of your duty {_span(swap.duty.start, swap.duty.end)} to <@{swap.to_user}> "
                "expired without an answer. It is still yours: offer it to someone else with `/oncall swap`.",
                now,
                f"swap-expired:{swap.id}",
            )
    for duty in handoffs.due_reminders(session, now):
        report.reminded.append(duty.id)
        assert duty.user_id is not None
        _dm(
            session,
            duty.user_id,
            f":calendar: Reminder: you are on call {_span(duty.start, duty.end)}. "
            "Can't make it? `/oncall swap` offers it to a colleague.",
            now,
            f"duty-reminder:{duty.id}:{duty.user_id}",
        )
    for handoff in handoffs.due_handoffs(session, now):
        report.handed_off.append(handoff.duty.id)
        _hand_over(session, settings, handoff, now)
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


def _hand_over(session: Session, settings: Settings, handoff: handoffs.HandOff, now: datetime) -> None:
    duty = handoff.duty
    key = f"handoff:{duty.id}"
    holder = duty.user_id
    until = f"until {slack_date(duty.end)}"
    if holder is None:
        text = (
            f":warning: Nobody is on call {until}: this duty is unassigned. "
            "Anyone can take it with `/oncall cover`; managers can re-plan with `/oncall plan`."
        )
        _post(session, settings.support_channel, text, now, f"{key}:channel")
        _topic(session, settings, "On call: nobody", now, key)
        return
    if not handoff.continues:
        _dm(
            session,
            holder,
            f":phone: You are on call now, {until}."
            + (f" Handing over from <@{handoff.previous}>." if handoff.previous else "")
            + " Urgent after-hours email will page you here.",
            now,
            f"{key}:dm",
        )
        handed = f", taking over from <@{handoff.previous}>" if handoff.previous else ""
        _post(
            session,
            settings.support_channel,
            f":phone: <@{holder}> is on call {until}{handed}.",
            now,
            f"{key}:channel",
        )
    if not handoff.continues:
        enqueue(
            session,
            kind=SLACK_DND_CHECK,
            lane=slack_lane(holder),
            now=now,
            payload={"user": holder, "managers": sorted(settings.managers)},
            dedupe_key=f"{key}:dnd",
        )
    name = store.member(session, holder)
    _topic(session, settings, f"On call: {name.name if name else holder}", now, key)
    if settings.oncall_usergroup:
        enqueue(
            session,
            kind=SLACK_USERGROUP,
            lane=slack_lane(settings.oncall_usergroup),
            now=now,
            payload={"usergroup": settings.oncall_usergroup, "users": [holder]},
            dedupe_key=f"{key}:usergroup",
        )


def _span(start: datetime, end: datetime) -> str:
    return f"from {slack_date(start)} to {slack_date(end)}"


def _dm(session: Session, user: str, text: str, now: datetime, key: str) -> None:
    enqueue_post(session, user, text, now=now, dedupe_key=key)


_post = _dm  # a channel id instead of a user id: the same outbox row


def _topic(session: Session, settings: Settings, oncall: str, now: datetime, key: str) -> None:
    payload: dict[str, Any] = {"channel": settings.support_channel, "oncall": oncall}
    enqueue(
        session,
        kind=SLACK_SET_TOPIC,
        lane=slack_lane(settings.support_channel),
        now=now,
        payload=payload,
        dedupe_key=f"{key}:topic",
    )
