"""iCalendar feeds of the on-call rota, and the secrets in their URLs.

A feed is an RFC 5545 calendar that people subscribe to from their calendar app:
one for the whole team, and one per person with only their duties. Whoever knows
a feed's URL can read it, so the URL holds a random token, and rotating the token
is how a leaked URL is revoked.

`duties_calendar` is pure; the rest take a database session and leave committing
to the caller.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import CalendarFeed, RotaDuty, RotaMember

TEAM_FEED = "team"
TEAM_TITLE = "On-call rota"
PERSONAL_SUMMARY = "On call (support)"
UNASSIGNED_NAME = "nobody (unassigned)"
# Past duties older than this are of no use in a calendar app and only make every
# refresh heavier.
KEEP_PAST = timedelta(days=90)
# How often calendar apps should refetch (RFC 7986 REFRESH-INTERVAL; Outlook reads
# X-PUBLISHED-TTL). A swap shows up within the hour.
REFRESH = timedelta(hours=1)
PRODID = "-//supportbot//on-call rota//EN"

# What secrets.token_urlsafe produces; anything else cannot be a token of ours.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class FeedDuty(Protocol):
    """What a feed needs of a duty; `RotaDuty` rows fit."""

    @property
    def id(self) -> int: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def published_at(self) -> datetime: ...


@dataclass(frozen=True)
class FeedOwner:
    """Whose feed a token opens: a person's (`user_id`), or the team's (`user_id` None)."""

    user_id: str | None

    @property
    def is_team(self) -> bool:
        return self.user_id is None


# -- the calendar --------------------------------------------------------------------


def duties_calendar(
    duties: Iterable[FeedDuty],
    *,
    title: str,
    names: Mapping[str, str],
    tz: ZoneInfo | str,
    now: datetime,
    base_url: str | None = None,
    person: str | None = None,
) -> bytes:
    """An RFC 5545 VCALENDAR with one VEVENT per duty, times in UTC.

    `person` set makes it that person's own feed: only their duties, each titled
    "On call (support)"; otherwise the team feed, titled with who is on call.
    `tz` is the team's time zone, named in X-WR-TIMEZONE and used for the local
    times in each event's description. `now` decides which old duties are dropped.
    The output depends only on its inputs, so an unchanged rota gives the same bytes
    (and the same ETag).
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    cutoff = _utc(now) - KEEP_PAST
    domain = _uid_domain(base_url)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("name", title)
    calendar.add("x-wr-calname", title)
    calendar.add("x-wr-timezone", zone.key)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")

    for duty in sorted(duties, key=lambda d: (_utc(d.start), d.id)):
        if _utc(duty.end) < cutoff:
            continue
        if person is not None and duty.user_id != person:
            continue
        calendar.add_component(_duty_event(duty, names=names, zone=zone, domain=domain, person=person))
    return calendar.to_ical()


def _duty_event(
    duty: FeedDuty, *, names: Mapping[str, str], zone: ZoneInfo, domain: str, person: str | None
) -> Event:
    start, end = _utc(duty.start), _utc(duty.end)
    event = Event()
    if person is None:
        # The team feed keys events by duty alone, so when a duty changes hands the
        # calendar app updates the event instead of showing both holders.
        event.add("uid", f"duty-{duty.id}@{domain}")
        holder = UNASSIGNED_NAME if duty.user_id is None else (names.get(duty.user_id) or duty.user_id)
        event.add("summary", f"On call: {holder}")
    else:
        # Distinct from the team feed's UIDs: Google Calendar shows an event whose UID
        # it already has in another subscribed calendar only once.
        event.add("uid", f"duty-{duty.id}-{person.lower()}@{domain}")
        event.add("summary", PERSONAL_SUMMARY)
    event.add("dtstart", start)
    event.add("dtend", end)
    # Without a METHOD, DTSTAMP is when the event was last revised (RFC 5545 3.8.7.2),
    # which for a duty is when it was last published: every swap and cover republishes.
    revised = _utc(duty.published_at)
    event.add("dtstamp", revised)
    event.add("last-modified", revised)
    # A week on call must not mark the whole week busy in scheduling assistants.
    event.add("transp", "TRANSPARENT")
    event.add("description", f"{_local(start, zone)} – {_local(end, zone)} ({zone.key})")
    return event


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime in a calendar feed")
    return moment.astimezone(UTC)


