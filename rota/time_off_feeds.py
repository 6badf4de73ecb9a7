"""Time off kept in step with calendars of absences: the team's (TIME_OFF_ICAL_URLS) and
each person's own (`/oncall away sync URL`).

Each read of a feed is compared with what earlier reads brought in, event by event (UID
and RECURRENCE-ID): an absence added there is added here, one moved is moved, one
removed is cancelled. Only time off that came from the feed is touched; time off entered
by hand, and feed time off a person or manager cancelled by hand, stay as they are.
A team feed's events are matched to people as an import's are (rota/ical_match.py); a
personal feed's are all its owner's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.sealed import SealBroken, is_sealed, seal, unseal
from bot.storage.models import TimeOffRecord
from bot.storage.models_ical import FeedAbsence, TimeOffFeed
from bot.tickets.events import record_event
from rota import store
from rota.errors import NotOnRota
from rota.ical_match import Directory, whose
from rota.ical_read import CalendarEvent
from rota.roster import Person, TimeOff
from rota.store import DutyView, TimeOffView

ACTOR = "calendar"  # who recorded feed time off, in the audit log and `created_by`
READ_EVERY = timedelta(hours=1)
# How far ahead a feed's absences are brought in, and the longest one taken: as far and
# as long as `/oncall away` accepts (a "permanent" event is a calendar's mistake).
AHEAD = timedelta(days=2 * 366)
LONGEST = timedelta(days=366)
# A feed failing this long is told to its owner (the managers for a team feed), once: an
# hour's outage is the calendar's business, days of it usually a changed or revoked address.
TELL_FAILING_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class FeedToRead:
    id: int
    url: str
    owner: str | None
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class FeedView:
    id: int
    label: str
    owner: str | None
    last_read_at: datetime | None
    last_error: str | None
    failing_since: datetime | None = None


@dataclass(frozen=True)
class FeedFailing:
    """A feed that has failed since `since`, to be told to its owner (None: a team feed)."""

    feed_id: int
    owner: str | None
    label: str
    error: str
    since: datetime
    never_read: bool  # the address has not worked once since it was given: likely a typo


@dataclass(frozen=True)
class AbsenceNews:
    """A feed absence added or moved that clashes with the person's own duties."""

    to: str
    time_off: TimeOffView
    clashes: tuple[DutyView, ...]
    moved: bool


@dataclass(frozen=True)
class FeedApplied:
    added: int
    moved: int
    removed: int
    unmatched: tuple[str, ...]
    news: tuple[AbsenceNews, ...]


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def follow_team_feeds(
    session: Session, urls: Sequence[str], labels: Sequence[str], *, now: datetime, key: str | None = None
) -> None:
    """The team feeds are the settings' list: new ones followed, dropped ones no longer read.
    `key`: TOKEN_ENCRYPTION_KEY, which seals the stored addresses (bot/sealed.py)."""
    wanted = {url_hash(u): (u, label) for u, label in zip(urls, labels, strict=True)}
    rows = {f.url_hash: f for f in session.scalars(select(TimeOffFeed).where(TimeOffFeed.owner.is_(None)))}
    for digest, row in rows.items():
        row.active = digest in wanted
    for digest, (url, label) in wanted.items():
        if digest not in rows:
            session.add(
                TimeOffFeed(
                    url_hash=digest,
                    url=seal(url, key),
                    label=label,
                    owner=None,
                    active=True,
                    created_by=ACTOR,
                    created_at=now,
                )
            )
    session.flush()


