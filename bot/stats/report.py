"""One period's stats, put together from `queries` and `figures`: what `/support stats`,
the managers' App Home and the benchmark all read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.stats import figures, queries
from bot.stats.figures import DayVolume, Durations, OnCall, Spread, TagTrend
from bot.stats.period import Period
from bot.stats.queries import SurveyComment
from rota import ledger, store
from rota.fairness import balance_score
from rota.load import LoadWeights


class Timings:
    """Seconds spent on each part of a report: the benchmark prints them."""

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
    timings = timings or Timings()
    start, end = period.start, period.end
    calendar = config.calendar

    with timings.measure("volume"):
        created = queries.created_since(session, start)
        changes = queries.resolution_changes_since(session, start)
        open_now = queries.unresolved_now(session)
        volume = figures.daily_volume(period.days, period.boundaries(), now, created, changes, open_now)
        first = volume[0]
        backlog_start = first.backlog - first.created + first.resolved - first.reopened

    with timings.measure("first response"):
        responses = queries.first_responses(session, start, end)
    with timings.measure("resolution"):
        resolved = queries.resolutions(session, start, end)
    with timings.measure("business time"):
        span = figures.span_of(
            [r.created for r in responses]
            + [r.first_reply for r in responses]
            + [r.created for r in resolved]
            + [r.resolved for r in resolved]
        )
        business = figures.BusinessTime(calendar, *(span or (start, end)))
        answered = figures.waits(
            [(r.created, r.first_reply) for r in responses if r.first_reply is not None], business
        )
        closed = figures.waits([(r.created, r.resolved) for r in resolved], business)
        first_response = figures.durations(answered)
        resolution = figures.durations(closed)
        boundaries = [b.timestamp() for b in period.boundaries()]
        daily_first = _daily_medians(boundaries, answered)
        daily_resolution = _daily_medians(boundaries, closed, by_end=True)

    with timings.measure("satisfaction"):
        surveys = queries.survey_totals(session, start, end)
        comments = queries.survey_comments(session, start, end)

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
    )
    if not full:
        return report

    with timings.measure("tags"):
        report.tags = figures.top_tags(queries.tag_counts(session, period.previous().start, start, end))

    def person(user: str) -> PersonFigures:
        return people.setdefault(user, PersonFigures(user))

    with timings.measure("people"):
        for user, work in queries.work_by_person(session, start, end).items():
            person(user).handled, person(user).replies = work.handled, work.replies
        for row in surveys:
            if row.agent:
                person(row.agent).answered += row.answered
                person(row.agent).solved += row.solved

    with timings.measure("paging"):
        for user, n in queries.pages_by_person(session, start, end).items():
            person(user).pages = n
        waits: dict[str, list[float]] = {}
        for ack in queries.acknowledgements(session, start, end):
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
        uses = queries.template_uses(session, start, end)
        window = timedelta(days=config.close_rate_days)
        # Only replies old enough for their outcome to be known count towards a close rate.
        known_until = min(end, now - window + timedelta(microseconds=1))
        outcomes = {
            o.name: o for o in queries.template_outcomes(session, start, known_until, window.total_seconds())
        }
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


def _daily_medians(
    boundaries: list[float], waits: list[figures.Waited], *, by_end: bool = False
) -> list[float | None]:
    """Median business seconds per local day: of tickets created that day (or resolved, `by_end`)."""
    buckets: list[list[float]] = [[] for _ in boundaries[1:]]
    for wait in waits:
        index = figures.day_index(wait.end if by_end else wait.start, boundaries)
        if index is not None:
            buckets[index].append(wait.business)
    return [figures.quantile(values, 0.5) for values in buckets]


__all__ = ["PersonFigures", "Spread", "StatsConfig", "StatsReport", "Timings", "build_report"]
