"""The rota's words: each rota notice (rota/handoff_jobs.py) as Slack DMs, the channel's
post and topic, and the `@oncall` group, queued in the outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.config import Settings
from bot.outbox.queue import (
    SLACK_DND_CHECK,
    SLACK_POST,
    SLACK_SET_TOPIC,
    SLACK_USERGROUP,
    enqueue,
    enqueue_post,
    slack_lane,
)
from bot.slack.render import slack_date
from rota.handoff_jobs import (
    DutyDndWarning,
    DutyReminder,
    HandedOver,
    NoPhoneWarning,
    RotaNotice,
    SwapExpired,
    TickReport,
    tick_rota,
)


def rota_tick(session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime) -> TickReport:
    """The rota's due steps taken, and what they tell queued."""
    report = tick_rota(session, settings, calendar, now)
    queue_rota_notices(session, settings, report.notices, now)
    return report


def queue_rota_notices(
    session: Session, settings: Settings, notices: Iterable[RotaNotice], now: datetime
) -> None:
    for notice in notices:
        if isinstance(notice, SwapExpired):
            enqueue_post(
                session,
                notice.user,
                f"Your offer of your duty {_span(notice.start, notice.end)} to <@{notice.offered_to}> "
                "expired without an answer. It is still yours: offer it to someone else with `/oncall swap`.",
                now=now,
                dedupe_key=notice.key,
            )
        elif isinstance(notice, DutyReminder):
            enqueue_post(
                session,
                notice.user,
                f":calendar: Reminder: you are on call {_span(notice.start, notice.end)}. "
                "Can't make it? `/oncall swap` offers it to a colleague.",
                now=now,
                dedupe_key=notice.key,
            )
        elif isinstance(notice, HandedOver):
            _hand_over(session, settings, notice, now)
        elif isinstance(notice, NoPhoneWarning):
            _no_phone(session, notice, now)
        else:
            queue_dnd_warnings(session, [notice], now)


def _hand_over(session: Session, settings: Settings, notice: HandedOver, now: datetime) -> None:
    key = notice.key
    holder = notice.holder
    until = f"until {slack_date(notice.end)}"
    channel = settings.support_channel
    if holder is None:
        text = (
            f":warning: Nobody is on call {until}: this duty is unassigned. "
            "Anyone can take it with `/oncall cover`; managers can re-plan with `/oncall plan`."
        )
        enqueue_post(session, channel, text, now=now, dedupe_key=f"{key}:channel")
        _topic(session, channel, "On call: nobody", now, key)
        return
    if not notice.continues:
        previous = notice.previous
        enqueue_post(
            session,
            holder,
            f":phone: You are on call now, {until}."
            + (f" Handing over from <@{previous}>." if previous else "")
            + " Urgent after-hours email will page you here.",
            now=now,
            dedupe_key=f"{key}:dm",
        )
        handed = f", taking over from <@{previous}>" if previous else ""
        enqueue_post(
            session,
            channel,
            f":phone: <@{holder}> is on call {until}{handed}.",
            now=now,
            dedupe_key=f"{key}:channel",
        )
        # Delivery reads the holder's Do Not Disturb; rota/handoff_jobs.py decides who to warn.
        enqueue(
            session,
            kind=SLACK_DND_CHECK,
            lane=slack_lane(holder),
            now=now,
            payload={"user": holder, "managers": sorted(settings.managers)},
            dedupe_key=f"{key}:dnd",
        )
    _topic(
        session, channel, f"On call: {holder if notice.holder_name is None else notice.holder_name}", now, key
    )
    if settings.oncall_usergroup:
        enqueue(
            session,
            kind=SLACK_USERGROUP,
            lane=slack_lane(settings.oncall_usergroup),
            now=now,
            payload={"usergroup": settings.oncall_usergroup, "users": [holder]},
            dedupe_key=f"{key}:usergroup",
        )


def _no_phone(session: Session, notice: NoPhoneWarning, now: datetime) -> None:
    if notice.as_manager:
        text = (
            f":no_mobile_phones: <@{notice.holder}> is on call and has no phone registered: "
            "pages reach them in Slack only, calls and SMS cannot."
        )
    else:
        text = (
            ":no_mobile_phones: You are on call, but you have no phone registered, so pages cannot call "
            "or text you: only Slack. Register one with `/oncall phone +39 333 …`."
        )
    enqueue_post(session, notice.to, text, now=now, dedupe_key=notice.key)


def queue_dnd_warnings(session: Session, notices: Iterable[DutyDndWarning], now: datetime) -> None:
    """The warnings of a paused phone at duty start (read by bot/slack/page_delivery.py)."""
    for notice in notices:
        _dnd_warning(session, notice, now)


def _dnd_warning(session: Session, notice: DutyDndWarning, now: datetime) -> None:
    if notice.as_manager:
        text = (
            f":no_bell: <@{notice.holder}> is on call with Slack notifications paused; "
            "pages may not wake them."
        )
    else:
        text = (
            ":no_bell: You are on call, but your Slack notifications are paused (Do Not Disturb). "
            "Pages will not wake you: end Do Not Disturb, or allow notifications from this app "
            "(Preferences → Notifications)."
        )
    enqueue(
        session,
        kind=SLACK_POST,
        lane=slack_lane(notice.to),
        now=now,
        payload={"channel": notice.to, "text": text},
        dedupe_key=notice.key,
    )


def _span(start: datetime, end: datetime) -> str:
    return f"from {slack_date(start)} to {slack_date(end)}"


def _topic(session: Session, channel: str, oncall: str, now: datetime, key: str) -> None:
    enqueue(
        session,
        kind=SLACK_SET_TOPIC,
        lane=slack_lane(channel),
        now=now,
        payload={"channel": channel, "oncall": oncall},
        dedupe_key=f"{key}:topic",
    )
