"""How the load stands: each person's normalised load over a period, and the balance score,
for the rota overview and the fairness table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from rota import store
from rota.fairness import balance_score
from rota.load import LoadWeights, loads_by_person
from rota.store import DutyView


@dataclass(frozen=True)
class PersonLoad:
    user_id: str
    weight: float
    past: float  # normalised load (weighted hours / weight)
    planned: float


@dataclass(frozen=True)
class FairnessReport:
    rows: tuple[PersonLoad, ...]
    days: int
    past_balance: float
    planned_balance: float
    total_balance: float


def roster_loads(
    duties: Sequence[DutyView],
    calendar: BusinessCalendar,
    kinds: LoadWeights,
    weights: dict[str, float],
    start: datetime,
    end: datetime,
) -> dict[str, float]:
    loads = loads_by_person(
        [d.as_duty() for d in duties], calendar, kinds, people=weights, start=start, end=end
    )
    # People who left the rota still appear in old duties; the score is about the roster.
    return {person: load for person, load in loads.items() if person in weights}


def period_balance(
    session: Session,
    duties: Sequence[DutyView],
    calendar: BusinessCalendar,
    kinds: LoadWeights,
    start: datetime,
    end: datetime,
) -> float:
    weights = {m.user_id: m.weight for m in store.members(session)}
    return balance_score(roster_loads(duties, calendar, kinds, weights, start, end), weights)


def fairness_report(
    session: Session, calendar: BusinessCalendar, kinds: LoadWeights, *, now: datetime, days: int
) -> FairnessReport:
    """The last `days` days and everything published ahead, per person on the roster."""
    since = now - timedelta(days=days)
    weights = {m.user_id: m.weight for m in store.members(session)}
    end = max(store.rota_end(session) or now, now)
    past_duties = store.duties_between(session, since, now)
    future_duties = store.duties_between(session, now, end) if end > now else []
    past = roster_loads(past_duties, calendar, kinds, weights, since, now)
    planned = roster_loads(future_duties, calendar, kinds, weights, now, end)
    total = {p: past[p] + planned[p] for p in weights}
    rows = tuple(PersonLoad(p, w, past[p] / w, planned[p] / w) for p, w in sorted(weights.items()))
    return FairnessReport(
        rows,
        days,
        balance_score(past, weights),
        balance_score(planned, weights),
        balance_score(total, weights),
    )
