"""The SQL behind the stats: each function fetches one period's rows, aggregated in the
database wherever the figure allows it (counts, GROUP BY, MIN), and returns plain tuples.

Day buckets are counted in 15-minute slices of UTC (every time zone's offset is a whole
number of quarter hours), so the database groups without knowing the team's time zone
and Python folds the slices into local days, right across DST changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from bot.storage.models import Event, Message, Page, PageAttempt, Survey, Tag, Ticket, TicketTag
from bot.tickets.status import UNRESOLVED, TicketStatus

BUCKET_SECONDS = 900
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
# Authors of replies no person wrote: the auto-acknowledgement and template automation.
ROBOT_AUTHORS = ("auto", "system")
UNRESOLVED_STATUSES = UNRESOLVED
# Spam tickets are nobody's work and count nowhere but in `spam_created`: every query
# below leaves them out, by the ticket's status now (Not spam brings one back into the figures).
SPAM = TicketStatus.SPAM


def _not_spam(ticket_id: Any) -> ColumnElement[bool]:
    """For rows that point at a ticket (events, messages): that ticket is not spam. The
    spam tickets are few, so the subquery is small however many rows it filters."""
    return ticket_id.not_in(select(Ticket.id).where(Ticket.status == SPAM).scalar_subquery())


class Bucketed(NamedTuple):
    kind: str
    bucket: int  # seconds since the epoch // BUCKET_SECONDS
    count: int


# Per-ticket times come back as seconds since the epoch: tens of thousands of rows are
# cheaper to read as numbers than as datetimes, and the arithmetic wants numbers anyway.


class FirstResponse(NamedTuple):
    ticket_id: int
    created: float
    first_reply: float | None


class Resolution(NamedTuple):
    ticket_id: int
    created: float
    resolved: float


class SurveyTotals(NamedTuple):
    agent: str | None
    answered: int
    solved: int


class SurveyComment(NamedTuple):
    number: int
    agent: str | None
    solved: bool | None
    comment: str
    answered_at: datetime


class TagCount(NamedTuple):
    name: str
    count: int
    previous: int


class TemplateUse(NamedTuple):
    name: str
    replies: int
    tickets: int


class TemplateOutcome(NamedTuple):
    name: str
    uses: int  # tickets whose outcome is known
    closed: int


class Acknowledgement(NamedTuple):
    user: str
    paged_at: datetime
    acknowledged_at: datetime


def _execute(session: Session, statement: Any) -> Result[Any]:
    """Run a Core statement on the session's connection: plain rows, without the ORM's
    per-row processing (tens of thousands of rows for a quarter)."""
    return session.connection().execute(statement)


def _bucket(session: Session, column: Any) -> ColumnElement[int]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(epoch_seconds(session, column) / BUCKET_SECONDS), Integer)
    # SQLite keeps these columns as ISO text; strftime('%s') reads them as UTC seconds.
    return cast(func.strftime("%s", column), Integer) // BUCKET_SECONDS


def _by_a_person(author: Any) -> ColumnElement[bool]:
    return and_(author.is_not(None), author.not_in(ROBOT_AUTHORS))


def _human_reply() -> ColumnElement[bool]:
    return and_(
        Message.direction == "out",
        _by_a_person(Message.author),
        # A reply that never reached the customer answered nobody.
        Message.delivery_status.is_distinct_from("failed"),
    )


# -- volume and backlog ----------------------------------------------------------------------


def created_since(session: Session, since: datetime) -> list[Bucketed]:
    """Tickets created from `since` on (to now: the backlog is worked back from today's)."""
    bucket = _bucket(session, Ticket.created_at)
    rows = _execute(
        session,
        select(bucket, func.count())
        .where(Ticket.created_at >= since, Ticket.status != SPAM)
        .group_by(bucket),
    ).all()
    return [Bucketed("created", int(b), int(n)) for b, n in rows]


def resolution_changes_since(session: Session, since: datetime) -> list[Bucketed]:
    """Resolutions, and what undid one (a reopen, or a status set back from resolved), from `since` on."""
    undone = or_(
        Event.action == "reopened",
        and_(
            Event.action.in_(("waiting_on_customer", "status_changed")),
            Event.data["previous"].as_string() == "resolved",
        ),
    )
    kind = case((Event.action == "resolved", literal("resolved")), else_=literal("reopened"))
    bucket = _bucket(session, Event.at)
    rows = _execute(
        session,
        select(kind, bucket, func.count())
        .where(Event.at >= since, or_(Event.action == "resolved", undone), _not_spam(Event.ticket_id))
        .group_by(kind, bucket),
    ).all()
    return [Bucketed(str(k), int(b), int(n)) for k, b, n in rows]


def unresolved_now(session: Session) -> int:
    return int(
        session.connection().scalar(select(func.count()).where(Ticket.status.in_(UNRESOLVED_STATUSES))) or 0
    )


def spam_created(session: Session, start: datetime, end: datetime) -> int:
    """Tickets created in [start, end) that are spam now: the one figure they appear in."""
    return int(
        session.connection().scalar(
            select(func.count()).where(
                Ticket.created_at >= start, Ticket.created_at < end, Ticket.status == SPAM
            )
        )
        or 0
    )


# -- response and resolution times ---------------------------------------------------------------


def epoch_seconds(session: Session, column: Any) -> ColumnElement[float]:
    """A UTC timestamp column as seconds since the epoch (to the millisecond on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        # date_part is double precision; EXTRACT is numeric since PostgreSQL 14, several
        # times slower over tens of thousands of rows.
        return func.date_part("epoch", column, type_=Float)
    # julianday is exact to about a tenth of a millisecond at today's dates: round to the
    # millisecond, so whole seconds stay whole.
    return func.round((func.julianday(column) - _UNIX_EPOCH_JULIAN_DAY) * 86400.0, 3, type_=Float)


def first_responses(session: Session, start: datetime, end: datetime) -> list[FirstResponse]:
    """Each ticket created in [start, end) with its first reply by a person (None: not yet)."""
    first = epoch_seconds(session, func.min(Message.created_at))
    rows = _execute(
        session,
        select(Ticket.id, epoch_seconds(session, Ticket.created_at), first)
        # No reply is older than the period's tickets: saying so lets PostgreSQL read only
        # the period's replies instead of hashing every reply ever sent.
        .outerjoin(Message, and_(Message.ticket_id == Ticket.id, _human_reply(), Message.created_at >= start))
        .where(Ticket.created_at >= start, Ticket.created_at < end, Ticket.status != SPAM)
        .group_by(Ticket.id, Ticket.created_at),
    ).all()
    return [FirstResponse(i, c, f) for i, c, f in rows]


def resolutions(session: Session, start: datetime, end: datetime) -> list[Resolution]:
    """Tickets whose last resolution falls in [start, end) and that are still resolved.

    A reopened ticket counts once, in the period of its last resolution, with the time
    from its creation to that resolution: the customer waited all along. `resolved_at`
    is cleared whenever a ticket leaves "resolved", so it alone says "still resolved"
    (and a status condition here made SQLite walk every resolved ticket by status).
    """
    rows = _execute(
        session,
        select(
            Ticket.id,
            epoch_seconds(session, Ticket.created_at),
            epoch_seconds(session, Ticket.resolved_at),
        ).where(Ticket.resolved_at >= start, Ticket.resolved_at < end),
    ).all()
    return [Resolution(i, c, r) for i, c, r in rows]


# -- satisfaction and tags ------------------------------------------------------------------------


def survey_totals(session: Session, start: datetime, end: datetime) -> list[SurveyTotals]:
    solved = func.sum(case((Survey.solved.is_(True), 1), else_=0))
    rows = _execute(
        session,
        select(Survey.agent, func.count(), solved)
        .where(
            Survey.answered_at >= start,
            Survey.answered_at < end,
            Survey.solved.is_not(None),
            _not_spam(Survey.ticket_id),
        )
        .group_by(Survey.agent),
    ).all()
    return [SurveyTotals(a, int(n), int(s or 0)) for a, n, s in rows]


def survey_comments(
    session: Session, start: datetime, end: datetime, *, agent: str | None = None, limit: int = 5
) -> list[SurveyComment]:
    query = (
        select(Ticket.number, Survey.agent, Survey.solved, Survey.comment, Survey.answered_at)
        .join(Ticket, Ticket.id == Survey.ticket_id)
        .where(
            Survey.answered_at >= start,
            Survey.answered_at < end,
            Survey.comment.is_not(None),
            Survey.comment != "",
        )
        .order_by(Survey.answered_at.desc(), Survey.id.desc())
        .limit(limit)
    )
    if agent is not None:
        query = query.where(Survey.agent == agent)
    return [SurveyComment(int(n), a, s, str(c), at) for n, a, s, c, at in _execute(session, query)]


def tag_counts(session: Session, previous_start: datetime, start: datetime, end: datetime) -> list[TagCount]:
    """Tickets created per tag in [start, end) and in the period before, [previous_start, start)."""
    now = func.sum(case((Ticket.created_at >= start, 1), else_=0))
    before = func.sum(case((Ticket.created_at < start, 1), else_=0))
    rows = _execute(
        session,
        select(Tag.name, now, before)
        .select_from(Ticket)
        .join(TicketTag, TicketTag.ticket_id == Ticket.id)
        .join(Tag, Tag.id == TicketTag.tag_id)
        .where(Ticket.created_at >= previous_start, Ticket.created_at < end, Ticket.status != SPAM)
        .group_by(Tag.name),
    ).all()
    return [TagCount(str(name), int(n or 0), int(b or 0)) for name, n, b in rows]


# -- people ------------------------------------------------------------------------------------------


class Work(NamedTuple):
    handled: int  # distinct tickets replied to or resolved
    replies: int


def work_by_person(session: Session, start: datetime, end: datetime) -> dict[str, Work]:
    """Per person, in [start, end): tickets they replied to or resolved, and replies sent.

    One pass over the period's replies and resolutions, both counted in the database.
    """
    replied = select(
        Message.author.label("who"), Message.ticket_id.label("ticket_id"), literal(1).label("reply")
    ).where(
        _human_reply(), Message.created_at >= start, Message.created_at < end, _not_spam(Message.ticket_id)
    )
    resolved = select(Event.actor, Event.ticket_id, literal(0)).where(
        Event.action == "resolved",
        Event.at >= start,
        Event.at < end,
        _by_a_person(Event.actor),
        _not_spam(Event.ticket_id),
    )
    both = union_all(replied, resolved).subquery()
    rows = _execute(
        session,
        select(both.c.who, func.count(distinct(both.c.ticket_id)), func.sum(both.c.reply)).group_by(
            both.c.who
        ),
    ).all()
    return {str(who): Work(int(n), int(r or 0)) for who, n, r in rows}


def template_uses(session: Session, start: datetime, end: datetime) -> list[TemplateUse]:
    """Replies sent from each template in [start, end), automatic ones included."""
    rows = _execute(
        session,
        select(Message.template_name, func.count(), func.count(distinct(Message.ticket_id)))
        .where(
            Message.direction == "out",
            Message.template_name.is_not(None),
            Message.created_at >= start,
            Message.created_at < end,
        )
        .group_by(Message.template_name),
    ).all()
    return [TemplateUse(str(name), int(n), int(t)) for name, n, t in rows]


def pages_by_person(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Pages that reached each person (escalations included) in [start, end)."""
    rows = _execute(
        session,
        select(PageAttempt.user_id, func.count(distinct(PageAttempt.page_id)))
        .where(PageAttempt.at >= start, PageAttempt.at < end)
        .group_by(PageAttempt.user_id),
    ).all()
    return {str(user): int(n) for user, n in rows}


def acknowledgements(session: Session, start: datetime, end: datetime) -> list[Acknowledgement]:
    """Pages started in [start, end) and acknowledged, from when the acknowledger was first paged.

    Timed from their own first page rather than the page's start: whoever was woken by an
    escalation should not be charged for the minutes the first person slept through.
    """
    first_paged = func.min(PageAttempt.at)
    rows = _execute(
        session,
        select(Page.acknowledged_by, Page.started_at, Page.acknowledged_at, first_paged)
        .outerjoin(
            PageAttempt, and_(PageAttempt.page_id == Page.id, PageAttempt.user_id == Page.acknowledged_by)
        )
        .where(
            Page.started_at >= start,
            Page.started_at < end,
            Page.acknowledged_by.is_not(None),
            Page.acknowledged_at.is_not(None),
        )
        .group_by(Page.id, Page.acknowledged_by, Page.started_at, Page.acknowledged_at),
    ).all()
    return [Acknowledgement(str(user), first or started, acked) for user, started, acked, first in rows]


# -- template outcomes (close rates) ------------------------------------------------------------------


def template_outcomes(
    session: Session, start: datetime, end: datetime, window: float
) -> list[TemplateOutcome]:
    """Close rates of the templates used in [start, end), by `/support automation`'s rule.

    Per template and ticket, the latest delivered reply in the period closed the ticket
    when a resolution followed within `window` seconds with no customer message in
    between (an out-of-office is no message). Counted in the database: the EXISTS probes
    use each ticket's own few events and messages.
    """
    latest = (
        select(
            Message.template_name.label("name"),
            Message.ticket_id.label("ticket_id"),
            func.max(Message.created_at).label("at"),
        )
        .where(
            Message.direction == "out",
            Message.template_name.is_not(None),
            Message.created_at >= start,
            Message.created_at < end,
            Message.delivery_status.is_distinct_from("failed"),
        )
        .group_by(Message.template_name, Message.ticket_id)
        .subquery()
    )
    until = epoch_seconds(session, latest.c.at) + window
    customer = aliased(Message)
    resolved = (
        select(Event.id)
        .where(
            Event.ticket_id == latest.c.ticket_id,
            Event.action == "resolved",
            Event.at > latest.c.at,
            epoch_seconds(session, Event.at) <= until,
        )
        .exists()
    )
    wrote = (
        select(customer.id)
        .where(
            customer.ticket_id == latest.c.ticket_id,
            customer.direction == "in",
            customer.created_at > latest.c.at,
            epoch_seconds(session, customer.created_at) <= until,
            customer.auto_reason.is_(None),
        )
        .exists()
    )
    closed = func.sum(case((and_(resolved, ~wrote), 1), else_=0))
    rows = _execute(session, select(latest.c.name, func.count(), closed).group_by(latest.c.name)).all()
    return [TemplateOutcome(str(name), int(uses), int(done or 0)) for name, uses, done in rows]