def _uid_domain(base_url: str | None) -> str:
    host = urlsplit(base_url).hostname if base_url else None
    return host or "supportbot"


# -- tokens --------------------------------------------------------------------------


def new_token() -> str:
    # 32 bytes: 256 bits, unguessable; URL-safe so it sits in a path as is.
    return secrets.token_urlsafe(32)


def feed_url(base_url: str, token: str) -> str:
    """Where a feed is subscribed to, e.g. https://bot.example.com/ical/<token>.ics."""
    return f"{base_url.rstrip('/')}/ical/{token}.ics"


def team_feed_token(session: Session, now: datetime) -> str:
    """The team feed's token, made on first use."""
    feed = session.get(CalendarFeed, TEAM_FEED)
    if feed is not None:
        return feed.token
    token = new_token()
    try:
        # Two people asking at once for the first time both insert; the savepoint lets
        # the loser read the winner's row instead of failing its whole transaction.
        with session.begin_nested():
            session.add(CalendarFeed(name=TEAM_FEED, token=token, created_at=_utc(now)))
    except IntegrityError:
        feed = session.get(CalendarFeed, TEAM_FEED, populate_existing=True)
        assert feed is not None
        return feed.token
    return token


def reset_team_token(session: Session, now: datetime) -> str:
    """A new team feed token; the old URL stops working once this commits."""
    token = new_token()
    feed = session.get(CalendarFeed, TEAM_FEED, with_for_update=True)
    if feed is None:
        session.add(CalendarFeed(name=TEAM_FEED, token=token, created_at=_utc(now)))
    else:
        feed.token = token
        feed.created_at = _utc(now)
    session.flush()
    return token


def member_feed_token(session: Session, user_id: str) -> str | None:
    """A person's feed token; None if they are not on the roster."""
    member = session.get(RotaMember, user_id)
    return None if member is None else member.ical_token


def reset_member_token(session: Session, user_id: str, now: datetime) -> str | None:
    """A new token for a person's feed (their old URL stops working); None if not on the roster."""
    member = session.get(RotaMember, user_id, with_for_update=True)
    if member is None:
        return None
    member.ical_token = new_token()
    member.updated_at = _utc(now)
    session.flush()
    return member.ical_token


def find_feed(session: Session, token: str) -> FeedOwner | None:
    """Whose feed `token` opens, or None.

    Both lookups always run, by their unique indexes, so an unknown token, a
    malformed one and a person's token take about the same time to answer.
    """
    probe = token if _TOKEN_SHAPE.fullmatch(token) else "-"
    team = session.scalar(select(CalendarFeed.name).where(CalendarFeed.token == probe))
    member = session.scalar(select(RotaMember.user_id).where(RotaMember.ical_token == probe))
    if probe != token:
        return None
    if team == TEAM_FEED:
        return FeedOwner(user_id=None)
    if member is not None:
        return FeedOwner(user_id=member)
    return None


def feed_for_token(
    session: Session, token: str, *, tz: ZoneInfo | str, now: datetime, base_url: str | None = None
) -> bytes | None:
    """The calendar a feed URL's token opens, or None for a token that opens nothing."""
    owner = find_feed(session, token)
    if owner is None:
        return None
    query = select(RotaDuty).where(RotaDuty.end >= _utc(now) - KEEP_PAST)
    if not owner.is_team:
        query = query.where(RotaDuty.user_id == owner.user_id)
    duties = session.scalars(query.order_by(RotaDuty.start)).all()
    names = {user_id: name for user_id, name in session.execute(select(RotaMember.user_id, RotaMember.name))}
    if owner.is_team:
        title = TEAM_TITLE
    else:
        assert owner.user_id is not None
        title = f"{TEAM_TITLE}: {names.get(owner.user_id) or owner.user_id}"
    return duties_calendar(
        duties, title=title, names=names, tz=tz, now=now, base_url=base_url, person=owner.user_id
    )
