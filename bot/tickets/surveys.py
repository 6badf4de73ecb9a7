"""Satisfaction surveys: one short email after each resolution, answered with signed links.

A survey is driven by the audit log, not by a timer per ticket: every `resolved` event
is one resolution, numbered by how many the ticket had so far (`Survey.round`). Once it
is `survey_delay_minutes` old, the scheduler's job gives it exactly one `Survey` row
(unique per ticket and round) and, in the same transaction, queues the email; a
restart, a second replica or a job that runs late can neither skip nor repeat it.

The links are signed (bot/tickets/survey_links.py); answers and opt-outs are kept by
bot/tickets/survey_answers.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.mail.compose import sender_name
from bot.storage.models import Event, Message, RotaMember, Survey, Ticket
from bot.tickets.autoack import AUTO_AUTHOR, detect_language, localised_template
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.replies import message_to_answer, queue_outgoing, recipient_of
from bot.tickets.status import TicketStatus
from bot.tickets.survey_answers import opted_out
from bot.tickets.survey_links import FALLBACK_LINKS, survey_key, survey_links
from bot.tickets.template_vars import reply_variables
from bot.tickets.templates import TemplateError, render_template

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

SURVEY_TEMPLATE = "survey"
# Resolutions older than this when the job first sees them are left alone: switching
# surveys on (or a bot that was down for days) must not mail every customer in the
# history about a request they have long forgotten.
CATCH_UP = timedelta(days=2)


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
    if ticket.status == TicketStatus.SPAM:
        return "the ticket is marked as spam"
    if not resolution.latest or ticket.status != TicketStatus.RESOLVED:
        return "the ticket was reopened before the survey was due"
    if not settings.surveys:
        return "surveys are off (SURVEYS=false)"
    if ticket.auto_reason or ticket.malformed:
        # RFC 3834: nothing automatic goes to automatic mail, a survey included.
        return f"the ticket came from automatic mail ({ticket.auto_reason or 'malformed'})"
    to = recipient_of(ticket, message_to_answer(session, ticket.id), settings.support_address)
    if to is None:
        return "there is no customer address to send it to"
    if opted_out(session, [to.addr_spec, ticket.customer.email if ticket.customer else ""]):
        return f"{to.addr_spec} asked for no more surveys"
    return ""


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
        text = text.rstrip("\n") + "\n\n" + FALLBACK_LINKS.get(language, FALLBACK_LINKS["en"]).format(**links)
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
