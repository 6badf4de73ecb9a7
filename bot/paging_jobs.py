"""Paging's messages: turning each step of a chain (rota/paging.py) into outbox rows, and
the morning hand-over that tells the day team what the night brought.

Every row carries a dedupe key naming its step, so the same step can never be
queued twice even if a caller retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.config import Settings
from bot.outbox.queue import SLACK_PAGE, SLACK_TICKET_NOTICE, enqueue, enqueue_post, slack_lane
from bot.slack.render import escape, slack_date, truncate
from bot.storage.models import AutoReply, Customer, Page, PageAttempt, Ticket, TicketTriage
from rota.paging import Acknowledged, PagePolicy, PageStep, Stopped, due_steps

ACTION_ACK = "page_ack"
ACTION_CLAIM = "page_claim"
_LEVEL_WORDS = {"oncall": "on call", "backup": "backup", "managers": "manager"}


def paging_tick(session: Session, settings: Settings, now: datetime) -> list[PageStep]:
    steps = due_steps(session, now, PagePolicy.from_settings(settings))
    for step in steps:
        step_effects(session, settings, step, now)
    return steps


def step_effects(session: Session, settings: Settings, step: PageStep, now: datetime) -> None:
    ticket = session.get(Ticket, step.ticket_id)
    if ticket is None:
        return
    key = f"page:{step.page_id}:{step.step}"
    if step.level in ("exhausted", "cancelled"):
        icon = ":warning:" if step.level == "exhausted" else ":white_check_mark:"
        _thread_notice(session, ticket, f"{icon} Paging stopped: {step.reason}.", now, f"{key}:{step.level}")
        if step.level == "exhausted":
            enqueue_post(
                session,
                settings.support_channel,
                f":warning: Urgent ticket #{ticket.number} was paged to everyone on the chain and nobody "
                f"acknowledged ({step.reason}). Can anyone take it?",
                now=now,
                dedupe_key=f"{key}:exhausted-channel",
            )
        return
    text, blocks = page_message(session, ticket, step)
    for user in step.users:
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
            dedupe_key=f"{key}:{user}",
        )
    who = ", ".join(f"<@{u}>" for u in step.users)
    again = f" (repeat {step.repeat})" if step.repeat else ""
    _thread_notice(
        session,
        ticket,
        f":rotating_light: Paging {who} ({_LEVEL_WORDS[step.level]}){again}.",
        now,
        f"{key}:thread",
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


def ack_effects(session: Session, ack: Acknowledged, now: datetime) -> None:
    ticket = session.get(Ticket, ack.ticket_id)
    if ticket is None or not ack.first:
        return
    after = _duration(ack.after)
    _thread_notice(
        session,
        ticket,
        f":white_check_mark: <@{ack.by}> acknowledged the page after {after}.",
        now,
        f"ack:{ack.page_id}",
    )
    for user in ack.paged:
        if user != ack.by:
            enqueue_post(
                session,
                user,
                f":white_check_mark: <@{ack.by}> acknowledged urgent ticket #{ticket.number}; "
                "you can stand down.",
                now=now,
                dedupe_key=f"ack:{ack.page_id}:{user}",
            )


def stopped_effects(session: Session, stopped: Stopped, now: datetime) -> None:
    """A chain closed early: say so in the ticket's thread, and stand down everyone it woke."""
    step = stopped.step
    ticket = session.get(Ticket, step.ticket_id)
    if ticket is None:
        return
    key = f"page:{step.page_id}:{step.step}:{step.level}"
    _thread_notice(session, ticket, f":white_check_mark: Paging stopped: {step.reason}.", now, key)
    for user in stopped.paged:
        enqueue_post(
            session,
            user,
            f":white_check_mark: Paging for ticket #{ticket.number} stopped ({step.reason}); "
            "you can stand down.",
            now=now,
            dedupe_key=f"{key}:{user}",
        )


def dnd_notices(session: Session, page_id: int, user: str, now: datetime, escalated: bool) -> None:
    page = session.get(Page, page_id)
    ticket = session.get(Ticket, page.ticket_id) if page else None
    if ticket is None:
        return
    then = " The page moves on to the next person sooner." if escalated else ""
    _thread_notice(
        session,
        ticket,
        f":no_bell: <@{user}> has notifications paused (Do Not Disturb), "
        f"so this page may not wake them.{then}",
        now,
        f"dnd:{page_id}:{user}",
    )


MORNING_WINDOW = timedelta(hours=2)


def morning_handover(session: Session, settings: Settings, calendar: BusinessCalendar, now: datetime) -> bool:
    """At the day's opening, one message: what came in overnight and what became of it."""
    today = calendar.local_day(now)
    opening = calendar.open_interval(today)
    # A bot that was down at opening still tells the day team in the morning; later in
    # the day they have seen the night's tickets for themselves.
    if opening is None or not opening[0] <= now < min(opening[1], opening[0] + MORNING_WINDOW):
        return False
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
        .where(Ticket.created_at >= since, Ticket.created_at < opening[0], Ticket.status != "spam")
        .order_by(Ticket.number)
    ).all()
    lines = []
    for ticket in tickets[:40]:
        page = session.scalar(select(Page).where(Page.ticket_id == ticket.id))
        auto = session.scalar(select(AutoReply).where(AutoReply.ticket_id == ticket.id).limit(1))
        notes = []
        if page is not None:
            paged = session.scalars(
                select(PageAttempt.user_id).where(PageAttempt.page_id == page.id).order_by(PageAttempt.id)
            ).all()
            who = ", ".join(f"<@{u}>" for u in dict.fromkeys(paged)) or "nobody"
            if page.acknowledged_by and page.acknowledged_at:
                took = _duration(page.acknowledged_at - page.started_at)
                notes.append(f"paged {who}; <@{page.acknowledged_by}> acknowledged in {took}")
            else:
                notes.append(f"paged {who}; not acknowledged")
        if auto is not None:
            notes.append("answered automatically" if auto.kind == "template" else "auto-acknowledged")
        if ticket.status == "resolved":
            notes.append("resolved")
        elif ticket.owner:
            notes.append(f"claimed by <@{ticket.owner}>")
        else:
            notes.append("*unclaimed*")
        subject = escape(truncate(ticket.subject or "(no subject)", 80))
        lines.append(f"• #{ticket.number} {subject}: {'; '.join(notes)}")
    if not tickets:
        text = f":sunrise: Good morning! Nothing came in overnight (since {slack_date(since)})."
    else:
        unclaimed = sum(1 for t in tickets if t.status != "resolved" and not t.owner)
        head = (
            f":sunrise: Good morning! {len(tickets)} ticket{'s' if len(tickets) != 1 else ''} "
            "came in overnight"
            f" (since {slack_date(since)}), {unclaimed} still unclaimed:"
        )
        more = f"\n…and {len(tickets) - 40} more: `/support open`" if len(tickets) > 40 else ""
        text = head + "\n" + "\n".join(lines) + more
    queued = enqueue_post(
        session, settings.support_channel, text[:39_000], now=now, dedupe_key=f"morning:{today.isoformat()}"
    )
    return queued is not None


def _duration(delta: timedelta) -> str:
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
