"""Automatic replies: the after-hours acknowledgement, and the one gate every robot reply passes.

An automatic email is the classic way two systems end up mailing each other forever,
so every automatic reply (an acknowledgement, or a template a manager automated)
goes through `send_automatic_reply`, which refuses:

- mail that was itself automatic: auto-submitted, bounces, lists, our own address,
  unreadable mail (`Ticket.auto_reason`, set at ingestion; RFC 3834 §2);
- a second automatic reply on one ticket;
- a ticket a person has already answered;
- a recipient who got `auto_reply_cap` automatic replies in the last
  `auto_reply_cap_hours`, across tickets, so a responder that opens a new ticket
  with every bounce still gets only a handful of answers.

What goes out is an ordinary reply (stored, audited, threaded, queued for SMTP)
marked `Auto-Submitted: auto-replied` and `X-Auto-Response-Suppress: All`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from bot.storage.models import AutoReply, Message, Ticket
from bot.tickets.events import record_event
from bot.tickets.replies import message_to_answer, recipient_of, send_reply
from bot.tickets.status import TicketStatus
from bot.tickets.template_store import get_template
from bot.tickets.template_vars import reply_variables
from bot.tickets.templates import ReplyTemplate, TemplateError, render_template
from bot.tickets.workflow import TicketError

if TYPE_CHECKING:
    from bot.business_hours import BusinessCalendar
    from bot.config import Settings

log = logging.getLogger(__name__)

# Author of automatic replies on the ticket (Message.author, Event.actor).
AUTO_AUTHOR = "auto"
# What `{{ agent_name }}` reads in an automatic reply, by language: nobody in particular signed it.
AUTO_AGENT_NAMES = {"en": "The support team", "it": "Il team di assistenza"}
DEFAULT_LANGUAGE = "en"

AutoKind = Literal["ack", "template"]


@dataclass(frozen=True)
class AutoReplyOutcome:
    sent: bool
    template: str | None = None  # the template name actually used (with its language)
    withheld: str = ""  # why nothing was sent, in words


# -- the customer's language -------------------------------------------------------------

# Common short words, enough to tell Italian from English in a few lines of text.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "are",
            "you",
            "your",
            "my",
            "i",
            "we",
            "to",
            "of",
            "for",
            "with",
            "have",
            "has",
            "this",
            "that",
            "not",
            "can",
            "please",
            "thanks",
            "hello",
            "hi",
            "it",
            "be",
            "on",
            "at",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "lo",
            "la",
            "le",
            "gli",
            "di",
            "che",
            "non",
            "per",
            "con",
            "sono",
            "è",
            "un",
            "una",
            "mi",
            "ho",
            "ha",
            "grazie",
            "buongiorno",
            "salve",
            "ciao",
            "della",
            "del",
            "nel",
            "sul",
            "questo",
            "questa",
            "vostro",
            "mio",
            "ancora",
            "perché",
        ]
    ),
}
_WORD = re.compile(r"\w+")
_LANGUAGE_TAG = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\s*$")


def detect_language(message: Message | None, subject: str = "") -> str:
    """The customer's language: their Content-Language header, else a word count, else English."""
    if message is None:
        return DEFAULT_LANGUAGE
    for name, value in message.headers or []:
        if name.lower() == "content-language":
            # "it-IT, en" lists the languages in order of the text; the first is the main one.
            found = _LANGUAGE_TAG.match(value.split(",")[0])
            if found:
                return found.group(1).lower()
    words = _WORD.findall(f"{subject}\n{(message.view_text or message.text or '')[:4000]}".casefold())
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    # Too little evidence is no evidence: "Ciao" alone does not make a message Italian.
    if best != DEFAULT_LANGUAGE and scores[best] >= 2 and scores[best] > scores[DEFAULT_LANGUAGE]:
        return best
    return DEFAULT_LANGUAGE


# -- when we will answer ---------------------------------------------------------------------

_DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
}
_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "it": (
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ),
}
_RELATIVE = {"en": ("today", "tomorrow"), "it": ("oggi", "domani")}


def format_opening(opening: datetime, now: datetime, tz: ZoneInfo, language: str) -> str:
    """'tomorrow, Tuesday 24 November, at 09:00 (Europe/Rome time)', in English or Italian.

    Always in the team's time zone, named: we don't know the customer's, and a bare
    "09:00" would be read in theirs.
    """
    lang = language if language in _DAYS else DEFAULT_LANGUAGE
    local, today = opening.astimezone(tz), now.astimezone(tz).date()
    date_words = f"{_DAYS[lang][local.weekday()]} {local.day} {_MONTHS[lang][local.month - 1]}"
    if local.year != today.year:
        date_words += f" {local.year}"
    offset = (local.date() - today).days
    relative = _RELATIVE[lang][offset] if offset in (0, 1) else None
    clock = f"{local:%H:%M}"
    if lang == "it":
        zone = f"(ora di {tz.key})"
        return (
            f"{relative}, {date_words}, alle {clock} {zone}"
            if relative
            else f"{date_words} alle {clock} {zone}"
        )
    zone = f"({tz.key} time)"
    return f"{relative}, {date_words}, at {clock} {zone}" if relative else f"{date_words} at {clock} {zone}"


# -- the gate -----------------------------------------------------------------------------


