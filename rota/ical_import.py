"""Bringing a rota over from another tool: its calendar's shifts laid onto our duties.

Our duties run from hand-off to hand-off (rota/duties.py); another tool's shifts may not.
Each duty in the calendar's span goes to whoever the calendar has on call for most of it
(more than half), so a weekly PagerDuty or Opsgenie rotation handing over at our opening
time maps one to one, and a daily one gives the week to whoever holds most of it.

- Future duties the calendar fills become published duties, pinned: re-planning keeps
  them (as it keeps a swap). A future duty it leaves empty is kept as it is, or added
  unassigned for `/oncall plan` to fill.
- Past duties the rota lacks become history, when the manager chooses: they count for
  fairness (rota/standing.py) and the ledger settles them as it settles any duty that
  ended. Past duties the rota already holds are its own record and stay.
- The duty under way is never changed (swap or cover it instead), as planning does.

The matched shifts are kept with the preview, so Publish applies what the manager saw.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.business_hours import BusinessCalendar
from bot.storage.models import RotaDuty
from bot.storage.models_ical import RotaImport
from bot.tickets.events import record_event
from rota import errors, store
from rota.duties import DutyUnit, duty_slots, next_handoff
from rota.ical_match import Matched, Placed
from rota.load import LoadWeights
from rota.publishing import PlanPublished, changes_told
from rota.standing import period_balance
from rota.store import DutyChange, TimeOffView

ORIGIN = "import"
# History older than a year, or duties further than the longest plan, are not a rota.
MAX_PAST = timedelta(days=366)
MAX_AHEAD = timedelta(weeks=104)
# A preview nobody published or cancelled in this long is stale (the rota moved on); its
# shifts and the names nobody matched are not kept for ever.
STAGED_KEEP = timedelta(days=2)
EXPIRED = "expired"


class ImportNotFound(errors.RotaError):
    def __init__(self, import_id: int) -> None:
        super().__init__(f"rota import {import_id} is not on record")
        self.import_id = import_id


class ImportDecided(errors.RequestClosed):
    def __init__(self, import_id: int, outcome: str) -> None:
        super().__init__(f"rota import {import_id} is already {outcome}")
        self.import_id, self.outcome = import_id, outcome


@dataclass(frozen=True)
class Clash:
    duty: DutyChange
    time_off: TimeOffView


@dataclass(frozen=True)
class ImportPreview:
    import_id: int
    source: str
    future: tuple[DutyChange, ...]  # published duties that change hands (or are added)
    history: tuple[DutyChange, ...]  # past duties the rota lacks
    unassigned: int  # future duties the calendar leaves empty that would be added unassigned
    unmatched: tuple[str, ...]
    clashes: tuple[Clash, ...]  # an imported future duty inside its holder's time off
    until: datetime | None


@dataclass(frozen=True)
class _Slot:
    start: datetime
    end: datetime
    row: RotaDuty | None
    holder: str | None


def stage_import(session: Session, matched: Matched, *, source: str, by: str, now: datetime) -> int:
    """Keep the matched shifts for the preview's buttons; returns the import's id."""
    row = RotaImport(
        created_by=by,
        created_at=now,
        source=source[:300],
        shifts=[[p.start.isoformat(), p.end.isoformat(), p.user_id] for p in matched.placed],
        unmatched=list(matched.unmatched)[:200],
    )
    session.add(row)
    session.flush()
    return row.id


def preview_import(
    session: Session, import_id: int, calendar: BusinessCalendar, unit: DutyUnit, *, now: datetime
) -> ImportPreview:
    staged = _staged(session, import_id)
    slots = _slots(session, calendar, unit, _placed(staged), now=now)
    future, history, unassigned = _changes(slots, now)
    time_off = store.time_off_list(session, since=now)
    clashes = tuple(
        Clash(change, off)
        for change in future
        for off in time_off
        if off.user_id == change.after and off.start < change.end and change.start < off.end
    )
    return ImportPreview(
        import_id,
        staged.source,
        future,
        history,
        unassigned,
        tuple(staged.unmatched),
        clashes,
        max((s.end for s in slots), default=None),
    )


def publish_import(
    session: Session,
    import_id: int,
    calendar: BusinessCalendar,
    unit: DutyUnit,
    kinds: LoadWeights,
    *,
    with_history: bool,
    by: str,
    now: datetime,
) -> PlanPublished:
    """Apply the import in the caller's transaction; who must hear of it, as publishing says."""
    # Locked: two managers clicking Publish at once must not both apply it.
    staged = _staged(session, import_id, lock=True)
    if staged.decided_at is not None:
        raise ImportDecided(import_id, staged.outcome or "decided")
    slots = _slots(session, calendar, unit, _placed(staged), now=now)
    future, history, _ = _changes(slots, now)
    why = f"imported from {staged.source}"
    for slot in slots:
        past = slot.end <= now
        if slot.row is not None:
            if slot.row.start < now or slot.holder is None:
                continue  # history the rota holds, or the duty under way: as they are
            if slot.row.user_id != slot.holder:
                slot.row.user_id, slot.row.reminded_at = slot.holder, None
            slot.row.pinned, slot.row.origin, slot.row.why = True, ORIGIN, why
            slot.row.published_at, slot.row.published_by = now, by
            continue
        if past and (slot.holder is None or not with_history):
            continue
        session.add(
            RotaDuty(
                start=slot.start,
                end=slot.end,
                user_id=slot.holder,
                pinned=slot.holder is not None and not past,
                origin=ORIGIN,
                why=why,
                published_at=now,
                published_by=by,
                # Nobody is reminded of, or handed, a duty that is over; the ledger still
                # settles it (settled_at stays empty), so the history counts there too.
                reminded_at=now if past else None,
                handed_off_at=now if past else None,
            )
        )
    session.flush()
    staged.decided_at, staged.decided_by = now, by
    staged.outcome = "history" if with_history and history else "published"
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="rota.imported",
        at=now,
        source=staged.source,
        changes=len(future),
        history=len(history) if with_history else 0,
    )
    until = max((s.end for s in slots), default=now)
    coming = store.duties_between(session, now, until) if until > now else []
    balance = period_balance(session, coming, calendar, kinds, now, until) if coming else 1.0
    return PlanPublished(future, until, balance, by, changes_told(future, by))