def set_personal_feed(
    session: Session, user: str, url: str, label: str, *, now: datetime, key: str | None = None
) -> int:
    """Follow `user`'s own calendar (one per person: a new URL replaces the old). Its address
    is their secret: sealed with `key` (TOKEN_ENCRYPTION_KEY) when there is one."""
    if store.member(session, user) is None:
        raise NotOnRota(user)
    for old in session.scalars(select(TimeOffFeed).where(TimeOffFeed.owner == user)):
        old.active = False
    digest = url_hash(url)
    row = session.scalar(select(TimeOffFeed).where(TimeOffFeed.owner == user, TimeOffFeed.url_hash == digest))
    if row is None:
        row = TimeOffFeed(url_hash=digest, url=url, label=label, owner=user, created_by=user, created_at=now)
        session.add(row)
    row.url = seal(url, key)
    row.active, row.etag, row.last_modified, row.last_error = True, None, None, None
    row.last_read_at, row.failing_since, row.failure_told_at, row.last_good_at = None, None, None, None
    session.flush()
    record_event(
        session, ticket_id=None, actor=user, action="rota.time_off_feed", at=now, user=user, feed=label
    )
    return row.id


def stop_personal_feed(session: Session, user: str, *, now: datetime) -> bool:
    """Stop reading `user`'s calendar; the time off it brought in stays (cancel it by hand)."""
    stopped = False
    for row in session.scalars(select(TimeOffFeed).where(TimeOffFeed.owner == user, TimeOffFeed.active)):
        row.active, stopped = False, True
    if stopped:
        record_event(session, ticket_id=None, actor=user, action="rota.time_off_feed_off", at=now, user=user)
    return stopped


def personal_feed(session: Session, user: str) -> FeedView | None:
    row = session.scalar(select(TimeOffFeed).where(TimeOffFeed.owner == user, TimeOffFeed.active))
    if row is None:
        return None
    return FeedView(row.id, row.label, row.owner, row.last_read_at, row.last_error, row.failing_since)


def feeds_due(
    session: Session, *, now: datetime, every: timedelta = READ_EVERY, key: str | None = None
) -> list[FeedToRead]:
    """The feeds to read now, their addresses opened with `key`. An address stored plain
    before the key was set is sealed now; one that cannot be opened is recorded as the
    feed's failure (its owner sees it in `/oncall away sync`)."""
    rows = session.scalars(select(TimeOffFeed).where(TimeOffFeed.active).order_by(TimeOffFeed.id))
    due = []
    for row in rows:
        if key is not None and not is_sealed(row.url):
            row.url = seal(row.url, key)
        if not (row.last_read_at is None or row.last_read_at <= now - every + timedelta(minutes=1)):
            continue
        try:
            url = unseal(row.url, key)
        except SealBroken as exc:
            record_failure(session, row.id, str(exc), now=now)
            continue
        due.append(FeedToRead(row.id, url, row.owner, row.etag, row.last_modified))
    return due


def record_unchanged(session: Session, feed_id: int, *, now: datetime) -> None:
    row = session.get(TimeOffFeed, feed_id)
    if row is not None:
        row.last_read_at, row.last_error, row.last_good_at = now, None, now
        row.failing_since, row.failure_told_at = None, None


def record_failure(session: Session, feed_id: int, error: str, *, now: datetime) -> None:
    row = session.get(TimeOffFeed, feed_id)
    if row is not None:
        row.last_read_at, row.last_error = now, error[:300]
        row.failing_since = row.failing_since or now


def long_failures(
    session: Session, *, now: datetime, after: timedelta = TELL_FAILING_AFTER
) -> list[FeedFailing]:
    """Feeds failing for `after`, or failing from their first read (a mistyped address is
    news at once), whose owner was not told yet; each is marked told, so it is said once per
    stretch of failure (a good read starts afresh)."""
    rows = session.scalars(
        select(TimeOffFeed)
        .where(
            TimeOffFeed.active,
            TimeOffFeed.failure_told_at.is_(None),
            or_(TimeOffFeed.failing_since <= now - after, TimeOffFeed.last_good_at.is_(None)),
            TimeOffFeed.failing_since.is_not(None),
        )
        .order_by(TimeOffFeed.id)
    ).all()
    told = []
    for row in rows:
        assert row.failing_since is not None
        row.failure_told_at = now
        failing = FeedFailing(
            row.id, row.owner, row.label, row.last_error or "", row.failing_since, row.last_good_at is None
        )
        told.append(failing)
    return told


