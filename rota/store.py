"""The rota as stored: roster, time off, and published duties, read and changed in a session.

These functions take a SQLAlchemy session and plain values and return plain
values (frozen dataclasses); they know nothing of Slack. Every change is recorded
in the audit log (`events`, with no ticket) as who, what, when.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.storage.models import Event, RotaDuty, RotaMember, TimeOffRecord
from bot.tickets.events import record_event
from rota import errors
from rota.duties import Duty
from rota.errors import RotaError as RotaError  # re-exported: callers catch `store.RotaError`
from rota.fairness import balance_score
from rota.load import loads_by_person
from rota.planner import PlanConfig, RotaPlan, plan_rota
from rota.roster import Person, TimeOff

SYSTEM = "system"

# Time off further ahead than this is refused: almost certainly a typo in the year.
_MAX_TIME_OFF_AHEAD = timedelta(days=2 * 366)
_MAX_TIME_OFF_LENGTH = timedelta(days=366)


# -- roster ----------------------------------------------------------------------


@dataclass(frozen=True)
class StaffMember:
    """What Slack says about a member of staff."""

    user_id: str
    name: str
    tz: str = "UTC"


@dataclass(frozen=True)
class MemberView:
    user_id: str
    name: str
    tz: ZoneInfo
    weight: float
    active: bool


@dataclass(frozen=True)
class RosterChanges:
    added: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()


def zone(name: str | None) -> ZoneInfo:
    """A person's time zone, falling back to UTC for a name this machine doesn't know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def sync_roster(session: Session, staff: Iterable[StaffMember], now: datetime) -> RosterChanges:
    """Make the roster follow the staff list: newcomers join, leavers are set inactive.

    A leaver's history (duties, ledger) stays; weights set by managers survive.
    Someone a manager took off the rota stays off while still on the staff.
    """
    current = {m.user_id: m for m in session.scalars(select(RotaMember))}
    seen: set[str] = set()
    added, updated = [], []
    for person in staff:
        seen.add(person.user_id)
        member = current.get(person.user_id)
        if member is None:
            # The hourly job and a command that finds the roster stale can sync at the
            # same moment (on PostgreSQL both may insert): whoever comes second skips.
            try:
                with session.begin_nested():
                    session.add(
                        RotaMember(
                            user_id=person.user_id,
                            name=person.name,
                            tz=person.tz or "UTC",
                            weight=1.0,
                            active=True,
                            ical_token=secrets.token_urlsafe(32),
                            joined_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:
                continue
            added.append(person.user_id)
            record_event(
                session, ticket_id=None, actor=SYSTEM, action="rota.joined", at=now, user=person.user_id
            )
        else:
            rejoined = not member.active and _left_by_sync(session, member.user_id)
            if rejoined or (member.name, member.tz) != (person.name, person.tz or "UTC"):
                member.name, member.tz, member.updated_at = person.name, person.tz or "UTC", now
                updated.append(person.user_id)
            if rejoined:
                member.active = True
                record_event(
                    session, ticket_id=None, actor=SYSTEM, action="rota.joined", at=now, user=person.user_id
                )
    left = []
    for user_id, member in current.items():
        if user_id not in seen and member.active:
            member.active = False
            member.updated_at = now
            left.append(user_id)
            record_event(session, ticket_id=None, actor=SYSTEM, action="rota.left", at=now, user=user_id)
    session.flush()
    return RosterChanges(tuple(added), tuple(left), tuple(updated))


def _left_by_sync(session: Session, user_id: str) -> bool:
    """Whether the member's last deactivation was the staff sync (not a manager)."""
    last = session.scalar(
        select(Event)
        .where(Event.ticket_id.is_(None), Event.action.in_(["rota.left", "rota.removed", "rota.added"]))
        .where(Event.data["user"].as_string() == user_id)
        .order_by(Event.id.desc())
        .limit(1)
    )
    return last is not None and last.action == "rota.left"


def members(session: Session, *, active_only: bool = True) -> list[MemberView]:
    query = select(RotaMember).order_by(RotaMember.user_id)
    if active_only:
        query = query.where(RotaMember.active.is_(True))
    return [_member_view(m) for m in session.scalars(query)]


def member(session: Session, user_id: str) -> MemberView | None:
    found = session.get(RotaMember, user_id)
    return None if found is None else _member_view(found)


def people(session: Session) -> list[Person]:
    return [Person(m.user_id, m.weight, m.tz) for m in members(session)]


def set_weight(session: Session, user_id: str, weight: float, *, by: str, now: datetime) -> MemberView:
    if not 0 < weight <= 1:
        raise errors.WeightOutOfRange(weight)
    found = _require_member(session, user_id)
    before = found.weight
    found.weight, found.updated_at = weight, now
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="rota.weight",
        at=now,
        user=user_id,
        before=before,
        after=weight,
    )
    return _member_view(found)


def set_active(session: Session, user_id: str, active: bool, *, by: str, now: datetime) -> MemberView:
    """A manager takes someone off the rota (or back on); staff sync won't undo it."""
    found = _require_member(session, user_id)
    found.active, found.updated_at = active, now
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="rota.added" if active else "rota.removed",
        at=now,
        user=user_id,
    )
    return _member_view(found)


