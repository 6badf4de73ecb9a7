"""Satisfaction surveys: one short email after each resolution, answered with signed links.

A survey is driven by the audit log, not by a timer per ticket: every `resolved` event
is one resolution, numbered by how many the ticket had so far (`Survey.round`). Once it
is `survey_delay_minutes` old, the scheduler's job gives it exactly one `Survey` row
(unique per ticket and round) and, in the same transaction, queues the email; a
restart, a second replica or a job that runs late can neither skip nor repeat it.

The links carry their own proof: `survey id, answer, expiry` and an HMAC-SHA256 of
them under a server key, so the bot keeps no per-link state, a link cannot be edited
into another survey's or another answer's, and the key never leaves the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.mail.compose import sender_name
from bot.outbox.queue import SLACK_TICKET_NOTICE, enqueue, enqueue_ticket_refresh, slack_lane
from bot.slack.render import escape
from bot.storage.models import AppSecret, Event, Message, RotaMember, Survey, SurveyOptOut, Ticket
from bot.tickets.autoack import AUTO_AUTHOR, DEFAULT_LANGUAGE, detect_language, localised_template
from bot.tickets.events import SYSTEM, customer_actor, record_event
from bot.tickets.replies import (
    SENT_MAILBOX,
    message_to_answer,
    queue_outgoing,
    recipient_of,
    stored_recipient,
)
from bot.tickets.template_vars import reply_variables
from bot.tickets.templates import TemplateError, render_template

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

SURVEY_TEMPLATE = "survey"
COMMENT_LIMIT = 2000
# Resolutions older than this when the job first sees them are left alone: switching
# surveys on (or a bot that was down for days) must not mail every customer in the
# history about a request they have long forgotten.
CATCH_UP = timedelta(days=2)
# The name of the generated link key in `app_secrets`.
SECRET_NAME = "survey_links"

Action = Literal["yes", "no", "unsubscribe"]
_ACTION_CODES: dict[Action, int] = {"yes": 1, "no": 2, "unsubscribe": 3}
_ACTIONS: dict[int, Action] = {code: action for action, code in _ACTION_CODES.items()}

# version, survey id, action, expiry (Unix seconds): 14 bytes, then the 32-byte MAC;
# 62 URL-safe characters in all, short enough for any mail client to keep on one line.
_TOKEN_VERSION = 1
_PAYLOAD = struct.Struct(">BQBI")
_MAC_SIZE = hashlib.sha256().digest_size
_TOKEN_SIZE = _PAYLOAD.size + _MAC_SIZE
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
# Domain separation: the same SURVEY_SECRET could one day key something else.
_KEY_LABEL = b"supportbot survey links v1"


# -- signed links --------------------------------------------------------------------------


class LinkError(ValueError):
    """The token is not a link we made (forged, mangled, or for a key we no longer have)."""


class LinkExpired(LinkError):
    """A link we made, past its expiry: still says which survey, so the page can say so kindly."""

    def __init__(self, claim: LinkClaim) -> None:
        super().__init__("the link has expired")
        self.claim = claim


@dataclass(frozen=True)
class LinkClaim:
    survey_id: int
    action: Action
    expires_at: datetime


def link_key(secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def sign_link(key: bytes, survey_id: int, action: Action, expires_at: datetime) -> str:
    payload = _PAYLOAD.pack(_TOKEN_VERSION, survey_id, _ACTION_CODES[action], int(expires_at.timestamp()))
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")


def read_link(key: bytes, token: str, now: datetime) -> LinkClaim:
    """The claim a token makes, if we signed it; raises LinkError or LinkExpired.

    Only the canonical encoding is accepted: base64 leaves two spare bits in the last
    character, and a decoder that ignored them would take four spellings of one token.
    """
    if len(token) != (_TOKEN_SIZE * 4 + 2) // 3 or not _TOKEN_CHARS.match(token):
        raise LinkError("not a survey link")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise LinkError("not a survey link") from None
    if len(raw) != _TOKEN_SIZE or base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise LinkError("not a survey link")
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise LinkError("not a survey link")
    version, survey_id, code, expiry = _PAYLOAD.unpack(payload)
    if version != _TOKEN_VERSION or code not in _ACTIONS:
        raise LinkError("not a survey link")
    claim = LinkClaim(survey_id, _ACTIONS[code], datetime.fromtimestamp(expiry, UTC))
    # Opting out never expires: an old email's link must still stop the emails.
    if claim.action != "unsubscribe" and now >= claim.expires_at:
        raise LinkExpired(claim)
    return claim


def survey_key(session: Session, settings: Settings, *, create: bool = False) -> bytes | None:
    """The link key: from SURVEY_SECRET, else made once and kept in the database for every replica.

    Readers pass `create=False`: with no key yet, no link can be valid, and a request
    for a forged link must not write anything.
    """
    if settings.survey_secret:
        return link_key(settings.survey_secret)
    row = session.get(AppSecret, SECRET_NAME)
    if row is not None:
        return link_key(row.value)
    if not create:
        return None
    value = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(AppSecret(name=SECRET_NAME, value=value))
            session.flush()
    except IntegrityError:
        # Another replica made it at the same moment: theirs is the one links are signed with.
        row = session.get(AppSecret, SECRET_NAME)
        if row is None:
            raise
        return link_key(row.value)
    return link_key(value)


def survey_links(settings: Settings, key: bytes, survey_id: int, expires_at: datetime) -> dict[Action, str]:
    return {
        action: f"{settings.base_url}/survey/{sign_link(key, survey_id, action, expires_at)}"
        for action in _ACTION_CODES
    }


# -- sending -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyRun:
    sent: tuple[int, ...]  # ticket numbers
    skipped: tuple[tuple[int, str], ...]  # (ticket number, why)


@dataclass(frozen=True)
class _Resolution:
    event: Event
    round: int
    latest: bool  # no later resolution of the same ticket


def send_due_surveys(session: Session, settings: Settings, now: datetime) -> SurveyRun:
    """Give every resolution that is `survey_delay_minutes` old its survey, or its reason for none."""
    due = now - timedelta(minutes=settings.survey_delay_minutes)
    sent: list[int] = []
    skipped: list[tuple[int, str]] = []
    key: bytes | None = None
    for resolution in _due_resolutions(session, due, due - CATCH_UP):
        ticket = session.get(Ticket, resolution.event.ticket_id)
        if ticket is None:
            continue
        reason = _reason_to_skip(session, settings, ticket, resolution)
        if not reason and key is None:
            key = survey_key(session, settings, create=True)
        outcome = _survey_resolution(session, settings, ticket, resolution, reason, key, now)
        if outcome is None:
            continue
        if outcome:
            skipped.append((ticket.number, outcome))
        else:
            sent.append(ticket.number)
    return SurveyRun(tuple(sent), tuple(skipped))


def _due_resolutions(session: Session, due: datetime, oldest: datetime) -> list[_Resolution]:
    """Resolutions in (oldest, due] that have no survey row yet, oldest first."""
    in_window = list(
        session.scalars(
            select(Event)
            .where(
                Event.action == "resolved",
                Event.ticket_id.is_not(None),
                Event.at <= due,
                Event.at > oldest,
            )
            .order_by(Event.id)
        )
    )
    if not in_window:
        return []
    ticket_ids = {e.ticket_id for e in in_window}
    # Rounds count every resolution of the ticket, including those before the window.
    history: dict[int, list[int]] = {}
    for ticket_id, event_id in session.execute(
        select(Event.ticket_id, Event.id)
        .where(Event.action == "resolved", Event.ticket_id.in_(ticket_ids))
        .order_by(Event.id)
    ):
        history.setdefault(ticket_id, []).append(event_id)
    done = {
        (ticket_id, round_)
        for ticket_id, round_ in session.execute(
            select(Survey.ticket_id, Survey.round).where(Survey.ticket_id.in_(ticket_ids))
        )
    }
    out = []
    for event in in_window:
        ids = history[event.ticket_id]  # type: ignore[index]
        round_ = ids.index(event.id) + 1
        if (event.ticket_id, round_) not in done:
            out.append(_Resolution(event, round_, latest=ids[-1] == event.id))
    return out


def _reason_to_skip(session: Session, settings: Settings, ticket: Ticket, resolution: _Resolution) -> str:
    if ticket.status == "spam":
        return "the ticket is marked as spam"
    if not resolution.latest or ticket.status != "resolved":
        return "the ticket was reopened before the survey was due"
    if not settings.surveys:
        return "surveys are off (SURVEYS=false)"
    if ticket.auto_reason or ticket.malformed:
        # RFC 3834: nothing automatic goes to automatic mail, a survey included.
        return f"the ticket came from automatic mail ({ticket.auto_reason or 'malformed'})"
    to = recipient_of(ticket, message_to_answer(session, ticket.id), settings.support_address)
    if to is None:
        return "there is no customer address to send it to"
    if _opted_out(session, [to.addr_spec, ticket.customer.email if ticket.customer else ""]):
        return f"{to.addr_spec} asked for no more surveys"
    return ""


def _opted_out(session: Session, addresses: Iterable[str]) -> bool:
    wanted = {a.strip().lower() for a in addresses if a}
    return (
        bool(wanted)
        and session.scalar(select(SurveyOptOut.email).where(SurveyOptOut.email.in_(wanted))) is not None
    )


def _survey_resolution(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    resolution: _Resolution,
    reason: str,
    key: bytes | None,
    now: datetime,
) -> str | None:
    """Write the survey row (and queue its email); "" when sent, the reason when skipped,
    None when another job got there first."""
    event = resolution.event
    try:
        with session.begin_nested():
            survey = Survey(
                ticket_id=ticket.id,
                round=resolution.round,
                agent=_resolver(event.actor, ticket.owner),
                resolved_at=event.at,
                status="skipped" if reason else "pending",
            )
            session.add(survey)
            session.flush()
            if not reason:
                assert key is not None
                try:
                    message = _queue_survey_mail(session, settings, ticket, survey, key, now)
                except (TemplateError, ValueError, TypeError) as exc:
                    # A broken template must not retry every minute forever; a person sees why.
                    log.warning("survey for ticket %s not sent: %s", ticket.number, exc)
                    reason = f"the survey email could not be written: {exc}"
                    survey.status = "skipped"
                else:
                    survey.status, survey.sent_at = "sent", now
                    record_event(
                        session,
                        ticket_id=ticket.id,
                        actor=SYSTEM,
                        action="survey_sent",
                        at=now,
                        survey_id=survey.id,
                        round=survey.round,
                        message_id=message.id,
                        language=message.template_name.rsplit(".", 1)[-1] if message.template_name else None,
                    )
            if reason:
                record_event(
                    session,
                    ticket_id=ticket.id,
                    actor=SYSTEM,
                    action="survey_skipped",
                    at=now,
                    survey_id=survey.id,
                    round=survey.round,
                    reason=reason,
                )
    except IntegrityError:
        return None
    return reason


def _resolver(actor: str, owner: str | None) -> str | None:
    """Who the answer counts for: the person who pressed Resolve, else the owner."""
    if (
        actor
        and actor not in {SYSTEM, AUTO_AUTHOR}
        and not actor.startswith("customer:")
        and len(actor) <= 32
    ):
        return actor
    return owner


def _queue_survey_mail(
    session: Session, settings: Settings, ticket: Ticket, survey: Survey, key: bytes, now: datetime
) -> Message:
    latest = message_to_answer(session, ticket.id)
    to = recipient_of(ticket, latest, settings.support_address)
    if to is None:
        raise ValueError("no recipient")
    language = detect_language(latest, ticket.subject)
    template = localised_template(session, settings, SURVEY_TEMPLATE, language)
    language = template.language or language
    expires_at = now + timedelta(days=settings.survey_link_days)
    links = survey_links(settings, key, survey.id, expires_at)
    variables = reply_variables(
        session,
        ticket.id,
        agent_name=_agent_name(session, survey.agent),
        support_address=settings.support_address,
        now=now,
        timezone=settings.timezone,
    )
    variables.update(
        survey_yes_url=links["yes"],
        survey_no_url=links["no"],
        survey_unsubscribe_url=links["unsubscribe"],
        survey_link_days=settings.survey_link_days,
    )
    rendered = render_template(template, variables)
    text, html = rendered.text, rendered.html
    if not all(url in text for url in links.values()):
        # A manager's edit dropped a link: the survey still has to be answerable and stoppable.
        text = (
            text.rstrip("\n") + "\n\n" + _FALLBACK_LINKS.get(language, _FALLBACK_LINKS["en"]).format(**links)
        )
        html = None
    if html is not None and not all(url in html for url in links.values()):
        html = None

    # The thread shows what the customer was asked, never the links: whoever holds
    # them can answer in the customer's name.
    shown = text
    for url in links.values():
        shown = shown.replace(url, "[personal link]")
    return queue_outgoing(
        session,
        settings,
        ticket,
        latest,
        to,
        text=text,
        html=html,
        from_name=sender_name(""),
        author=AUTO_AUTHOR,
        template_name=template.name,
        template_version=template.version,
        # RFC 3834 §5: "auto-generated" is for automatic mail that answers nothing.
        auto_submitted="auto-generated",
        now=now,
        view_text=shown,
        # One email per survey, whatever happens: the mailbox's unique key says so too.
        dedupe_key=f"survey:{survey.id}",
    )


def _agent_name(session: Session, agent: str | None) -> str:
    """The resolver's name as the roster knows it from Slack; "" (the template says "we") if unknown."""
    if not agent:
        return ""
    name = session.scalar(select(RotaMember.name).where(RotaMember.user_id == agent))
    return name if name and name != agent else ""


