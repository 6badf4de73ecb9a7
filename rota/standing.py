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

    @property
    def total(self) -> float:
        return self.past + self.planned


@dataclass(frozen=True)
class FairnessReport:
    rows: tuple[PersonLoad, ...]
    days: int
    past_balance: float
    planned_balance: float
    total_balance: float
    # The normalised load everyone would carry if the period's whole load were split by
    # weight: a row above it has carried more than its share, one below is owed duty-free time.
    fair_share: float = 0.0
    # The mean weighted load of one duty in the period, to say a gap in duties as well as hours.
    duty_load: float = 0.0

    def ahead_of_share(self, row: PersonLoad) -> float:
        """How far `row` is above (positive) or below its fair share, in normalised load."""
        return row.total - self.fair_share

    def duties_ahead(self, row: PersonLoad) -> float | None:
        """The same gap counted in average duties of the period (the person's own load, not the
        normalised one); None when no duty gives a measure."""
        return self.ahead_of_share(row) * row.weight / self.duty_load if self.duty_load > 0 else None


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
    whole = sum(total.values())
    held = sum(1 for d in (*past_duties, *future_duties) if d.user_id in weights)
    return FairnessReport(
        rows,
        days,
        balance_score(past, weights),
        balance_score(planned, weights),
        balance_score(total, weights),
        fair_share=whole / sum(weights.values()) if weights else 0.0,
        duty_load=whole / held if held else 0.0,
    )