def _require_member(session: Session, user_id: str) -> RotaMember:
    found = session.get(RotaMember, user_id)
    if found is None:
        raise errors.NotOnRota(user_id)
    return found


def _member_view(m: RotaMember) -> MemberView:
    return MemberView(m.user_id, m.name, zone(m.tz), m.weight, m.active)


# -- duties ----------------------------------------------------------------------


@dataclass(frozen=True)
class DutyView:
    id: int
    start: datetime
    end: datetime
    user_id: str | None
    pinned: bool
    origin: str
    why: str

    def as_duty(self) -> Duty:
        return Duty(self.start, self.end, self.user_id, self.pinned)


def _duty_view(d: RotaDuty) -> DutyView:
    return DutyView(d.id, d.start, d.end, d.user_id, d.pinned, d.origin, d.why)


def duty(session: Session, duty_id: int) -> DutyView | None:
    found = session.get(RotaDuty, duty_id)
    return None if found is None else _duty_view(found)


def duties_between(session: Session, start: datetime, end: datetime) -> list[DutyView]:
    """Duties overlapping [start, end), in time order."""
    rows = session.scalars(
        select(RotaDuty).where(RotaDuty.start < end, RotaDuty.end > start).order_by(RotaDuty.start)
    )
    return [_duty_view(d) for d in rows]


def duty_at(session: Session, moment: datetime) -> DutyView | None:
    found = session.scalar(
        select(RotaDuty)
        .where(RotaDuty.start <= moment, RotaDuty.end > moment)
        .order_by(RotaDuty.start)
        .limit(1)
    )
    return None if found is None else _duty_view(found)


def duties_of(session: Session, user_id: str, *, since: datetime, limit: int = 20) -> list[DutyView]:
    rows = session.scalars(
        select(RotaDuty)
        .where(RotaDuty.user_id == user_id, RotaDuty.end > since)
        .order_by(RotaDuty.start)
        .limit(limit)
    )
    return [_duty_view(d) for d in rows]


def duty_on_night(session: Session, day: date, tz: ZoneInfo) -> DutyView | None:
    """The duty holding the phone on the night of local `day` (at 23:00 there)."""
    moment = datetime.combine(day, datetime.min.time().replace(hour=23), tzinfo=tz)
    return duty_at(session, moment)


# -- time off --------------------------------------------------------------------


@dataclass(frozen=True)
class TimeOffView:
    id: int
    user_id: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime


@dataclass(frozen=True)
class TimeOffAdded:
    time_off: TimeOffView
    clashes: tuple[DutyView, ...]  # their own duties inside it: they need a swap or cover


def add_time_off(
    session: Session, user_id: str, first: date, last: date, *, by: str, now: datetime
) -> TimeOffAdded:
    found = _require_member(session, user_id)
    if last < first:
        raise errors.TimeOffBackwards(first, last)
    tz = zone(found.tz)
    off = TimeOff.for_days(Person(user_id, found.weight, tz), first, last)
    if off.end <= now:
        raise errors.TimeOffOver(first, last)
    if off.start - now > _MAX_TIME_OFF_AHEAD or off.end - off.start > _MAX_TIME_OFF_LENGTH:
        raise errors.TimeOffTooFar(first, last)
    record = TimeOffRecord(
        user_id=user_id,
        first_day=first,
        last_day=last,
        start=off.start,
        end=off.end,
        created_by=by,
        created_at=now,
    )
    session.add(record)
    session.flush()
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="rota.time_off",
        at=now,
        user=user_id,
        first=first.isoformat(),
        last=last.isoformat(),
    )
    clashes = tuple(
        d for d in duties_between(session, off.start, off.end) if d.user_id == user_id and d.end > now
    )
    return TimeOffAdded(_time_off_view(record), clashes)


def cancel_time_off(
    session: Session, time_off_id: int, *, by: str, manager: bool, now: datetime
) -> TimeOffView:
    record = session.get(TimeOffRecord, time_off_id)
    if record is None or record.cancelled_at is not None:
        raise errors.TimeOffNotFound(time_off_id)
    if record.user_id != by and not manager:
        raise errors.NotYourTimeOff(time_off_id, by)
    record.cancelled_at, record.cancelled_by = now, by
    record_event(
        session, ticket_id=None, actor=by, action="rota.time_off_cancelled", at=now, user=record.user_id
    )
    return _time_off_view(record)


def time_off_list(session: Session, *, user_id: str | None = None, since: datetime) -> list[TimeOffView]:
    query = select(TimeOffRecord).where(TimeOffRecord.cancelled_at.is_(None), TimeOffRecord.end > since)
    if user_id is not None:
        query = query.where(TimeOffRecord.user_id == user_id)
    return [_time_off_view(r) for r in session.scalars(query.order_by(TimeOffRecord.start))]


