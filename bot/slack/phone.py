"""Phone registration and the test page, as Slack says them; and the test page's DM queued."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.outbox.queue import SLACK_TICKET_NOTICE, enqueue, enqueue_post, slack_lane
from bot.phone.numbers import MAX_ATTEMPTS, Confirmed, PhoneError, Refused
from bot.phone.pages import test_calls
from bot.slack.render import escape
from bot.storage.models import Ticket
from bot.storage.models_phone import PhoneDelivery

# What the ticket's thread hears of a page's call: how it ended when nobody was reached.
_UNREACHED = {"busy": "busy", "no-answer": "no answer", "failed": "the call failed", "canceled": ""}

PHONE_USAGE = (
    "*Phone pages*\n"
    "• `/oncall phone +39 333 123 4567`: register your number (a code comes by SMS)\n"
    "• `/oncall phone confirm 123456`: confirm it with that code\n"
    "• `/oncall phone remove`: forget your number\n"
    "• `/oncall test`: page yourself through every channel you have"
)
NOT_SET_UP = "Phone pages are not set up on this bot (no `TWILIO_ACCOUNT_SID`): pages come by Slack only."

_ERRORS = {
    "invalid": "That is not a phone number I can call; write it with its country code: `+39 333 123 4567`.",
    "taken": "That number is already registered by someone else.",
    "too_many": "Too many codes asked for today; try again tomorrow.",
}
_REFUSALS = {
    "no_code": "There is no code waiting: start with `/oncall phone +39 333 …`.",
    "expired": "That code has expired: ask for a new one with `/oncall phone +39 333 …`.",
    "too_many": f"{MAX_ATTEMPTS} wrong codes: that one is spent. Ask again with `/oncall phone +39 333 …`.",
    "taken": "That number was registered by someone else meanwhile.",
}


def phone_status(number: str | None, pending: str | None) -> str:
    lines = [
        f"Your phone for pages: *{escape(number)}*." if number else "You have no phone registered for pages."
    ]
    if pending:
        lines.append(f"Waiting for the code sent to {escape(pending)}: `/oncall phone confirm 123456`.")
    return "\n".join([*lines, PHONE_USAGE])


def code_sent(number: str) -> str:
    return (
        f":iphone: I sent a code by SMS to *{escape(number)}*. "
        "Confirm with `/oncall phone confirm 123456` within 15 minutes."
    )


def phone_error(exc: PhoneError) -> str:
    return _ERRORS.get(exc.reason, "That did not work; please try again.")


def confirmed_or_refused(outcome: Confirmed | Refused) -> str:
    if isinstance(outcome, Confirmed):
        return (
            f":white_check_mark: *{escape(outcome.number)}* is confirmed: pages can call and text you there. "
            "`/oncall test` tries it."
        )
    if outcome.reason == "wrong":
        return f"That code is not right; {outcome.attempts_left} tries left."
    return _REFUSALS.get(outcome.reason, "That did not work; please try again.")


def removed(number: str | None) -> str:
    if number is None:
        return "You had no phone registered; nothing changed."
    return f"Forgot *{escape(number)}*: pages reach you in Slack only."


def queue_test_page(session: Session, user: str, now: datetime, *, phone_on: bool) -> list[str]:
    """`/oncall test`: a DM, and a call and SMS when the person has a number; the channels used."""
    key = f"test-page:{user}:{now.isoformat()}"
    enqueue_post(
        session,
        user,
        ":rotating_light: *Test page* from supportbot: nothing is wrong. "
        "This is what a page looks like in Slack; it is not counted anywhere.",
        now=now,
        dedupe_key=f"{key}:dm",
    )
    return ["Slack", *(test_calls(session, user=user, now=now, key=key) if phone_on else [])]


def test_page_sent(channels: list[str], *, phone_on: bool, has_phone: bool) -> str:
    how = ", ".join(c if c == "Slack" else {"call": "a call", "sms": "an SMS"}[c] for c in channels)
    text = f":rotating_light: Test page on its way: {how}."
    if phone_on and not has_phone:
        text += " You have no phone registered, so pages reach you in Slack only: `/oncall phone +39 333 …`."
    elif phone_on:
        text += " Press 1 on the call to check the keypress reaches us."
    return text


def call_outcome_notice(session: Session, delivery: PhoneDelivery, now: datetime) -> None:
    """A page's call that reached nobody (busy, no answer, failed) is said in the ticket's thread."""
    words = _UNREACHED.get(delivery.status)
    if not words or delivery.kind != "call" or delivery.test or delivery.ticket_id is None:
        return
    ticket = session.get(Ticket, delivery.ticket_id)
    if ticket is None:
        return
    enqueue(
        session,
        kind=SLACK_TICKET_NOTICE,
        lane=slack_lane(ticket.slack_channel or ""),
        now=now,
        ticket_id=ticket.id,
        payload={"text": f":telephone_receiver: The call to <@{delivery.user_id}>: {words}."},
        dedupe_key=f"call-outcome:{delivery.sid}",
    )
