"""Publishing a plan as a use case: the rota changes, the team hears of it, and each person
whose duties changed is told which ones they gained and lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from rota import store
from rota.notices import PlanChangesNotice
from rota.planner import PlanConfig
from rota.store import DutyChange


@dataclass(frozen=True)
class PlanPublished:
    changes: tuple[DutyChange, ...]
    until: datetime
    balance: float
    by: str
    notices: tuple[PlanChangesNotice, ...]  # one per person whose duties changed


def publish(
    session: Session,
    calendar: BusinessCalendar,
    config: PlanConfig,
    *,
    by: str,
    now: datetime,
    until: datetime,
) -> PlanPublished | None:
    """Plan again and publish; None when the rota already is this plan."""
    # Planned again now: the planner is deterministic, so this is the preview the manager
    # saw unless someone changed the rota in between.
    preview = store.preview_plan(session, calendar, config, now=now, until=until)
    if not preview.changes:
        return None
    changes = store.publish_plan(session, preview, by=by, now=now).changes
    return PlanPublished(changes, until, preview.balance, by, changes_told(changes, by))


def changes_told(changes: Sequence[DutyChange], by: str) -> tuple[PlanChangesNotice, ...]:
    """Each person a published change concerns: the duties they gain and those they lose."""
    people = sorted({p for c in changes for p in (c.before, c.after) if p is not None})
    return tuple(
        PlanChangesNotice(
            person,
            tuple(c for c in changes if c.after == person),
            tuple(c for c in changes if c.before == person and c.after != person),
            by,
        )
        for person in people
    )
