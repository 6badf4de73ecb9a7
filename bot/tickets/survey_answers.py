"""Survey answers: what the customer said, their opt-out, and the notice in the ticket's thread.

The answer page (bot/survey_http.py) calls these; the notice's words are written by
the caller's `write_notice` (Slack's are in bot/slack/survey_notices.py), so this
module says what happened and never how it reads in Slack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.outbox.queue import SLACK_TICKET_NOTICE, enqueue, enqueue_ticket_refresh, slack_lane
from bot.storage.models import Message, Survey, SurveyOptOut, Ticket
from bot.tickets.autoack import DEFAULT_LANGUAGE
from bot.tickets.events import SYSTEM, customer_actor, record_event
from bot.tickets.replies import SENT_MAILBOX, stored_recipient
from bot.tickets.status import TicketStatus
from bot.tickets.survey_links import FALLBACK_LINKS

COMMENT_LIMIT = 2000


def opted_out(session: Session, addresses: Iterable[str]) -> bool:
    wanted = {a.strip().lower() for a in addresses if a}
    return (
        bool(wanted)
        and session.scalar(select(SurveyOptOut.email).where(SurveyOptOut.email.in_(wanted))) is not None
    )


@dataclass(frozen=True)
class SurveyFacts:
    """What the survey page needs to know; plain values, read in one short session."""

    survey_id: int
    ticket_number: int
    language: str
    recipient: str
    solved: bool | None
    comment: str | None
    opted_out: bool
    delivered_at: datetime | None  # when SMTP took the email (None: not yet)


def survey_facts(session: Session, survey_id: int) -> SurveyFacts | None:
    survey = session.get(Survey, survey_id)
    if survey is None or survey.status != "sent":
        return None
    ticket = session.get(Ticket, survey.ticket_id)
    message = survey_message(session, survey_id)
    if ticket is None or message is None:
        return None
    recipient = stored_recipient(message).addr_spec.lower()
    return SurveyFacts(
        survey_id=survey.id,
        ticket_number=ticket.number,
        language=_language_of(message),
        recipient=recipient,
        solved=survey.solved,
        comment=survey.comment,
        opted_out=opted_out(session, [recipient]),
        delivered_at=message.sent_at if message.delivery_status == "sent" else None,
    )


def survey_message(session: Session, survey_id: int) -> Message | None:
    return session.scalar(
        select(Message).where(Message.mailbox == SENT_MAILBOX, Message.dedupe_key == f"survey:{survey_id}")
    )


def _language_of(message: Message) -> str:
    name = message.template_name or ""
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return suffix if suffix in FALLBACK_LINKS else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class AnswerOutcome:
    solved: bool
    changed: bool  # a different answer than before
    first: bool  # the first answer to this survey
    commented: bool  # a new comment was stored
    reopened: bool = False  # "not solved" reopened the ticket


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_comment(comment: str | None) -> str:
    """The comment as stored: trimmed, Unix newlines, no control characters (PostgreSQL
    text refuses NUL, and nothing else invisible belongs in a Slack thread)."""
    text = (comment or "").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


@dataclass(frozen=True)
class AnswerNotice:
    """What the ticket's thread is told about an answer; `write_notice` puts it in words."""

    solved: bool
    changed: bool  # a different answer than before
    fresh: bool  # a verdict the thread has not heard yet (first or changed)
    comment: str  # the new comment, cleaned; "" if none
    agent: str | None  # who the answer counts for
    reopened: bool


