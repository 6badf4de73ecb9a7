"""One period's stats, put together from `queries` and `figures`: what `/support stats`,
the managers' App Home and the benchmark all read."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.stats import figures, queries
from bot.stats.figures import DayVolume, Durations, OnCall, Spread, TagTrend
from bot.stats.period import Period
from bot.stats.queries import SurveyComment
from rota import ledger, store
from rota.fairness import balance_score
from rota.load import LoadWeights

T = TypeVar("T")

# Statements PostgreSQL runs side by side for one report, each on its own connection.
_POSTGRES_WORKERS = 3


class _Fetcher:
    """Starts the report's independent statements up front.

    On PostgreSQL they run in worker threads on their own connections (the driver lets
    go of the GIL while it waits), so the database works on the next statements while
    Python folds the rows of the first ones. Elsewhere, or when the session is bound to
    a connection (whose uncommitted rows another connection would not see), each
    statement runs on the session itself when its result is asked for.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        bind = session.get_bind()
        self.engine = bind if isinstance(bind, Engine) and bind.dialect.name == "postgresql" else None
        self.pool = ThreadPoolExecutor(_POSTGRES_WORKERS) if self.engine is not None else None

    def submit(self, query: Callable[..., T], *args: object) -> Callable[[], T]:
        if self.pool is None:
            return lambda: query(self.session, *args)
        engine = self.engine

        def job() -> T:
            with Session(engine) as session:
                # Just-in-time compilation costs tens of milliseconds a statement and
                # these are all over well before it pays.
                session.execute(text("SET LOCAL jit = off"))
                return query(session, *args)

        return self.pool.submit(job).result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class Timings:
    """Seconds spent on each part of a report: the benchmark prints them.

    On PostgreSQL the statements run side by side from the start (see `_Fetcher`), so a
    part's time is its Python work plus however long it still had to wait for its rows.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


@dataclass(frozen=True)
class StatsConfig:
    calendar: BusinessCalendar
    weights: LoadWeights
    close_rate_days: float = 7.0


@dataclass
class PersonFigures:
    user: str
    handled: int = 0  # distinct tickets replied to or resolved
    replies: int = 0
    answered: int = 0  # surveys answered about their resolutions
    solved: int = 0
    on_call: OnCall = field(default_factory=OnCall)
    pages: int = 0  # pages that reached them
    acknowledged: int = 0
    ack_median: float | None = None  # seconds from being paged to acknowledging
    balances: dict[str, Decimal] = field(default_factory=dict)  # unit → compensation owed

    @property
    def satisfaction(self) -> float | None:
        return figures.rate(self.solved, self.answered)


@dataclass(frozen=True)
class TemplateFigures:
    name: str
    replies: int  # in the period
    tickets: int
    # `/support automation`'s rule, over this period's replies whose outcome is known.
    close_uses: int
    close_rate: float | None


@dataclass
class StatsReport:
    period: Period
    now: datetime
    volume: list[DayVolume]
    created: int
    resolved: int
    reopened: int
    backlog_start: int
    backlog_end: int
    first_response: Durations
    unanswered: int  # tickets of the period with no reply from a person yet
    resolution: Durations
    answered: int
    solved: int
    comments: list[SurveyComment]
    tags: list[TagTrend]
    people: dict[str, PersonFigures]
    balance: float | None  # rota balance score over the period; None with nobody on the roster
    roster: dict[str, float]  # user → weight
    names: dict[str, str]  # user → name, where the rota knows it
    templates: list[TemplateFigures]
    daily_first_response: list[float | None] = field(default_factory=list)  # median business seconds
    daily_resolution: list[float | None] = field(default_factory=list)
    spam: int = 0  # tickets of the period marked as spam: left out of every other figure

    @property
    def satisfaction(self) -> float | None:
        return figures.rate(self.solved, self.answered)

    def person(self, user: str) -> PersonFigures:
        return self.people.get(user) or PersonFigures(user)


def build_report(
    session: Session,
    period: Period,
    now: datetime,
    config: StatsConfig,
    timings: Timings | None = None,
    *,
    full: bool = True,
) -> StatsReport:
    """The period's figures; `full=False` keeps to volume, times and satisfaction (App Home)."""
    fetcher = _Fetcher(session)
    try:
        return _build_report(session, fetcher, period, now, config, timings or Timings(), full)
    finally:
        fetcher.close()


