"""What the mail side tells people in Slack: a late, failed or partly refused reply, and a
backlog of new mail. bot/mail says what happened as data; the words are written here."""

from __future__ import annotations

from datetime import datetime

from bot.mail.sender import CopiesRefused, ReplyFailed, ReplyLate, ReplyNotice
from bot.slack.render import Block, burst_summary, escape

# What the thread note quotes of each refused copy: addresses are at most 254 characters,
# a server's answer is cut (it can be long, and it is outside text).
_SHOWN_ADDRESS = 254
_SHOWN_REASON = 120


def _mention(user: str | None) -> str:
    return f"<@{user}> " if user else ""


def reply_notice(notice: ReplyNotice) -> str:
    """The sender's `write_notice`: the thread's line for a reply that did not go out as sent."""
    who = _mention(notice.author)
    match notice:
        case ReplyLate():
            return (
                f":hourglass: {who}your reply to #{notice.number} has not "
                f"reached the customer after {notice.minutes} minutes: {escape(notice.reason)}. "
                "It stays queued and is retried automatically."
            )
        case ReplyFailed():
            return (
                f":x: {who}your reply to #{notice.number} could not be sent "
                f"and will not be retried: {escape(notice.reason)}. Check the address and send it again."
            )
        case CopiesRefused():
            shown = ", ".join(
                f"{escape(address[:_SHOWN_ADDRESS])} ({escape(reason[:_SHOWN_REASON])})"
                for address, reason in notice.refused.items()
            )
            return (
                f":warning: {who}your reply to #{notice.number} reached the customer, "
                f"but the mail server would not take these copies: {shown}. They did not get the reply."
            )


def burst_post(count: int, oldest: datetime | None = None) -> tuple[str, list[Block]]:
    """The watcher's `burst_notice`: the channel's heads-up before a backlog is posted."""
    return burst_summary(count, oldest)
