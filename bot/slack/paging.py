"""Paging's words: each paging notice (rota/paging_jobs.py) as a Slack DM, thread notice or
channel post, queued in the outbox in the caller's transaction.

Every row carries the notice's dedupe key, so the same step can never be queued twice
even if a caller retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.config import Settings
from bot.outbox.queue import (
    SLACK_PAGE,
    SLACK_PAGE_CLOSE,
    SLACK_TICKET_NOTICE,
    enqueue,
    enqueue_post,
    slack_lane,
)
from bot.phone.pages import phone_page, stop_ringing
from bot.slack.render import escape, slack_date, truncate
from bot.storage.models import Customer, OutboxItem, Ticket, TicketTriage
from bot.tickets.status import TicketStatus
from rota.paging import PagePolicy, PageStep, start_page
from rota.paging_jobs import (
    DndNoticed,
    MorningReport,
    NightTicket,
    PageAcknowledged,
    Paged,
    PagingEnded,
    PagingNotice,
    morning_report,
    notice_of_step,
)
from rota.paging_jobs import paging_tick as due_paging

ACTION_ACK = "page_ack"
ACTION_CLAIM = "page_claim"
_LEVEL_WORDS = {"oncall": "on call", "backup": "backup", "managers": "manager"}
_CHANNEL_WORDS = {"slack": "Slack", "call": "phone call", "sms": "SMS"}


# -- the jobs: a rota decision, then its notices queued ----------------------------------------


def paging_tick(session: Session, settings: Settings, now: datetime) -> list[PageStep]:
    """Repeat and escalate unacknowledged pages, and end the chains that ran out."""
    notices = due_paging(session, PagePolicy.from_settings(settings), now)
    queue_paging_notices(session, notices, now, support_channel=settings.support_channel)
    return [notice.step for notice in notices]


def pager(settings: Settings) -> Callable[[Session, int, str, datetime], bool]:
    """How triage pages (bot/tickets/triage.py: `Pager`): the rota starts the page, and its
    first step is worded and queued here, in triage's transaction."""

    def page(session: Session, ticket_id: int, reason: str, now: datetime) -> bool:
        step = start_page(session, ticket_id=ticket_id, reason=reason, now=now, settings=settings)
        if step is None:
            return False
        step_effects(session, settings, step, now)
        return True

    return page


def step_effects(session: Session, settings: Settings, step: PageStep, now: datetime) -> None:
    """Queue what one step of a chain tells (the first page, as triage opens the chain)."""
    queue_paging_notices(session, [notice_of_step(step)], now, support_channel=settings.support_channel)


def morning_handover(session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime) -> bool:
    """At the day's opening, one message: what came in overnight; True if queued now."""
    report = morning_report(session, calendar, now)
    if report is None:
        return False
    queued = enqueue_post(
        session, settings.support_channel, morning_text(report)[:39_000], now=now, dedupe_key=report.key
    )
    return queued is not None


# -- the composer ------------------------------------------------------------------------------


def queue_paging_notices(
    session: Session,
    notices: Iterable[PagingNotice],
    now: datetime,
    *,
    support_channel: str,
    answered_in: str | None = None,
) -> None:
    """Word each notice and queue it; a notice about a ticket that is gone says nothing.

    `answered_in`: the ts of the page DM whose button was pressed; the listener rewrites
    that one itself (it says "you"), every other DM of the page is rewritten from here."""
    for notice in notices:
        ticket_id = notice.ticket_id if isinstance(notice, DndNoticed) else _ticket_id(notice)
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            continue
        if isinstance(notice, Paged):
            _paged(session, ticket, notice, now)
        elif isinstance(notice, PagingEnded):
            _ended(session, ticket, notice, now, support_channel)
        elif isinstance(notice, PageAcknowledged):
            _acknowledged(session, ticket, notice, now, answered_in)
        else:
            _dnd(session, ticket, notice, now)


def _ticket_id(notice: Paged | PagingEnded | PageAcknowledged) -> int:
    return notice.ack.ticket_id if isinstance(notice, PageAcknowledged) else notice.step.ticket_id