_FALLBACK_LINKS = {
    "en": "Did we solve it?\nYes, solved: {yes}\nNo, not yet: {no}\n\nNo more surveys: {unsubscribe}\n",
    "it": (
        "Abbiamo risolto?\nSì, risolto: {yes}\nNo, non ancora: {no}\n\nNiente più sondaggi: {unsubscribe}\n"
    ),
}


# -- answers -------------------------------------------------------------------------------


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
    message = _survey_message(session, survey_id)
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
        opted_out=_opted_out(session, [recipient]),
        delivered_at=message.sent_at if message.delivery_status == "sent" else None,
    )


def _survey_message(session: Session, survey_id: int) -> Message | None:
    return session.scalar(
        select(Message).where(Message.mailbox == SENT_MAILBOX, Message.dedupe_key == f"survey:{survey_id}")
    )


def _language_of(message: Message) -> str:
    name = message.template_name or ""
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return suffix if suffix in _FALLBACK_LINKS else DEFAULT_LANGUAGE


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


def record_answer(
    session: Session, survey_id: int, *, solved: bool, comment: str | None, now: datetime
) -> AnswerOutcome | None:
    """Keep the customer's answer (the last one wins) and tell the ticket's thread what changed.

    Answering the same way again changes nothing and says nothing, so a reloaded page or
    a mail client fetching the link twice leaves one notice.
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
    message = _survey_message(session, survey_id)
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
        and ticket.status == "resolved"
        and ticket.resolved_at == survey.resolved_at
    )
    if reopened:
        ticket.status = "claimed" if ticket.owner else "open"
        ticket.resolved_at = None
        ticket.updated_at = now
        record_event(
            session,
            ticket_id=ticket.id,
            actor=actor,
            action="reopened",
            at=now,
            previous="resolved",
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
                "text": answer_notice(
                    solved,
                    changed=changed,
                    fresh=first or changed,
                    comment=text if commented else "",
                    agent=survey.agent,
                    reopened=reopened,
                )
            },
        )
        if reopened:
            enqueue_ticket_refresh(
                session, ticket_id=ticket.id, lane=slack_lane(ticket.slack_channel), now=now
            )
    return AnswerOutcome(solved, changed=changed, first=first, commented=commented, reopened=reopened)


def answer_notice(
    solved: bool, *, changed: bool, fresh: bool, comment: str, agent: str | None, reopened: bool = False
) -> str:
    """The thread's line for an answer: mrkdwn, with the customer's words escaped and quoted."""
    icon = ":+1:" if solved else ":-1:"
    verdict = "it is solved" if solved else "it is not solved yet"
    credit = f" (resolved by <@{agent}>)" if agent else ""
    if changed:
        line = f"{icon} The customer changed their answer: {verdict}{credit}."
    elif fresh:
        line = f"{icon} The customer says {verdict}{credit}."
    else:
        line = f":speech_balloon: The customer added a comment to their answer ({verdict})."
    if reopened:
        line += " The ticket is open again."
    if comment:
        quoted = "\n".join(f">{line}" if line else ">" for line in escape(comment).split("\n"))
        line = f"{line}\n{quoted}"
    return line


def opt_out(session: Session, survey_id: int, now: datetime) -> str | None:
    """Stop surveys to the address this survey went to; the address, or None for no such survey."""
    survey = session.get(Survey, survey_id)
    message = _survey_message(session, survey_id) if survey is not None else None
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