def cancel_import(session: Session, import_id: int, *, by: str, now: datetime) -> None:
    staged = _staged(session, import_id, lock=True)
    if staged.decided_at is not None:
        raise ImportDecided(import_id, staged.outcome or "decided")
    staged.decided_at, staged.decided_by, staged.outcome = now, by, "cancelled"


def expire_staged_imports(session: Session, *, now: datetime, keep: timedelta = STAGED_KEEP) -> int:
    """Previews left undecided for `keep`: marked expired, their shifts and unmatched names
    dropped. A later click on the preview's buttons is told it expired. Returns how many."""
    stale = session.scalars(
        select(RotaImport)
        .where(RotaImport.decided_at.is_(None), RotaImport.created_at <= now - keep)
        # A manager publishing one right now holds its lock: theirs wins, this run skips it.
        .with_for_update(skip_locked=True)
    ).all()
    for row in stale:
        row.decided_at, row.outcome = now, EXPIRED
        row.shifts, row.unmatched = [], []
    return len(stale)


# -- laying shifts onto duties ------------------------------------------------------------


def _staged(session: Session, import_id: int, *, lock: bool = False) -> RotaImport:
    found = session.get(RotaImport, import_id, with_for_update=lock)
    if found is None:
        raise ImportNotFound(import_id)
    return found


def _placed(staged: RotaImport) -> list[Placed]:
    return [
        Placed("", datetime.fromisoformat(start), datetime.fromisoformat(end), user)
        for start, end, user in staged.shifts
    ]


def _changes(
    slots: Sequence[_Slot], now: datetime
) -> tuple[tuple[DutyChange, ...], tuple[DutyChange, ...], int]:
    future: list[DutyChange] = []
    history: list[DutyChange] = []
    unassigned = 0
    for slot in slots:
        before = slot.row.user_id if slot.row is not None else None
        if slot.end <= now:
            if slot.row is None and slot.holder is not None:
                history.append(DutyChange(slot.start, slot.end, None, slot.holder, "imported"))
            continue
        if slot.row is not None and slot.row.start < now:
            continue
        if slot.holder is None:
            unassigned += slot.row is None
            continue
        if slot.row is None or before != slot.holder:
            future.append(DutyChange(slot.start, slot.end, before, slot.holder, "imported"))
    return tuple(future), tuple(history), unassigned


def _slots(
    session: Session, calendar: BusinessCalendar, unit: DutyUnit, shifts: Sequence[Placed], *, now: datetime
) -> list[_Slot]:
    """The duties over the shifts' span (the rota's own where it has them, new ones between),
    each with the holder the calendar gives it."""
    if not shifts:
        return []
    first = max(min(s.start for s in shifts), now - MAX_PAST)
    last = min(max(s.end for s in shifts), now + MAX_AHEAD)
    if last <= first:
        return []
    cursor = _handoff_at_or_before(calendar, first, unit)
    existing = session.scalars(
        select(RotaDuty).where(RotaDuty.end > cursor, RotaDuty.start < last).order_by(RotaDuty.start)
    ).all()
    spans: list[tuple[datetime, datetime, RotaDuty | None]] = []
    for row in existing:
        if row.start > cursor:
            spans.extend(
                (d.start, min(d.end, row.start), None) for d in duty_slots(calendar, cursor, row.start, unit)
            )
        spans.append((row.start, row.end, row))
        cursor = max(cursor, row.end)
    if cursor < last:
        spans.extend((d.start, d.end, None) for d in duty_slots(calendar, cursor, last, unit))
    return [_Slot(start, end, row, _holder(start, end, shifts)) for start, end, row in spans if end > start]


def _holder(start: datetime, end: datetime, shifts: Sequence[Placed]) -> str | None:
    held: dict[str, timedelta] = defaultdict(timedelta)
    for shift in shifts:
        overlap = min(end, shift.end) - max(start, shift.start)
        if overlap > timedelta(0):
            held[shift.user_id] += overlap
    if not held:
        return None
    best = max(sorted(held), key=lambda user: held[user])
    return best if held[best] * 2 > end - start else None


def _handoff_at_or_before(calendar: BusinessCalendar, moment: datetime, unit: DutyUnit) -> datetime:
    handoff = next_handoff(calendar, moment - timedelta(days=15), unit)
    while (following := next_handoff(calendar, handoff, unit)) <= moment:
        handoff = following
    return handoff
