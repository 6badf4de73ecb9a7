"""Calendars read from outside: a rota import waiting for Publish, the time-off feeds read
hourly, and which time off came from which feed event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


class RotaImport(Base):
    """A calendar read and matched, shown to a manager as a preview; applied once on Publish.

    `shifts` holds the matched occurrences ([start, end, user id] in ISO UTC), so Publish
    applies what the preview was made from even if the calendar changed since.
    """

    __tablename__ = "rota_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(300))  # a file name or a URL with its secrets masked
    shifts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    unmatched: Mapped[list[Any]] = mapped_column(JSON, default=list)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(20))  # published | history | cancelled


class TimeOffFeed(Base):
    """An iCalendar feed of absences: the team's (TIME_OFF_ICAL_URLS) or one person's.

    The URL is the feed's only key (calendar apps put a secret in it), so it is shown
    masked (`label`) and never logged; `url_hash` finds a team feed again from settings.
    """

    __tablename__ = "time_off_feeds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url_hash: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str | None] = mapped_column(String(32), index=True)  # None: a team feed
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    etag: Mapped[str | None] = mapped_column(String(300))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_read_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    # The first failed read since the last good one; when its owner was told it keeps failing.
    failing_since: Mapped[datetime | None]
    failure_told_at: Mapped[datetime | None]
    last_good_at: Mapped[datetime | None]  # None: never read well since this address was given
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("url_hash", "owner", name="uq_time_off_feeds_url_owner"),)


class FeedAbsence(Base):
    """Time off that came from a feed event (UID + RECURRENCE-ID): only these does a read
    of the feed move or cancel; time off entered by hand is never touched."""

    __tablename__ = "feed_absences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("time_off_feeds.id"), index=True)
    event_key: Mapped[str] = mapped_column(String(500))
    time_off_id: Mapped[int] = mapped_column(ForeignKey("time_off.id"), index=True)

    __table_args__ = (UniqueConstraint("feed_id", "event_key", name="uq_feed_absences_event"),)