def _paged(session: Session, ticket: Ticket, notice: Paged, now: datetime) -> None:
    step = notice.step
    text, blocks = page_message(session, ticket, step)
    phone_channels = [c for c in step.channels if c != "slack"]
    unreachable: list[str] = []
    for user in step.users:
        by_slack = "slack" in step.channels
        for channel in phone_channels:
            reached = phone_page(
                session,
                ticket=ticket,
                page_id=step.page_id,
                step=step.step,
                user=user,
                channel=channel,
                now=now,
                key=notice.key,
            )
            if not reached and user not in unreachable:
                # No number: Slack is the one way left to reach them.
                unreachable.append(user)
                by_slack = True
        if by_slack:
            enqueue(
                session,
                kind=SLACK_PAGE,
                lane=slack_lane(user),
                now=now,
                ticket_id=ticket.id,
                payload={
                    "channel": user,
                    "text": text,
                    "blocks": blocks,
                    "page_id": step.page_id,
                    "step": step.step,
                    "user": user,
                },
                dedupe_key=f"{notice.key}:{user}",
            )
    who = ", ".join(f"<@{u}>" for u in step.users)
    how = " and ".join(_CHANNEL_WORDS[c] for c in step.channels)
    again = f" (repeat {step.repeat})" if step.repeat and step.channels == ("slack",) else ""
    missing = (
        " " + ", ".join(f"<@{u}>" for u in unreachable) + " registered no phone number, so Slack instead."
        if unreachable
        else ""
    )
    _thread_notice(
        session,
        ticket,
        f":rotating_light: Paging {who} ({_LEVEL_WORDS[step.level]}) by {how}{again}.{missing}",
        now,
        f"{notice.key}:thread",
    )


def stop_reason(step: PageStep) -> str:
    """Why a chain ended, as Slack shows it: a claim names who claimed."""
    return f"<@{step.claimed_by}> {step.reason}" if step.claimed_by else step.reason


def _ended(
    session: Session, ticket: Ticket, notice: PagingEnded, now: datetime, support_channel: str
) -> None:
    step = notice.step
    stop_ringing(session, page_id=step.page_id, now=now, key=notice.key)
    icon = ":warning:" if step.level == "exhausted" else ":white_check_mark:"
    _thread_notice(session, ticket, f"{icon} Paging stopped: {stop_reason(step)}.", now, notice.key)
    if notice.ask_the_channel:
        enqueue_post(
            session,
            support_channel,
            f":warning: Urgent ticket #{ticket.number} was paged to everyone on the chain and nobody "
            f"acknowledged ({stop_reason(step)}). Can anyone take it?",
            now=now,
            dedupe_key=f"page:{step.page_id}:{step.step}:exhausted-channel",
        )
    _stand_down(session, notice, f"Paging for ticket #{ticket.number} stopped ({stop_reason(step)})", now)
    _close_page_dms(session, step.page_id, f"{icon} Over: paging stopped ({stop_reason(step)}).", now)


def _stand_down(session: Session, notice: PagingEnded | PageAcknowledged, why: str, now: datetime) -> None:
    """One DM to each person the notice stands down: `why` they need not act any more."""
    for user in notice.stand_down:
        enqueue_post(
            session,
            user,
            f":white_check_mark: {why}; you can stand down.",
            now=now,
            dedupe_key=f"{notice.key}:{user}",
        )


def _acknowledged(
    session: Session, ticket: Ticket, notice: PageAcknowledged, now: datetime, answered_in: str | None
) -> None:
    ack = notice.ack
    stop_ringing(session, page_id=ack.page_id, now=now, key=notice.key)
    after = duration(ack.after)
    _thread_notice(
        session,
        ticket,
        f":white_check_mark: <@{ack.by}> acknowledged the page after {after}.",
        now,
        notice.key,
    )
    _stand_down(
        session, notice, f"<@{ack.by}> acknowledged urgent ticket #{ticket.number} after {after}", now
    )
    _close_page_dms(
        session,
        ack.page_id,
        f":white_check_mark: Over: <@{ack.by}> acknowledged this page after {after}.",
        now,
        skip_ts=answered_in,
    )


