"""The persistent scheduler (APScheduler with its jobs in our database).

The jobs themselves keep no state: each looks in the database for what is due, so
a run missed while the bot was down is caught up by the next one. A new leader
re-adds every job, which restarts its interval; the jobs that must not wait a
whole interval after a restart (paging, the roster) run at once. Only the leader
replica runs the scheduler.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.storage.db import transaction
from bot.storage.models import OutboxItem

log = logging.getLogger(__name__)

# Jobs are pickled by reference; they reach the running bot's services through this.
_runtime: dict[str, object] = {}

DELIVERED_RETENTION = timedelta(days=30)


def set_runtime(
    factory: sessionmaker[Session], clock: Clock, settings: Settings | None = None, client: object = None
) -> None:
    _runtime["factory"] = factory
    _runtime["clock"] = clock
    if client is not None:
        _runtime["client"] = client
    if settings is not None:
        _runtime["settings"] = settings
        _runtime["calendar"] = settings.calendar()


def nudge_unclaimed_tickets() -> list[int]:
    """Remind the channel of tickets nobody has claimed (see bot/tickets/reminders.py)."""
    from bot.outbox.queue import notify_workers
    from bot.tickets.reminders import nudge_unclaimed

    factory = _runtime["factory"]
    clock = _runtime["clock"]
    settings = _runtime["settings"]
    assert isinstance(factory, sessionmaker)
    with transaction(factory) as session:
        nudged = nudge_unclaimed(
            session,
            _runtime["calendar"],  # type: ignore[arg-type]
            nudge_minutes=settings.nudge_minutes,  # type: ignore[attr-defined]
            now=clock.now(),  # type: ignore[attr-defined]
        )
    if nudged:
        notify_workers()
    return nudged


def rota_tick() -> None:
    """Swap expiry, reminders, hand-offs, the ledger, and the rota kept planned ahead (bot/rota_jobs.py)."""
    from bot.outbox.queue import notify_workers
    from bot.rota_jobs import rota_tick as tick

    factory = _runtime["factory"]
    clock = _runtime["clock"]
    assert isinstance(factory, sessionmaker)
    with transaction(factory) as session:
        report = tick(session, _runtime["settings"], _runtime["calendar"], clock.now())  # type: ignore[arg-type,attr-defined]
    if report.handed_off or report.reminded or report.expired:
        log.info(
            "rota: handed off %s, reminded %s, expired offers %s",
            report.handed_off,
            report.reminded,
            report.expired,
        )
    notify_workers()


def paging_tick() -> None:
    """Repeat and escalate unacknowledged pages; the morning hand-over at opening (bot/paging_jobs.py)."""
    from bot.outbox.queue import notify_workers
    from bot.paging_jobs import morning_handover
    from bot.paging_jobs import paging_tick as tick

    factory = _runtime["factory"]
    clock = _runtime["clock"]
    assert isinstance(factory, sessionmaker)
    now = clock.now()  # type: ignore[attr-defined]
    with transaction(factory) as session:
        steps = tick(session, _runtime["settings"], now)  # type: ignore[arg-type]
        morning = _runtime["settings"].morning_handover and morning_handover(  # type: ignore[attr-defined]
            session,
            _runtime["settings"],  # type: ignore[arg-type]
            _runtime["calendar"],  # type: ignore[arg-type]
            now,
        )
    if steps or morning:
        notify_workers()


def sync_roster() -> None:
    """The roster follows the support staff in Slack (joins, leavers, names, time zones)."""
    from bot.slack.staff import fetch_staff
    from rota.store import sync_roster as sync

    factory = _runtime["factory"]
    clock = _runtime["clock"]
    client = _runtime.get("client")
    if client is None:
        return
    assert isinstance(factory, sessionmaker)
    staff = fetch_staff(client, _runtime["settings"])  # type: ignore[arg-type]
    with transaction(factory) as session:
        changes = sync(session, staff, clock.now())  # type: ignore[attr-defined]
    if changes.added or changes.left:
        log.info("roster: joined %s, left %s", list(changes.added), list(changes.left))


def purge_delivered_outbox() -> int:
    """Delivered outbox rows are history the audit log already holds; keep a month of them."""
    factory = _runtime["factory"]
    clock = _runtime["clock"]
    assert isinstance(factory, sessionmaker)
    cutoff = clock.now() - DELIVERED_RETENTION  # type: ignore[attr-defined]
    with transaction(factory) as session:
        removed = session.execute(
            delete(OutboxItem).where(OutboxItem.status == "done", OutboxItem.delivered_at < cutoff)
        ).rowcount
    if removed:
        log.info("purged %s delivered outbox rows older than %s", removed, DELIVERED_RETENTION)
    return int(removed or 0)


def purge_seen_signatures() -> int:
    """Slack signatures old enough that Slack's own freshness check refuses them (bot/web.py)."""
    from bot.storage.seen_signatures import purge_seen_signatures as purge

    factory = _runtime["factory"]
    assert isinstance(factory, sessionmaker)
    # Wall-clock time, as the signatures were stamped: the bot's clock may be moved (sandbox).
    with transaction(factory) as session:
        return purge(session, datetime.now(UTC))


def send_surveys() -> None:
    """Satisfaction surveys for resolutions that are SURVEY_DELAY_MINUTES old (bot/tickets/surveys.py)."""
    from bot.outbox.queue import notify_workers
    from bot.tickets.surveys import send_due_surveys

    factory = _runtime["factory"]
    clock = _runtime["clock"]
    assert isinstance(factory, sessionmaker)
    with transaction(factory) as session:
        run = send_due_surveys(session, _runtime["settings"], clock.now())  # type: ignore[arg-type,attr-defined]
    if run.sent:
        notify_workers()
        log.info("surveys sent for tickets %s", list(run.sent))


def make_scheduler(engine: Engine) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )
    return scheduler


def _paging_interval() -> float:
    """15 s, or a quarter of PAGE_REPEAT_MINUTES when that is shorter than a minute, so a
    repeat is never late by more than a fraction of its own interval."""
    settings = _runtime.get("settings")
    repeat = float(getattr(settings, "page_repeat_minutes", 5.0)) * 60
    return min(15.0, max(1.0, repeat / 4))


def install_standard_jobs(scheduler: BackgroundScheduler) -> None:
    scheduler.add_job(
        nudge_unclaimed_tickets,
        "interval",
        minutes=1,
        id="nudge_unclaimed_tickets",
        replace_existing=True,
    )
    scheduler.add_job(rota_tick, "interval", minutes=1, id="rota_tick", replace_existing=True)
    # Re-adding a job on start moves its next run a whole interval out, so without
    # next_run_time a page that fell due while no leader ran would wait once more, and a
    # bot restarting more often than the interval would never escalate at all.
    scheduler.add_job(
        paging_tick,
        "interval",
        seconds=_paging_interval(),
        id="paging_tick",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    # First at start-up (a new leader may have missed joins and leavers), then hourly.
    scheduler.add_job(
        sync_roster,
        "interval",
        hours=1,
        id="sync_roster",
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(send_surveys, "interval", minutes=1, id="send_surveys", replace_existing=True)
    scheduler.add_job(
        purge_seen_signatures, "interval", minutes=10, id="purge_seen_signatures", replace_existing=True
    )
    scheduler.add_job(
        purge_delivered_outbox,
        "interval",
        hours=6,
        id="purge_delivered_outbox",
        replace_existing=True,
    )
