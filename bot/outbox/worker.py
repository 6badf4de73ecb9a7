"""Delivering outbox rows: at least once, in order per lane, paced, with backoff.

A lane (one Slack channel, one person's DMs, or SMTP) is a queue: one row at a
time, in the order written, except that a new ticket's post may overtake thread
posts waiting in its channel and a page overtakes anything in its DM lane
(`bot.outbox.pacing`). A lane is paced by a token bucket, and a Retry-After
pauses the whole lane. Each try is counted in the database *before* the effect
happens, so after a crash the handler knows a previous try may have reached the
outside world and can look before repeating.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.outbox.pacing import (
    LANE_BURST,
    NOT_BARRIER_KINDS,
    OVERTAKABLE_KINDS,
    LaneQueue,
    TokenBucket,
    next_in_lane,
)
from bot.outbox.queue import QUEUED_LANES, SLACK_PAGE, SLACK_TICKET_POST, SignalledWorker, notify_workers
from bot.storage.db import reading, transaction
from bot.storage.models import OutboxItem

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The effect did not happen; try again. `after` (seconds) overrides backoff (Retry-After)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class PermanentFailure(Exception):
    """The effect can never succeed as queued (bad request); the row is set aside as dead."""


class DeliveryObserver(Protocol):
    def observe(self, item: OutboxItem, outcome: str) -> None:
        """Told each try's outcome once it is recorded: delivered, retry or dead (metrics)."""


class Handler(Protocol):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        """Perform the effect; return what to remember (e.g. Slack ts). May raise the two above."""

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        """Store the result on domain rows, in the transaction that marks the row done."""


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempts: int) -> float:
        # Full jitter keeps replicas and lanes from retrying in lockstep.
        ceiling = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        return random.uniform(ceiling / 2, ceiling)


# Passes in a row cut short by new rows (see run_once).
MAX_RESTARTS = 3