def auto_reply_refusal(
    session: Session, ticket: Ticket, recipient: str | None, settings: Settings, now: datetime
) -> str:
    """Why no automatic reply may go to this ticket now, or "" when one may."""
    if ticket.status == TicketStatus.SPAM:
        return "it is marked as spam"
    if ticket.auto_reason or ticket.malformed:
        return f"it came from automatic mail ({ticket.auto_reason or 'malformed'})"
    if session.scalar(select(exists().where(AutoReply.ticket_id == ticket.id))):
        return "it already got an automatic reply"
    if session.scalar(select(exists().where(Message.ticket_id == ticket.id, Message.direction == "out"))):
        return "someone has already replied"
    if recipient is None:
        return "there is no address to reply to"
    since = now - timedelta(hours=settings.auto_reply_cap_hours)
    sent = session.scalar(
        select(func.count())
        .select_from(AutoReply)
        .where(AutoReply.address == recipient, AutoReply.sent_at > since)
    )
    if (sent or 0) >= settings.auto_reply_cap:
        return (
            f"{recipient} already got {sent} automatic replies in the last "
            f"{settings.auto_reply_cap_hours:g} hours"
        )
    return ""


def localised_template(session: Session, settings: Settings, name: str, language: str) -> ReplyTemplate:
    """`name` in the customer's language when that version exists (auto_ack → auto_ack.it).

    Tried in order: NAME.<language>, NAME itself, NAME.en, and for a name that already
    carries a language (password_reset.en) its sibling in the customer's language first.
    """
    base, _, suffix = name.rpartition(".")
    stem = base if base and len(suffix) in (2, 3) else name
    candidates = [f"{stem}.{language}", name, f"{stem}.{DEFAULT_LANGUAGE}", stem]
    last: TemplateError | None = None
    for candidate in dict.fromkeys(candidates):
        try:
            return get_template(session, settings.templates_dir, candidate)
        except TemplateError as exc:
            last = exc
    assert last is not None
    raise last


def send_automatic_reply(
    session: Session,
    *,
    ticket: Ticket,
    template_name: str,
    kind: AutoKind,
    settings: Settings,
    now: datetime,
    extra_variables: Callable[[str], dict[str, Any]] | None = None,
) -> AutoReplyOutcome:
    """Send `template_name` (in the customer's language) to the ticket's customer, if the gate allows.

    `extra_variables` gets the language of the template chosen and returns more values
    for it (the acknowledgement's opening time, written in that language).

    Runs in a savepoint: a template that fails to render or a refusal leaves the
    caller's transaction as it was, and the reason is audited on the ticket.
    """
    latest = message_to_answer(session, ticket.id)
    to = recipient_of(ticket, latest, settings.support_address)
    recipient = to.addr_spec.lower() if to is not None else None
    refusal = auto_reply_refusal(session, ticket, recipient, settings, now)
    if refusal:
        _withheld(session, ticket, kind, template_name, refusal, now)
        return AutoReplyOutcome(False, withheld=refusal)
    assert recipient is not None
    language = detect_language(latest, ticket.subject)
    try:
        with session.begin_nested():
            template = localised_template(session, settings, template_name, language)
            variables = reply_variables(
                session,
                ticket.id,
                agent_name=AUTO_AGENT_NAMES.get(template.language, AUTO_AGENT_NAMES[DEFAULT_LANGUAGE]),
                support_address=settings.support_address,
                now=now,
                timezone=settings.timezone,
            )
            if extra_variables is not None:
                variables.update(extra_variables(template.language or language))
            rendered = render_template(template, variables)
            send_reply(
                session,
                ticket_id=ticket.id,
                agent_id=AUTO_AUTHOR,
                agent_name="",
                text=rendered.text,
                html=rendered.html,
                template_name=template.name,
                template_version=template.version,
                now=now,
                settings=settings,
                automatic=True,
                # An acknowledgement answers nothing; an automated template is a real answer.
                await_customer=kind == "template",
            )
            session.add(
                AutoReply(
                    ticket_id=ticket.id,
                    address=recipient,
                    kind=kind,
                    template_name=template.name,
                    sent_at=now,
                )
            )
            session.flush()
    except (TemplateError, TicketError) as exc:
        # A broken template must not stop triage; a person sees why on the ticket's timeline.
        log.warning("automatic %s for ticket %s not sent: %s", kind, ticket.number, exc)
        _withheld(session, ticket, kind, template_name, f"the template could not be used: {exc}", now)
        return AutoReplyOutcome(False, withheld=str(exc))
    return AutoReplyOutcome(True, template=template.name)


def _withheld(
    session: Session, ticket: Ticket, kind: AutoKind, template: str, reason: str, now: datetime
) -> None:
    record_event(
        session,
        ticket_id=ticket.id,
        actor=AUTO_AUTHOR,
        action="auto_reply_withheld",
        at=now,
        kind=kind,
        template=template,
        reason=reason,
    )


# -- the after-hours acknowledgement ------------------------------------------------------------


def acknowledge_after_hours(
    session: Session, *, ticket: Ticket, settings: Settings, calendar: BusinessCalendar, now: datetime
) -> AutoReplyOutcome:
    """Tell the customer we got their mail and when a person will read it."""
    opening = calendar.next_opening(now)
    return send_automatic_reply(
        session,
        ticket=ticket,
        template_name=settings.auto_ack_template,
        kind="ack",
        settings=settings,
        now=now,
        extra_variables=lambda language: {
            "next_opening": format_opening(opening, now, settings.timezone, language),
            "team_timezone": settings.timezone.key,
        },
    )
