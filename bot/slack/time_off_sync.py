"""The hourly read of the time-off feeds (the leader's `read_time_off_feeds` job): fetch each
feed that is due, outside any transaction, then bring its absences in step in one, with a DM
for each absence that clashes with the person's duties."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.ical_fetch import FetchFailed, fetch_calendar, mask_url
from bot.outbox.queue import enqueue_post
from bot.slack.calendar_people import directory_for, roster_names
from bot.slack.oncall_import import absence_clash, feed_failing
from bot.storage.db import transaction
from rota import time_off_feeds as feeds
from rota.ical_match import Directory, emails_of
from rota.ical_read import CalendarUnreadable, read_calendar

log = logging.getLogger(__name__)


def read_time_off_feeds(
    factory: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    client: Any,
    *,
    every: timedelta = feeds.READ_EVERY,
) -> int:
    """Read every feed due; returns how many absences were added, moved or removed."""
    now = clock.now()
    urls, key = settings.calendar_feeds.team_urls, settings.calendar_feeds.url_key
    with transaction(factory) as session:
        feeds.follow_team_feeds(session, urls, [mask_url(u) for u in urls], now=now, key=key)
        due = feeds.feeds_due(session, now=now, every=every, key=key)
    changed = 0
    for feed in due:
        changed += _read_one(factory, settings, clock, client, feed)
    with transaction(factory) as session:
        now = clock.now()
        for failing in feeds.long_failures(session, now=now):
            for to in [failing.owner] if failing.owner else sorted(settings.managers):
                key = f"time-off-feed-failing:{failing.feed_id}:{failing.since.isoformat()}:{to}"
                enqueue_post(session, to, feed_failing(failing), now=now, dedupe_key=key)
    return changed


def _read_one(
    factory: sessionmaker[Session], settings: Settings, clock: Clock, client: Any, feed: feeds.FeedToRead
) -> int:
    try:
        fetched = fetch_calendar(
            feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            allow_private=settings.calendar_feeds.allow_private_hosts,
        )
        now = clock.now()
        if fetched.body is None:
            with transaction(factory) as session:
                feeds.record_unchanged(session, feed.id, now=now)
            return 0
        events = read_calendar(fetched.body, start=now, end=now + feeds.AHEAD, tz=settings.timezone)
    except (FetchFailed, CalendarUnreadable) as exc:
        # The message names no URL; the feed's id says which one to look at.
        log.warning("time-off feed %s: %s", feed.id, exc)
        with transaction(factory) as session:
            feeds.record_failure(session, feed.id, str(exc), now=clock.now())
        return 0
    directory = Directory({}, {})
    if feed.owner is None and client is not None:
        with factory() as session:
            names = roster_names(session)
        directory = directory_for(client, names, emails_of(events))
    with transaction(factory) as session:
        applied = feeds.apply_feed(
            session,
            feed.id,
            events,
            directory,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            now=now,
        )
        for news in applied.news:
            text, blocks = absence_clash(news, settings.timezone)
            enqueue_post(session, news.to, text, now=now, blocks=blocks)
    if applied.added or applied.moved or applied.removed:
        log.info(
            "time-off feed %s: %s added, %s moved, %s removed",
            feed.id,
            applied.added,
            applied.moved,
            applied.removed,
        )
    return applied.added + applied.moved + applied.removed