def _close_page_dms(
    session: Session, page_id: int, outcome: str, now: datetime, skip_ts: str | None = None
) -> None:
    """Every DM of the page (each step, each person) loses its buttons and says how it ended,
    so nobody acknowledges a page that is over. Each rewrite goes in its DM's lane, after it."""
    dms = session.scalars(
        select(OutboxItem)
        .where(OutboxItem.kind == SLACK_PAGE, OutboxItem.dedupe_key.like(f"page:{page_id}:%"))
        .order_by(OutboxItem.id)
    )
    for dm in dms:
        if skip_ts is not None and dm.result.get("ts") == skip_ts:
            continue
        enqueue(
            session,
            kind=SLACK_PAGE_CLOSE,
            lane=dm.lane,
            now=now,
            ticket_id=dm.ticket_id,
            payload={"page_item": dm.id, "outcome": outcome},
            dedupe_key=f"page-close:{dm.id}",
        )


def _dnd(session: Session, ticket: Ticket, notice: DndNoticed, now: datetime) -> None:
    then = " The page moves on to the next person sooner." if notice.escalated else ""
    _thread_notice(
        session,
        ticket,
        f":no_bell: <@{notice.user}> has notifications paused (Do Not Disturb), "
        f"so this page may not wake them.{then}",
        now,
        notice.key,
    )


def page_message(session: Session, ticket: Ticket, step: PageStep) -> tuple[str, list[dict[str, Any]]]:
    triage = session.get(TicketTriage, ticket.id)
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    subject = escape(truncate(ticket.subject or "(no subject)", 150))
    sender = escape(customer.email) if customer else "unknown sender"
    why = f"\n*Why urgent:* {escape(triage.reason)}" if triage and triage.reason else ""
    level = {
        "backup": " You are the backup: the person on call has not answered.",
        "managers": (" Nobody on the rota has answered."),
    }.get(step.level, "")
    text = f"Urgent ticket #{ticket.number}: {subject}"
    headline = f":rotating_light: *Urgent ticket #{ticket.number}* from {sender}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{headline}\n>{subject}{why}\n{level}".rstrip(),
            },
        },
        {
            "type": "actions",
            "block_id": f"page_{step.page_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": ACTION_ACK,
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "style": "primary",
                    "value": str(step.page_id),
                },
                {
                    "type": "button",
                    "action_id": ACTION_CLAIM,
                    "text": {"type": "plain_text", "text": "Claim"},
                    "value": str(step.page_id),
                },
            ],
        },
    ]
    return text, blocks


def morning_text(report: MorningReport) -> str:
    since = slack_date(report.since)
    if not report.total:
        return f":sunrise: Good morning! Nothing came in overnight (since {since})."
    head = (
        f":sunrise: Good morning! {report.total} ticket{'s' if report.total != 1 else ''} "
        "came in overnight"
        f" (since {since}), {report.unclaimed} still unclaimed:"
    )
    lines = [_night_line(ticket) for ticket in report.tickets]
    hidden = report.total - len(report.tickets)
    more = f"\n…and {hidden} more: `/support open`" if hidden > 0 else ""
    return head + "\n" + "\n".join(lines) + more


def _night_line(ticket: NightTicket) -> str:
    notes = []
    if ticket.paged is not None:
        who = ", ".join(f"<@{u}>" for u in ticket.paged) or "nobody"
        if ticket.acknowledged_by and ticket.acknowledged_after is not None:
            took = duration(ticket.acknowledged_after)
            notes.append(f"paged {who}; <@{ticket.acknowledged_by}> acknowledged in {took}")
        else:
            notes.append(f"paged {who}; not acknowledged")
    if ticket.auto_reply is not None:
        notes.append("answered automatically" if ticket.auto_reply == "template" else "auto-acknowledged")
    if ticket.status == TicketStatus.RESOLVED:
        notes.append("resolved")
    elif ticket.owner:
        notes.append(f"claimed by <@{ticket.owner}>")
    else:
        notes.append("*unclaimed*")
    subject = escape(truncate(ticket.subject or "(no subject)", 80))
    return f"• #{ticket.number} {subject}: {'; '.join(notes)}"


def duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"


def _thread_notice(session: Session, ticket: Ticket, text: str, now: datetime, key: str) -> None:
    enqueue(
        session,
        kind=SLACK_TICKET_NOTICE,
        lane=slack_lane(ticket.slack_channel or ""),
        now=now,
        ticket_id=ticket.id,
        payload={"text": text},
        dedupe_key=key,
    )
