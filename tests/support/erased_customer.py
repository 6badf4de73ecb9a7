"""The customer the erasure tests erase: her mail, and the words that must vanish with her."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.stats import queries
from bot.storage.models import Survey
from bot.tickets.replies import send_reply
from bot.tickets.workflow import resolve_ticket, set_tags
from tests.support.settings import SUPPORT_ADDRESS

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ADDRESS = "maria.rossi@example.org"
NAME = "Maria Rossi"
SUBJECTS = ("Fattura sbagliata", "Ordine 4471 in ritardo", "Password dimenticata")
PHRASE = "il mio numero cliente"
COMMENT = "servizio lentissimo"
FILENAME = "contratto-rossi.pdf"
NEEDLES = (ADDRESS, NAME, *SUBJECTS, PHRASE, COMMENT, FILENAME)


def her_mail(n: int, subject: str, *, reply_to: str | None = None, attach: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = f'"{NAME}" <{ADDRESS}>'
    msg["To"] = SUPPORT_ADDRESS
    msg["Subject"] = subject if reply_to is None else f"Re: {subject}"
    msg["Date"] = format_datetime(BASE + timedelta(minutes=n))
    msg["Message-ID"] = make_msgid(f"rossi{n}", domain="example.org")
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content(f"Buongiorno, {PHRASE} è 8812. Messaggio {n}.\n")
    if attach:
        msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename=FILENAME)
    return bytes(msg)


def message_id(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise ValueError("no Message-ID")


def reply_tag_and_resolve(
    session: Session,
    ticket_id: int,
    *,
    text: str,
    settings: Settings,
    replied_at: datetime,
    tagged_at: datetime,
    resolved_at: datetime,
) -> None:
    """An agent's work on one of her tickets: a templated reply, a tag, the resolution."""
    send_reply(
        session,
        ticket_id=ticket_id,
        agent_id="U0AGENT",
        agent_name="Agent",
        text=text,
        template_name="thanks",
        now=replied_at,
        settings=settings,
    )
    set_tags(session, ticket_id, "U0AGENT", ["billing"], tagged_at)
    resolve_ticket(session, ticket_id, "U0AGENT", resolved_at)


def answered_survey(
    ticket_id: int, *, resolved_at: datetime, sent_at: datetime, solved: bool, answered_at: datetime
) -> Survey:
    """Her survey answer, with the comment that must vanish with her."""
    return Survey(
        ticket_id=ticket_id,
        round=1,
        agent="U0AGENT",
        resolved_at=resolved_at,
        status="sent",
        sent_at=sent_at,
        solved=solved,
        comment=COMMENT,
        answered_at=answered_at,
    )


def anonymous_figures(factory: sessionmaker[Session], now: datetime) -> tuple:
    """The statistics an erasure must leave as they were (it keeps her tickets' figures)."""
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    with factory() as session:
        return (
            sorted(
                (round(r.created), -1 if r.first_reply is None else round(r.first_reply))
                for r in queries.first_responses(session, start, end)
            ),
            sorted((round(r.created), round(r.resolved)) for r in queries.resolutions(session, start, end)),
            queries.survey_totals(session, start, end),
            queries.tag_counts(session, start - timedelta(days=1), start, end),
            queries.template_uses(session, start, end),
            sorted(queries.work_by_person(session, start, end).items()),
            sorted(queries.created_since(session, start)),
        )