def record_answer(
    session: Session,
    survey_id: int,
    *,
    solved: bool,
    comment: str | None,
    now: datetime,
    write_notice: Callable[[AnswerNotice], str],
) -> AnswerOutcome | None:
    """Keep the customer's answer (the last one wins) and tell the ticket's thread what changed.

    Answering the same way again changes nothing and says nothing, so a reloaded page or
    a mail client fetching the link twice leaves one notice. The notice is queued in the
    words `write_notice` gives it, in the same transaction as the answer.
    """
    survey = session.get(Survey, survey_id, with_for_update=True)
    if survey is None or survey.status != "sent":
        return None
    text = clean_comment(comment)[:COMMENT_LIMIT]
    first = survey.solved is None
    changed = not first and survey.solved != solved
    commented = bool(text) and text != (survey.comment or "")
    if not (first or changed or commented):
        return AnswerOutcome(solved, changed=False, first=False, commented=False)
    survey.solved = solved
    survey.answered_at = now
    if commented:
        survey.comment = text
    ticket = session.get(Ticket, survey.ticket_id, with_for_update=True)
    assert ticket is not None
    message = survey_message(session, survey_id)
    who = stored_recipient(message).addr_spec.lower() if message is not None else ""
    actor = customer_actor(who) if who else SYSTEM
    record_event(
        session,
        ticket_id=ticket.id,
        actor=actor,
        action="survey_answered",
        at=now,
        survey_id=survey.id,
        round=survey.round,
        solved=solved,
        changed=changed,
        commented=commented,
        agent=survey.agent,
    )
    # The customer says the problem is still there: the case is not closed, just as if
    # they had replied. Only the resolution this survey asked about is undone; a later
    # one (the ticket reopened and resolved again since) is a new conversation, and a
    # change back to "solved" leaves the reopened ticket to staff.
    reopened = (
        not solved
        and (first or changed)
        and ticket.status == TicketStatus.RESOLVED
        and ticket.resolved_at == survey.resolved_at
    )
    if reopened:
        ticket.status = TicketStatus.CLAIMED if ticket.owner else TicketStatus.OPEN
        ticket.resolved_at = None
        ticket.updated_at = now
        record_event(
            session,
            ticket_id=ticket.id,
            actor=actor,
            action="reopened",
            at=now,
            previous=TicketStatus.RESOLVED,
            status=ticket.status,
            survey_id=survey.id,
        )
    if ticket.slack_channel:
        enqueue(
            session,
            kind=SLACK_TICKET_NOTICE,
            lane=slack_lane(ticket.slack_channel),
            now=now,
            ticket_id=ticket.id,
            payload={
                "text": write_notice(
                    AnswerNotice(
                        solved,
                        changed=changed,
                        fresh=first or changed,
                        comment=text if commented else "",
                        agent=survey.agent,
                        reopened=reopened,
                    )
                )
            },
        )
        if reopened:
            enqueue_ticket_refresh(
                session, ticket_id=ticket.id, lane=slack_lane(ticket.slack_channel), now=now
            )
    return AnswerOutcome(solved, changed=changed, first=first, commented=commented, reopened=reopened)


def opt_out(session: Session, survey_id: int, now: datetime) -> str | None:
    """Stop surveys to the address this survey went to; the address, or None for no such survey."""
    survey = session.get(Survey, survey_id)
    message = survey_message(session, survey_id) if survey is not None else None
    if survey is None or message is None:
        return None
    address = stored_recipient(message).addr_spec.lower()
    if session.get(SurveyOptOut, address) is None:
        try:
            with session.begin_nested():
                session.add(SurveyOptOut(email=address, at=now))
                session.flush()
        except IntegrityError:
            return address  # the same click from two tabs: already done
        record_event(
            session,
            ticket_id=survey.ticket_id,
            actor=customer_actor(address),
            action="survey_opted_out",
            at=now,
            survey_id=survey.id,
        )
    return address


def answered_count(session: Session, agent: str) -> tuple[int, int]:
    """(answered, solved) surveys that count for `agent`: a small helper for stats and tests."""
    row = session.execute(
        select(func.count(Survey.id), func.count(Survey.id).filter(Survey.solved.is_(True))).where(
            Survey.agent == agent, Survey.solved.is_not(None)
        )
    ).one()
    return int(row[0]), int(row[1])
