"""The scheduler (APScheduler) and the jobs it runs on the leader.

The jobs themselves keep no state: each looks in the database for what is due, so
a run missed while the bot was down is caught up by the next one. A new leader
installs every job afresh, which starts its interval over; the jobs that must not wait
a whole interval after a restart (paging, the roster) run at once. Only the leader
replica runs the scheduler.

The jobs are methods of `ScheduledJobs`, bound to the running bot's services by the
composition root (bot/app.py), so they live in APScheduler's memory jobstore: nothing
of them is worth keeping across restarts, since every start installs them again and
their markers in the database make each step happen once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Concatenate, ParamSpec, TypeVar

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk import WebClient
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.health.connections import check_outages
from bot.health.status import record_leader, this_replica
from bot.outbox.queue import notify_workers
from bot.phone.seen import purge_seen_twilio_webhooks
from bot.privacy.erasure import erase_expired, sweep_late_effects
from bot.slack.handoffs import rota_tick
from bot.slack.health_notices import queue_health_notices
from bot.slack.paging import morning_handover, paging_tick
from bot.slack.staff import fetch_staff
from bot.slack.time_off_sync import read_time_off_feeds
from bot.storage.db import transaction
from bot.storage.models import OutboxItem
from bot.storage.seen_signatures import purge_seen_signatures
from bot.tickets.reminders import nudge_unclaimed
from bot.tickets.surveys import send_due_surveys
from rota.ical_import import expire_staged_imports
from rota.store import sync_roster

log = logging.getLogger(__name__)

DELIVERED_RETENTION = timedelta(days=30)


JOB_NAMES = (
    "nudge_unclaimed_tickets",
    "rota_tick",
    "paging_tick",
    "sync_roster",
    "purge_delivered_outbox",
    "purge_seen_signatures",
    "send_surveys",
    "read_time_off_feeds",
    "health_tick",
    "apply_retention",
    "expire_rota_imports",
)
# Retention batches per run: a backlog (the setting just turned on) is worked off over
# several runs, each batch its own short write transaction.
RETENTION_BATCHES_PER_RUN = 40
RETENTION_BATCH_TARGET = 0.4  # seconds a retention batch's transaction should take at most
P = ParamSpec("P")
R = TypeVar("R")
Job = Callable[Concatenate["ScheduledJobs", P], R]


def one_at_a_time(job: Job[P, R]) -> Job[P, R]:
    """Run a job alone within this bot, reading the clock only once it has its turn.

    APScheduler's max_instances keeps the scheduler from overlapping itself, but a job is
    also run by hand (the sandbox's clock, tests, an operator). Two runs at once would each
    skip what the other holds locked (rota/paging.py takes due pages SKIP LOCKED, which is
    right between replicas), and the one holding it may have read the clock before it was
    moved on: the later run would then miss a step that had fallen due. Waiting for the
    earlier run to commit makes the later one see, and take, what is due by its own time.
    Per instance: two bots in one process are two replicas and must not wait for each other.
    """

    @functools.wraps(job)
    def run(self: ScheduledJobs, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.turns[job.__name__]:
            return job(self, *args, **kwargs)

    return run


@dataclass
class RetentionRun:
    tickets: int = 0
    # How long each batch's write transaction lasted (on SQLite, the write lock's hold).
    batch_seconds: list[float] = field(default_factory=list)


class ScheduledJobs:
    """The periodic jobs, over the services the composition root built."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        settings: Settings,
        client: WebClient | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.settings = settings
        self.calendar = settings.calendar()
        self.client = client
        self.replica = this_replica()
        # When this process last became leader (set by install_standard_jobs).
        self.leading_since: datetime | None = None
        # One lock per job, made up front so no two threads race to create one.
        self.turns: dict[str, threading.Lock] = {name: threading.Lock() for name in JOB_NAMES}

    @one_at_a_time
    def nudge_unclaimed_tickets(self) -> list[int]:
        """Remind the channel of tickets nobody has claimed (see bot/tickets/reminders.py)."""
        with transaction(self.factory) as session:
            nudged = nudge_unclaimed(
                session, self.calendar, nudge_minutes=self.settings.nudge_minutes, now=self.clock.now()
            )
        if nudged:
            notify_workers()
        return nudged

    @one_at_a_time
    def rota_tick(self) -> None:
        """Swap expiry, reminders, hand-offs, the ledger, and the rota kept planned ahead."""
        with transaction(self.factory) as session:
            report = rota_tick(session, self.settings, self.calendar, self.clock.now())
        if report.handed_off or report.reminded or report.expired:
            log.info(
                "rota: handed off %s, reminded %s, expired offers %s",
                report.handed_off,
                report.reminded,
                report.expired,
            )
        notify_workers()

    @one_at_a_time
    def paging_tick(self) -> None:
        """Repeat and escalate unacknowledged pages; the morning hand-over at opening."""
        now = self.clock.now()
        with transaction(self.factory) as session:
            steps = paging_tick(session, self.settings, now)
            morning = self.settings.morning_handover and morning_handover(
                session, self.settings, self.calendar, now
            )
        if steps or morning:
            notify_workers()

    @one_at_a_time
    def sync_roster(self) -> None:
        """The roster follows the support staff in Slack (joins, leavers, names, time zones)."""
        if self.client is None:
            return
        staff = fetch_staff(self.client, self.settings)
        with transaction(self.factory) as session:
            changes = sync_roster(session, staff, self.clock.now())
        if changes.added or changes.left:
            log.info("roster: joined %s, left %s", list(changes.added), list(changes.left))

    @one_at_a_time
    def purge_delivered_outbox(self) -> int:
        """Delivered outbox rows are history the audit log already holds; keep a month of them."""
        cutoff = self.clock.now() - DELIVERED_RETENTION
        with transaction(self.factory) as session:
            removed = session.execute(
                delete(OutboxItem).where(OutboxItem.status == "done", OutboxItem.delivered_at < cutoff)
            ).rowcount
        if removed:
            log.info("purged %s delivered outbox rows older than %s", removed, DELIVERED_RETENTION)
        return int(removed or 0)

    @one_at_a_time
    def expire_rota_imports(self) -> int:
        """Import previews nobody published within two days are dropped (rota/ical_import.py)."""
        with transaction(self.factory) as session:
            return expire_staged_imports(session, now=self.clock.now())

    @one_at_a_time
    def purge_seen_signatures(self) -> int:
        """Slack signatures old enough that Slack's own freshness check refuses them (bot/web.py)."""
        # Wall-clock time, as the signatures were stamped: the bot's clock may be moved (sandbox).
        with transaction(self.factory) as session:
            purge_seen_twilio_webhooks(session, self.clock.now())
            return purge_seen_signatures(session, datetime.now(UTC))

    @one_at_a_time
    def send_surveys(self) -> None:
        """Satisfaction surveys for resolutions that are SURVEY_DELAY_MINUTES old (bot/tickets/surveys.py)."""
        with transaction(self.factory) as session:
            run = send_due_surveys(session, self.settings, self.clock.now())
        if run.sent:
            notify_workers()
            log.info("surveys sent for tickets %s", list(run.sent))

    @one_at_a_time
    def health_tick(self) -> int:
        """Say who leads (for /support status), and announce an outage that passed
        HEALTH_NOTICE_MINUTES between two of its reports (bot/health). Returns posts queued."""
        now = self.clock.now()
        since = self.leading_since or now
        with transaction(self.factory) as session:
            record_leader(session, self.replica, since, now)
            notices = check_outages(
                session,
                now,
                threshold=timedelta(minutes=self.settings.health_notice_minutes),
                reported_since=since,
            )
            queued = queue_health_notices(session, self.settings, notices, now)
        if queued:
            notify_workers()
        return queued

    @one_at_a_time
    def apply_retention(self) -> RetentionRun:
        """Erase resolved tickets untouched for RETENTION_DAYS (bot/privacy/erasure.py), in
        bounded batches: each a short transaction, so SQLite's write lock is never held long.
        First, whatever reached Slack after its ticket was erased is erased too."""
        run = RetentionRun()
        with transaction(self.factory) as session:
            if sweep_late_effects(session, self.clock.now()):
                notify_workers()
        privacy = self.settings.privacy
        if privacy.retention_days is None:
            return run
        size = privacy.retention_batch
        for _ in range(RETENTION_BATCHES_PER_RUN):
            started = time.monotonic()
            with transaction(self.factory) as session:
                erased = erase_expired(session, privacy, self.clock.now(), limit=size)
            took = time.monotonic() - started
            run.batch_seconds.append(took)
            run.tickets += erased
            if erased < size:
                break
            # A busy machine or a slow disk makes a batch slower: smaller batches then keep
            # each hold of the write lock well under a second; quick ones grow back.
            if took > RETENTION_BATCH_TARGET:
                size = max(1, size // 2)
            elif took < RETENTION_BATCH_TARGET / 3:
                size = min(privacy.retention_batch, size * 2)
        if run.tickets:
            notify_workers()
            log.info("retention: erased %s tickets older than %s days", run.tickets, privacy.retention_days)
        return run

    def paging_interval(self) -> float:
        """15 s, or a quarter of PAGE_REPEAT_MINUTES when that is shorter than a minute, so a
        repeat is never late by more than a fraction of its own interval."""
        repeat = float(self.settings.page_repeat_minutes) * 60
        return min(15.0, max(1.0, repeat / 4))

    @one_at_a_time
    def read_time_off_feeds(self) -> int:
        """Time off follows the calendars of absences, each read hourly (bot/slack/time_off_sync.py)."""
        changed = read_time_off_feeds(self.factory, self.settings, self.clock, self.client)
        if changed:
            notify_workers()
        return changed


def make_scheduler() -> BackgroundScheduler:
    return BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )


def install_standard_jobs(scheduler: BackgroundScheduler, jobs: ScheduledJobs) -> None:
    jobs.leading_since = jobs.clock.now()
    # At once: /support status names the new leader from the start.
    scheduler.add_job(
        jobs.health_tick,
        "interval",
        seconds=30,
        id="health_tick",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        jobs.nudge_unclaimed_tickets,
        "interval",
        minutes=1,
        id="nudge_unclaimed_tickets",
        replace_existing=True,
    )
    scheduler.add_job(jobs.rota_tick, "interval", minutes=1, id="rota_tick", replace_existing=True)
    # A new leader installs the jobs afresh, which moves each first run a whole interval
    # out, so without next_run_time a page that fell due while no leader ran would wait
    # once more, and a bot restarting more often than the interval would never escalate.
    scheduler.add_job(
        jobs.paging_tick,
        "interval",
        seconds=jobs.paging_interval(),
        id="paging_tick",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    # First at start-up (a new leader may have missed joins and leavers), then hourly.
    scheduler.add_job(
        jobs.sync_roster,
        "interval",
        hours=1,
        id="sync_roster",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(jobs.send_surveys, "interval", minutes=1, id="send_surveys", replace_existing=True)
    # Every 5 minutes, to read a newly given feed soon; each feed itself is read hourly.
    scheduler.add_job(
        jobs.read_time_off_feeds, "interval", minutes=5, id="read_time_off_feeds", replace_existing=True
    )
    scheduler.add_job(
        jobs.purge_seen_signatures, "interval", minutes=10, id="purge_seen_signatures", replace_existing=True
    )
    scheduler.add_job(
        jobs.expire_rota_imports, "interval", hours=1, id="expire_rota_imports", replace_existing=True
    )
    scheduler.add_job(
        jobs.apply_retention, "interval", minutes=15, id="apply_retention", replace_existing=True
    )
    scheduler.add_job(
        jobs.purge_delivered_outbox,
        "interval",
        hours=6,
        id="purge_delivered_outbox",
        replace_existing=True,
    )
