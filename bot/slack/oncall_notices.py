"""The words for what the rota's use cases say must be told: each notice becomes a DM (or
the channel's post) queued in the outbox, in the transaction of the change it reports;
and the answer for the person who acted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.outbox.queue import enqueue_post
from bot.slack.oncall import (
    approval_dm,
    duty_text,
    holder,
    swap_offer_dm,
    time_off_by_manager,
    time_off_text,
    when,
)
from bot.slack.oncall_plan import changes_for_person, published_summary
from bot.slack.render import Block, escape, slack_date
from rota.notices import CompNotice, Notice, SwapNews, SwapNotice, TimeOffNotice
from rota.publishing import PlanPublished
from rota.swap_flow import SwapResult
from rota.swaps import SwapView


def queue_notice(
    session: Session, channel: str, text: str, blocks: Iterable[Block] | None = None, *, now: datetime
) -> None:
    """A DM (`channel` a user id: delivery opens the DM) or a channel post, sent after commit."""
    enqueue_post(session, channel, text, now=now, blocks=list(blocks or []))


def queue_notices(session: Session, notices: Iterable[Notice], tz: ZoneInfo, *, now: datetime) -> None:
    for notice in notices:
        if isinstance(notice, SwapNotice) and notice.news is SwapNews.EXPIRED:
            # The periodic expiry can run again after a crash: one DM per offer, whatever happens.
            enqueue_post(
                session,
                notice.to,
                expired_text(notice.swap),
                now=now,
                dedupe_key=f"swap-expired:{notice.swap.id}",
            )
            continue
        text, blocks = notice_message(notice, tz)
        queue_notice(session, notice.to, text, blocks, now=now)


def notice_message(notice: Notice, tz: ZoneInfo) -> tuple[str, list[Block]]:
    if isinstance(notice, SwapNotice):
        if notice.news is SwapNews.OFFERED:
            return swap_offer_dm(notice.swap, tz)
        if notice.news is SwapNews.NEEDS_APPROVAL:
            return approval_dm(notice.swap, tz)
        return swap_notice_text(notice, tz), []
    if isinstance(notice, TimeOffNotice):
        if notice.cancelled:
            return f"<@{notice.actor}> cancelled your time off {time_off_text(notice.time_off)}.", []
        return time_off_by_manager(notice.time_off, notice.clashes, notice.actor, tz)
    if isinstance(notice, CompNotice):
        line = notice.line
        return (
            f"<@{notice.actor}> adjusted your on-call compensation by {line.amount:+} {line.unit}: "
            f"{escape(line.note)}",
            [],
        )
    return changes_for_person(notice, tz)


def swap_notice_text(notice: SwapNotice, tz: ZoneInfo) -> str:
    swap, actor, news = notice.swap, notice.actor, notice.news
    duty = duty_text(notice.duty, tz)
    giver, taker = swap.from_user, swap.to_user
    since = " from now" if notice.under_way else ""
    approved = f" (approved by <@{actor}>)" if notice.approved else ""
    if news is SwapNews.ACCEPTED_AWAITS_MANAGER:
        return f"<@{taker}> accepted your offer of the on-call duty {duty}; it waits for a manager."
    if news is SwapNews.DECLINED:
        return f"<@{taker}> declined your offer of the on-call duty {duty}."
    if news is SwapNews.REJECTED:
        return (
            f"<@{actor}> rejected the {swap.kind} of the on-call duty {duty}: it stays with {holder(giver)}."
        )
    if news is SwapNews.HANDED_OVER:
        verb = "took over" if swap.kind == "cover" else "now holds"
        return f"<@{taker}> {verb} your on-call duty {duty}{since}{approved}."
    if news is SwapNews.NOW_YOURS:
        return f"You now hold the on-call duty {duty}{since}{approved}."
    if news is SwapNews.DECIDED_ELSEWHERE:
        verdict = "approved" if swap.status == "accepted" else "rejected"
        return f"<@{actor}> {verdict} the {swap.kind} of the on-call duty {duty}; nothing left to do."
    if news is SwapNews.WITHDRAWN:
        return f"<@{actor}> withdrew the swap of the on-call duty {duty}."
    if news is SwapNews.EXPIRED:
        return expired_text(swap)
    raise ValueError(f"no words for {news}")  # OFFERED and NEEDS_APPROVAL carry buttons


def expired_text(swap: SwapView) -> str:
    span = f"from {slack_date(swap.duty.start)} to {slack_date(swap.duty.end)}"
    return (
        f"Your offer of your duty {span} to <@{swap.to_user}> expired without an answer. "
        "It is still yours: offer it to someone else with `/oncall swap`."
    )


# -- what the person who acted reads ------------------------------------------------------


def offered_text(swap: SwapView, tz: ZoneInfo) -> str:
    expiry = f"; the offer expires {when(swap.expires_at, tz)}" if swap.expires_at else ""
    return (
        f"You offered your duty {duty_text(swap.duty, tz)} to <@{swap.to_user}>. "
        f"They have a DM with Accept and Decline{expiry}."
    )


def swap_reply(result: SwapResult, tz: ZoneInfo) -> str:
    swap = result.swap
    duty = duty_text(result.duty, tz)
    giver, taker = swap.from_user, swap.to_user
    if swap.status == "offered":
        return offered_text(swap, tz)
    if swap.status == "cancelled":
        return f"Withdrawn: the request for {duty}."
    if swap.status == "awaiting_approval":
        if swap.kind == "swap" and giver:
            return f"You accepted <@{giver}>'s duty {duty}; it waits for a manager's approval."
        return f"You asked to cover {duty}; it waits for a manager's approval."
    if swap.status == "declined":
        return f"You declined <@{giver}>'s duty {duty}."
    if swap.status == "rejected":
        return f"Rejected: {duty} stays with {holder(giver)}."
    since = " from now" if result.outcome.under_way else ""
    if result.by_manager:
        return f"Approved: <@{taker}> holds {duty}{since} (was {holder(giver)})."
    return f"You now hold the on-call duty {duty}{since}."


def queue_published(
    session: Session, published: PlanPublished, channel: str, tz: ZoneInfo, *, now: datetime
) -> str:
    """The channel's summary and each person's changes; returns the manager's answer."""
    changes = published.changes
    text, blocks = published_summary(changes, published.until, published.balance, published.by, tz)
    queue_notice(session, channel, text, blocks, now=now)
    queue_notices(session, published.notices, tz, now=now)
    return (
        f"Published: {len(changes)} duties changed. The channel has the summary and "
        f"{len(published.notices)} people have a DM with their changes."
    )