def _build_report(
    session: Session,
    fetcher: _Fetcher,
    period: Period,
    now: datetime,
    config: StatsConfig,
    timings: Timings,
    full: bool,
) -> StatsReport:
    start, end = period.start, period.end
    calendar = config.calendar
    window = timedelta(days=config.close_rate_days)
    # Only replies old enough for their outcome to be known count towards a close rate.
    known_until = min(end, now - window + timedelta(microseconds=1))

    # Every statement is started here, those whose rows take Python longest to fold first;
    # each is waited for where it is read.
    responses_rows = fetcher.submit(queries.first_responses, start, end)
    resolved_rows = fetcher.submit(queries.resolutions, start, end)
    if full:
        outcomes_rows = fetcher.submit(queries.template_outcomes, start, known_until, window.total_seconds())
    created_rows = fetcher.submit(queries.created_since, start)
    changes_rows = fetcher.submit(queries.resolution_changes_since, start)
    open_now_count = fetcher.submit(queries.unresolved_now)
    spam_count = fetcher.submit(queries.spam_created, start, end)
    survey_rows = fetcher.submit(queries.survey_totals, start, end)
    comment_rows = fetcher.submit(queries.survey_comments, start, end)
    if full:
        work_rows = fetcher.submit(queries.work_by_person, start, end)
        tag_rows = fetcher.submit(queries.tag_counts, period.previous().start, start, end)
        use_rows = fetcher.submit(queries.template_uses, start, end)
        page_rows = fetcher.submit(queries.pages_by_person, start, end)
        ack_rows = fetcher.submit(queries.acknowledgements, start, end)

    with timings.measure("first response"):
        responses = responses_rows()
    with timings.measure("resolution"):
        resolved = resolved_rows()
    with timings.measure("business time"):
        answered_pairs = [(r.created, r.first_reply) for r in responses if r.first_reply is not None]
        closed_pairs = [(r.created, r.resolved) for r in resolved]
        answered_starts = [p[0] for p in answered_pairs]
        answered_ends = [p[1] for p in answered_pairs]
        closed_starts = [p[0] for p in closed_pairs]
        closed_ends = [p[1] for p in closed_pairs]
        span = figures.span_of([r.created for r in responses] + answered_ends + closed_starts + closed_ends)
        business = figures.BusinessTime(calendar, *(span or (start, end)))
        answered = figures.wait_columns(answered_starts, answered_ends, business)
        closed = figures.wait_columns(closed_starts, closed_ends, business)
        first_response = figures.column_durations(answered)
        resolution = figures.column_durations(closed)
        boundaries = [b.timestamp() for b in period.boundaries()]
        # Per local day: of tickets created that day (first responses), or resolved (resolutions).
        daily_first = figures.daily_medians(boundaries, answered.start, answered.business)
        daily_resolution = figures.daily_medians(boundaries, closed.end, closed.business)

    with timings.measure("volume"):
        created = created_rows()
        changes = changes_rows()
        open_now = open_now_count()
        volume = figures.daily_volume(period.days, period.boundaries(), now, created, changes, open_now)
        first = volume[0]
        backlog_start = first.backlog - first.created + first.resolved - first.reopened

    with timings.measure("satisfaction"):
        surveys = survey_rows()
        comments = comment_rows()

    people: dict[str, PersonFigures] = {}
    report = StatsReport(
        period=period,
        now=now,
        volume=volume,
        created=sum(d.created for d in volume),
        resolved=sum(d.resolved for d in volume),
        reopened=sum(d.reopened for d in volume),
        backlog_start=backlog_start,
        backlog_end=volume[-1].backlog,
        first_response=first_response,
        unanswered=sum(1 for r in responses if r.first_reply is None),
        resolution=resolution,
        answered=sum(r.answered for r in surveys),
        solved=sum(r.solved for r in surveys),
        comments=comments,
        tags=[],
        people=people,
        balance=None,
        roster={},
        names={},
        templates=[],
        daily_first_response=daily_first,
        daily_resolution=daily_resolution,
        spam=spam_count(),
    )
    if not full:
        return report

    with timings.measure("tags"):
        report.tags = figures.top_tags(tag_rows())

    def person(user: str) -> PersonFigures:
        return people.setdefault(user, PersonFigures(user))

    with timings.measure("people"):
        for user, work in work_rows().items():
            person(user).handled, person(user).replies = work.handled, work.replies
        for row in surveys:
            if row.agent:
                person(row.agent).answered += row.answered
                person(row.agent).solved += row.solved

    with timings.measure("paging"):
        for user, n in page_rows().items():
            person(user).pages = n
        waits: dict[str, list[float]] = {}
        for ack in ack_rows():
            wait = (ack.acknowledged_at - ack.paged_at).total_seconds()
            waits.setdefault(ack.user, []).append(max(0.0, wait))
        for user, seconds in waits.items():
            person(user).acknowledged = len(seconds)
            person(user).ack_median = figures.quantile(seconds, 0.5)

    with timings.measure("rota"):
        members = store.members(session, active_only=False)
        names = {m.user_id: m.name for m in members if m.name}
        roster = {m.user_id: m.weight for m in members if m.active and m.weight > 0}
        duties = store.duties_between(session, start, end)
        held = figures.on_call(
            [(d.start, d.end, d.user_id) for d in duties], calendar, config.weights, start, end
        )
        for user, on_call in held.items():
            person(user).on_call = on_call
        balance = balance_score(figures.roster_loads(held, roster), roster) if roster else None
        for (user, unit), amount in ledger.balances(session).items():
            if amount != 0 or user in people:
                person(user).balances[unit] = amount

    with timings.measure("templates"):
        uses = use_rows()
        outcomes = {o.name: o for o in outcomes_rows()}
        templates = [
            TemplateFigures(
                u.name,
                u.replies,
                u.tickets,
                outcomes[u.name].uses if u.name in outcomes else 0,
                figures.rate(outcomes[u.name].closed, outcomes[u.name].uses) if u.name in outcomes else None,
            )
            for u in sorted(uses, key=lambda u: (-u.replies, u.name))
        ]

    report.balance, report.roster, report.names = balance, roster, names
    report.templates = templates
    return report


__all__ = ["PersonFigures", "Spread", "StatsConfig", "StatsReport", "Timings", "build_report"]