def _time_off_view(r: TimeOffRecord) -> TimeOffView:
    return TimeOffView(r.id, r.user_id, r.first_day, r.last_day, r.start, r.end)


def _domain_time_off(session: Session, since: datetime) -> list[TimeOff]:
    return [TimeOff(t.user_id, t.start, t.end) for t in time_off_list(session, since=since)]


# -- planning and publishing -------------------------------------------------------


@dataclass(frozen=True)
class DutyChange:
    start: datetime
    end: datetime
    before: str | None  # None: a new duty, or one that was unassigned
    after: str | None
    why: str


@dataclass(frozen=True)
class PlanPreview:
    replan_from: datetime
    until: datetime
    plan: RotaPlan
    changes: tuple[DutyChange, ...]
    balance: float  # over the planned range, weights normalised
    unassigned: int


def preview_plan(
    session: Session,
    calendar: BusinessCalendar,
    config: PlanConfig,
    *,
    now: datetime,
    until: datetime,
    replan_from: datetime | None = None,
) -> PlanPreview:
    """What publishing would change: every unpinned duty from `replan_from` (default now) re-planned.

    The duty under way is never changed by planning (swap or cover it instead).
    """
    replan_from = max(replan_from or now, now)
    existing = [d for d in session.scalars(select(RotaDuty).order_by(RotaDuty.start))]
    roster = people(session)
    plan = plan_rota(
        roster,
        [Duty(d.start, d.end, d.user_id, d.pinned) for d in existing],
        calendar,
        replan_from=replan_from,
        until=until,
        time_off=_domain_time_off(session, replan_from - timedelta(days=62)),
        config=config,
    )
    by_start = {d.start: d for d in existing}
    changes = []
    for assignment in plan.assignments:
        if not assignment.planned:
            continue
        planned = assignment.duty
        before = by_start.get(planned.start)
        before_user = before.user_id if before is not None else None
        if before is None or before_user != planned.person or before.end != planned.end:
            changes.append(
                DutyChange(planned.start, planned.end, before_user, planned.person, str(assignment.why))
            )
    weights = {p.id: p.weight for p in roster}
    loads = loads_by_person(
        plan.duties, calendar, config.weights, people=weights, start=replan_from, end=until
    )
    loads = {person: load for person, load in loads.items() if person in weights}
    return PlanPreview(
        replan_from,
        until,
        plan,
        tuple(changes),
        balance_score(loads, weights),
        len([a for a in plan.unassigned if a.planned]),
    )


@dataclass(frozen=True)
class Published:
    changes: tuple[DutyChange, ...]
    until: datetime


def publish_plan(session: Session, preview: PlanPreview, *, by: str, now: datetime) -> Published:
    """Write the previewed plan: changed duties get their new holder, new ones are added."""
    by_start = {
        d.start: d for d in session.scalars(select(RotaDuty).where(RotaDuty.end > preview.replan_from))
    }
    for assignment in preview.plan.assignments:
        if not assignment.planned:
            continue
        planned = assignment.duty
        row = by_start.get(planned.start)
        if row is None:
            session.add(
                RotaDuty(
                    start=planned.start,
                    end=planned.end,
                    user_id=planned.person,
                    pinned=False,
                    origin="planned",
                    why=str(assignment.why),
                    published_at=now,
                    published_by=by,
                )
            )
            continue
        if row.pinned or row.start < preview.replan_from:
            continue  # kept as given: the planner did not touch it
        if row.user_id != planned.person:
            row.user_id = planned.person
            # The new holder has not been reminded yet.
            row.reminded_at = None
        row.end, row.why, row.published_at, row.published_by = planned.end, str(assignment.why), now, by
    session.flush()
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="rota.published",
        at=now,
        replan_from=preview.replan_from.isoformat(),
        until=preview.until.isoformat(),
        changes=len(preview.changes),
        balance=round(preview.balance, 4),
    )
    return Published(preview.changes, preview.until)


def rota_end(session: Session) -> datetime | None:
    last = session.scalar(select(RotaDuty).order_by(RotaDuty.end.desc()).limit(1))
    return None if last is None else last.end


def extend_rota(
    session: Session, calendar: BusinessCalendar, config: PlanConfig, *, now: datetime, until: datetime
) -> Published | None:
    """Add duties after the last published one so the rota reaches `until`; existing duties stay.

    Does nothing before a manager has published a first rota.
    """
    end = rota_end(session)
    if end is None or end >= until:
        return None
    preview = preview_plan(session, calendar, config, now=now, until=until, replan_from=max(end, now))
    if not preview.changes:
        return None
    return publish_plan(session, preview, by=SYSTEM, now=now)


def holders(duties: Sequence[DutyView]) -> set[str]:
    return {d.user_id for d in duties if d.user_id is not None}