def apply_feed(
    session: Session,
    feed_id: int,
    events: Sequence[CalendarEvent],
    directory: Directory,
    *,
    etag: str | None,
    last_modified: str | None,
    now: datetime,
) -> FeedApplied:
    """Bring the feed's absences in step with `events` (its occurrences from now on)."""
    feed = session.get(TimeOffFeed, feed_id)
    if feed is None:
        return FeedApplied(0, 0, 0, (), ())
    roster = {m.user_id: m for m in store.members(session)}
    wanted: dict[str, tuple[str, CalendarEvent]] = {}
    unmatched: set[str] = set()
    for event in events:
        if event.end <= now or event.end - event.start > LONGEST:
            continue
        user = feed.owner if feed.owner is not None else whose(event, directory)
        if user is None or user not in roster:
            unmatched.add(event.summary or "(an event with no title)")
            continue
        wanted[event.key] = (user, event)
    known = {
        a.event_key: a for a in session.scalars(select(FeedAbsence).where(FeedAbsence.feed_id == feed_id))
    }
    added = moved = removed = 0
    news: list[AbsenceNews] = []
    for key, link in known.items():
        record = session.get(TimeOffRecord, link.time_off_id)
        if key in wanted or record is None or record.cancelled_at is not None or record.end <= now:
            continue
        record.cancelled_at, record.cancelled_by = now, ACTOR
        removed += 1
        record_event(
            session,
            ticket_id=None,
            actor=ACTOR,
            action="rota.time_off_cancelled",
            at=now,
            user=record.user_id,
        )
    for key, (user, event) in wanted.items():
        tz = roster[user].tz
        first, last, start, end = _span(event, tz)
        link = known.get(key)
        record = session.get(TimeOffRecord, link.time_off_id) if link is not None else None
        if record is not None and record.cancelled_at is not None:
            continue  # cancelled by hand here: the person's word wins over the feed's
        if record is not None and (record.user_id, record.start, record.end) == (
            user,
            event.start,
            event.end,
        ):
            continue
        if record is None:
            record = TimeOffRecord(user_id=user, created_by=ACTOR, created_at=now)
            session.add(record)
        was_moved = record.id is not None
        record.user_id, record.start, record.end = user, start, end
        record.first_day, record.last_day = first, last
        session.flush()
        if link is None:
            session.add(FeedAbsence(feed_id=feed_id, event_key=key, time_off_id=record.id))
        moved += was_moved
        added += not was_moved
        record_event(
            session,
            ticket_id=None,
            actor=ACTOR,
            action="rota.time_off_moved" if was_moved else "rota.time_off",
            at=now,
            user=user,
            first=first.isoformat(),
            last=last.isoformat(),
        )
        clashes = tuple(
            d
            for d in store.duties_between(session, event.start, event.end)
            if d.user_id == user and d.end > now
        )
        if clashes:
            view = TimeOffView(record.id, user, first, last, record.start, record.end)
            news.append(AbsenceNews(user, view, clashes, was_moved))
    feed.etag, feed.last_modified, feed.last_read_at, feed.last_error = etag, last_modified, now, None
    feed.failing_since, feed.failure_told_at, feed.last_good_at = None, None, now
    session.flush()
    return FeedApplied(added, moved, removed, tuple(sorted(unmatched)), tuple(news))


def _span(event: CalendarEvent, tz: ZoneInfo) -> tuple[date, date, datetime, datetime]:
    """First and last local day, and [start, end) in UTC, in the person's own zone: an
    all-day absence is whole days where they are, as `/oncall away` records it."""
    if event.days is not None:
        off = TimeOff.for_days(Person("feed", 1.0, tz), *event.days)
        return event.days[0], event.days[1], off.start, off.end
    first = event.start.astimezone(tz).date()
    last = (event.end - timedelta(microseconds=1)).astimezone(tz).date()
    return first, max(first, last), event.start, event.end
