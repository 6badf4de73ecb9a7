"""A page's calls and SMS, queued in the outbox in the caller's transaction, and their words.

What a call says and an SMS reads is plain text, not Slack's: a voice reads it out, and
a phone shows it as it is. The SMS carries the ticket's number as the code to answer with
(`1 123` or `ack 123`, bot/phone/webhooks.py).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.outbox.queue import PHONE_CALL, PHONE_CANCEL, PHONE_SMS, enqueue, phone_lane
from bot.phone.numbers import number_of
from bot.storage.models import Customer, Ticket
from bot.storage.models_phone import PhoneDelivery

# A call in these states has not been answered yet: Twilio can still cancel it.
NOT_ANSWERED = ("queued", "initiated", "ringing")

SPOKEN_SUBJECT = 120
SMS_SUBJECT = 80


def phone_page(
    session: Session,
    *,
    ticket: Ticket,
    page_id: int,
    step: int,
    user: str,
    channel: str,
    now: datetime,
    key: str,
) -> bool:
    """Queue a call or SMS of this step to `user`; False when they have no confirmed number."""
    number = number_of(session, user)
    if number is None:
        return False
    payload = {"to": number, "user": user, "page_id": page_id, "step": step, "ticket": ticket.number}
    if channel == "call":
        payload["say"] = spoken_page(session, ticket)
        kind = PHONE_CALL
    else:
        payload["body"] = sms_page(session, ticket)
        kind = PHONE_SMS
    enqueue(
        session,
        kind=kind,
        lane=phone_lane(number),
        now=now,
        ticket_id=ticket.id,
        payload=payload,
        dedupe_key=f"{key}:{channel}:{user}",
    )
    return True


def stop_ringing(session: Session, *, page_id: int, now: datetime, key: str) -> int:
    """The page is over: cancel its calls still queued or ringing; how many were asked to stop.

    A call already answered goes on: whoever hears it is told the page is over.
    """
    calls = session.scalars(
        select(PhoneDelivery).where(
            PhoneDelivery.page_id == page_id,
            PhoneDelivery.kind == "call",
            PhoneDelivery.status.in_(NOT_ANSWERED),
            PhoneDelivery.sid.is_not(None),
        )
    ).all()
    for call in calls:
        enqueue(
            session,
            kind=PHONE_CANCEL,
            lane=phone_lane(call.number),
            now=now,
            ticket_id=call.ticket_id,
            payload={"sid": call.sid, "to": call.number, "page_id": None},
            dedupe_key=f"{key}:cancel:{call.sid}",
        )
    return len(calls)


def test_calls(session: Session, *, user: str, now: datetime, key: str) -> list[str]:
    """`/oncall test`: a call and an SMS to `user`'s number, marked as a test; the channels queued."""
    number = number_of(session, user)
    if number is None:
        return []
    common = {"to": number, "user": user, "page_id": None, "test": True}
    enqueue(
        session,
        kind=PHONE_CALL,
        lane=phone_lane(number),
        now=now,
        payload={**common, "say": "This is a test page from supportbot. Nothing is wrong."},
        dedupe_key=f"{key}:call",
    )
    enqueue(
        session,
        kind=PHONE_SMS,
        lane=phone_lane(number),
        now=now,
        payload={
            **common,
            "body": "supportbot test page: nothing is wrong. Pages will come from this number.",
        },
        dedupe_key=f"{key}:sms",
    )
    return ["call", "sms"]


def code_sms(session: Session, *, user: str, number: str, code: str, now: datetime) -> None:
    """The registration code, to the number being registered."""
    enqueue(
        session,
        kind=PHONE_SMS,
        lane=phone_lane(number),
        now=now,
        payload={
            "to": number,
            "user": user,
            "page_id": None,
            "test": True,
            "scrub": True,
            "body": f"Your supportbot code is {code}. In Slack: /oncall phone confirm {code}",
        },
    )


def spoken_page(session: Session, ticket: Ticket) -> str:
    sender = _sender(session, ticket)
    subject = _plain(ticket.subject or "no subject", SPOKEN_SUBJECT)
    return f"Urgent support email, ticket {ticket.number}, from {sender}: {subject}."


def sms_page(session: Session, ticket: Ticket) -> str:
    sender = _sender(session, ticket)
    subject = _plain(ticket.subject or "no subject", SMS_SUBJECT)
    return (
        f"URGENT ticket {ticket.number} from {sender}: {subject}. Reply '1 {ticket.number}' to acknowledge."
    )


def _sender(session: Session, ticket: Ticket) -> str:
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if customer is None:
        return "an unknown sender"
    if customer.name.strip():
        return _plain(customer.name, 60)
    return _plain(customer.email.split("@")[-1], 60)


def _plain(text: str, limit: int) -> str:
    # Control characters and markup-like brackets read badly aloud and on a phone's screen.
    cleaned = re.sub(r"[\x00-\x1f\x7f<>]+", " ", text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"