class OutboxWorker(SignalledWorker):
    def __init__(
        self,
        factory: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        *,
        lane_prefix: str,
        clock: Clock,
        pace_seconds: float = 0.0,
        burst: int = LANE_BURST,
        backoff: Backoff | None = None,
        poll_seconds: float = 0.5,
        on_dead: Callable[[OutboxItem, str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.factory = factory
        self.handlers = handlers
        self.lane_prefix = lane_prefix
        self.clock = clock
        self.pace_seconds = pace_seconds
        self.backoff = backoff or Backoff()
        self.poll_seconds = poll_seconds
        self.on_dead = on_dead
        self.burst = burst
        self.monotonic = monotonic
        # In memory: after a restart a lane starts with a full bucket, which Slack's burst
        # allowance covers, and any 429 it meets pauses the lane again.
        self._buckets: dict[str, TokenBucket] = {}
        # Retry-After pauses, on the bot's clock like next_attempt_at (tests move it on).
        self._paused_until: dict[str, datetime] = {}
        self._restarts = 0
        self.observer = observer
        super().__init__(lane_prefix)

    # -- lifecycle -------------------------------------------------------------

    @property
    def thread_name(self) -> str:  # type: ignore[override]
        return f"outbox-{self.lane_prefix}"

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                progressed, next_due = self.run_once()
            except Exception:
                log.exception("outbox worker %s failed; retrying shortly", self.lane_prefix)
                progressed, next_due = False, self.poll_seconds
            if not progressed:
                self._signal.wait(min(self.poll_seconds, max(0.01, next_due)))
                self._signal.clear()

    # -- one pass ---------------------------------------------------------------

    def run_once(self) -> tuple[bool, float]:
        """Try the next row of every lane once. Returns (delivered anything, seconds until next due)."""
        # Rows committed from here on set the signal again, and end this pass early (below).
        self._signal.clear()
        now = self.clock.now()
        progressed = False
        next_due = self.poll_seconds
        for pick, head in self._lane_picks(now):
            if self._stop.is_set():
                break
            item = self._due(pick, head, now)
            if isinstance(item, float):
                next_due = min(next_due, item)
                continue
            if self._attempt(item):
                progressed = True
            if self._signal.is_set() and self._restarts < MAX_RESTARTS:
                # New rows (perhaps a page, or a new ticket) may rank before the rest of
                # this pass: read the lanes again rather than finish it. Only a few times
                # in a row, so a stream of commits cannot starve the pass's last lanes.
                self._restarts += 1
                return True, 0.0
        self._restarts = 0
        return progressed, next_due

    def _due(self, pick: int, head: int, now: datetime) -> OutboxItem | float:
        """The lane's pick if it may go now, else its head (a pick waiting out its own
        backoff holds up nothing it overtook), else how many seconds until one may."""
        waits: list[float] = []
        with reading(self.factory) as session:
            for item_id in dict.fromkeys((pick, head)):
                item = session.get(OutboxItem, item_id)
                if item is None or item.status != "pending":
                    continue
                wait = (item.next_attempt_at - now).total_seconds()
                paused = self._paused_until.get(item.lane)
                if paused is not None:
                    wait = max(wait, (paused - now).total_seconds())
                pace_wait = self._bucket(item.lane).wait(self.monotonic())
                if wait > 0 or pace_wait > 0:
                    waits.append(max(wait, pace_wait))
                    continue
                session.expunge(item)
                return item
        return min(waits, default=self.poll_seconds)

    def drain(self, timeout: float = 30.0) -> None:
        """Deliver until nothing is due (tests and the CLI's `outbox flush`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progressed, _ = self.run_once()
            if not progressed and not self.pending_due():
                return
            if not progressed:
                time.sleep(0.01)
        raise TimeoutError("outbox did not drain in time")

    def pending_due(self) -> int:
        with reading(self.factory) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(
                        OutboxItem.status == "pending",
                        OutboxItem.lane.startswith(self.lane_prefix),
                        OutboxItem.next_attempt_at <= self.clock.now(),
                    )
                )
                or 0
            )

    def _lane_picks(self, now: datetime) -> list[tuple[int, int]]:
        """The row each lane would deliver next, most urgent first (pages, then new tickets)."""
        overtakable = OutboxItem.kind.in_(OVERTAKABLE_KINDS)
        with reading(self.factory) as session:
            rows = session.execute(
                select(
                    func.min(OutboxItem.id),
                    func.min(case((OutboxItem.kind == SLACK_PAGE, OutboxItem.id))),
                    func.min(case((OutboxItem.kind == SLACK_TICKET_POST, OutboxItem.id))),
                    func.min(case((OutboxItem.kind.not_in(NOT_BARRIER_KINDS), OutboxItem.id))),
                    func.min(case((overtakable, OutboxItem.created_at))),
                )
                .where(OutboxItem.status == "pending", OutboxItem.lane.startswith(self.lane_prefix))
                .group_by(OutboxItem.lane)
            ).all()
        queues = [
            LaneQueue(
                head=head, first_page=page, first_post=post, first_barrier=barrier, oldest_thread=oldest
            )
            for head, page, post, barrier, oldest in rows
        ]
        picks = sorted((next_in_lane(queue, now=now), queue.head) for queue in queues)
        return [(pick.item_id, head) for pick, head in picks]

    def _bucket(self, lane: str) -> TokenBucket:
        bucket = self._buckets.get(lane)
        if bucket is None:
            bucket = self._buckets[lane] = TokenBucket(self.pace_seconds, self.burst, self.monotonic())
        return bucket

    def _attempt(self, item: OutboxItem) -> bool:
        handler = self.handlers.get(item.kind)
        if handler is None:
            self._finish_dead(item, f"no handler for kind {item.kind!r}")
            return False
        # Count the try before making it: a crash after the effect leaves attempts > 0,
        # which tells the handler to look for the effect before repeating it.
        with transaction(self.factory) as session:
            claimed = session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id, OutboxItem.status == "pending")
                .values(attempts=OutboxItem.attempts + 1)
            ).rowcount
        if not claimed:
            return False
        item.attempts += 1
        self._bucket(item.lane).take(self.monotonic())
        try:
            result = handler.deliver(item)
        except RetryLater as exc:
            delay = exc.after if exc.after is not None else self.backoff.delay(item.attempts)
            if exc.after is not None:
                # Retry-After (or a handler's "not before"): nothing else in this lane may go
                # meanwhile either, not even a row allowed to overtake this one.
                self._paused_until[item.lane] = self.clock.now() + timedelta(seconds=exc.after)
                self._bucket(item.lane).overspent(self.monotonic())
            self._reschedule(item, delay, exc.reason)
            return False
        except PermanentFailure as exc:
            self._finish_dead(item, str(exc))
            return True
        except Exception as exc:  # a bug in a handler must not wedge the lane forever silently
            log.exception("outbox item %s (%s) failed unexpectedly", item.id, item.kind, extra=_ids(item))
            self._reschedule(item, self.backoff.delay(item.attempts), f"{type(exc).__name__}: {exc}")
            return False
        with transaction(self.factory) as session:
            row = session.get(OutboxItem, item.id)
            assert row is not None
            row.status = "done"
            row.result = result
            row.delivered_at = self.clock.now()
            row.last_error = None
            handler.record(session, row, result)
            queued = set(session.info.get(QUEUED_LANES, ()))
        if queued:
            # A record may queue rows of its own: once SMTP has taken a reply, its post in the
            # ticket's thread. Their worker would otherwise find it at its next poll (0.5 s).
            notify_workers(queued)
        self._observe(item, "delivered")
        return True

    def _reschedule(self, item: OutboxItem, delay: float, reason: str) -> None:
        log.warning(
            "outbox item %s (%s) not delivered (try %s): %s; next try in %.1fs",
            item.id,
            item.kind,
            item.attempts,
            reason,
            delay,
            extra=_ids(item),
        )
        with transaction(self.factory) as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id)
                .values(
                    next_attempt_at=self.clock.now() + timedelta(seconds=delay),
                    last_error=reason[:2000],
                )
            )
        self._observe(item, "retry")

    def _finish_dead(self, item: OutboxItem, reason: str) -> None:
        log.error(
            "outbox item %s (%s) set aside, it cannot be delivered: %s",
            item.id,
            item.kind,
            reason,
            extra=_ids(item),
        )
        with transaction(self.factory) as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id)
                .values(status="dead", last_error=reason[:2000])
            )
        self._observe(item, "dead")
        if self.on_dead is not None:
            self.on_dead(item, reason)

    def _observe(self, item: OutboxItem, outcome: str) -> None:
        if self.observer is not None:
            self.observer.observe(item, outcome)


def _ids(item: OutboxItem) -> dict[str, int | None]:
    # Fields of JSON log lines (LOG_FORMAT=json), so a row's story can be searched for.
    return {"outbox_id": item.id, "ticket_id": item.ticket_id}


def outbox_stats(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """Counts by status (for /healthz)."""
    with factory() as session:
        rows = session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
    return {status: int(count) for status, count in rows}
