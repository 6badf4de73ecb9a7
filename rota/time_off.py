"""Time off as use cases: recorded or cancelled, and who must hear of it.

A manager may act on someone's behalf; that person is told, with the duties of theirs
that fall in the time off (they need a swap or a cover).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from rota import store
from rota.notices import TimeOffNotice
from rota.store import TimeOffAdded, TimeOffView


@dataclass(frozen=True)
class TimeOffRecorded:
    added: TimeOffAdded
    notices: tuple[TimeOffNotice, ...]


@dataclass(frozen=True)
class TimeOffCancelled:
    time_off: TimeOffView
    notices: tuple[TimeOffNotice, ...]


def record_time_off(
    session: Session, whose: str, first: date, last: date, *, by: str, now: datetime
) -> TimeOffRecorded:
    added = store.add_time_off(session, whose, first, last, by=by, now=now)
    told = () if whose == by else (TimeOffNotice(whose, False, added.time_off, added.clashes, by),)
    return TimeOffRecorded(added, told)


def cancel_time_off(
    session: Session, time_off_id: int, *, by: str, manager: bool, now: datetime
) -> TimeOffCancelled:
    off = store.cancel_time_off(session, time_off_id, by=by, manager=manager, now=now)
    told = () if off.user_id == by else (TimeOffNotice(off.user_id, True, off, (), by),)
    return TimeOffCancelled(off, told)
