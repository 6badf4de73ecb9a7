"""Delivering outbox rows: at least once, in order per lane, paced, with backoff.

A lane (one Slack channel, or SMTP) is a strict queue: its head must be
delivered before the next row is tried, which keeps tickets in arrival order
and makes a Retry-After pause the whole lane. Each try is counted in the
database *before* the effect happens, so after a crash the handler knows a
previous try may have reached the outside world and can look before repeating.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.outbox.queue import SignalledWorker
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


class OutboxWorker(SignalledWorker):
    def __init__(
        self,
        factory: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        *,
        lane_prefix: str,
        clock: Clock,
        pace_seconds: float = 0.0,
        backoff: Backoff | None = None,
        poll_seconds: float = 0.5,
        on_dead: Callable[[OutboxItem, str], None] | None = None,
    ) -> None:
        self.factory = factory
        self.handlers = handlers
        self.lane_prefix = lane_prefix
        self.clock = clock
        self.pace_seconds = pace_seconds
        self.backoff = backoff or Backoff()
        self.poll_seconds = poll_seconds
        self.on_dead = on_dead
        self._last_sent: dict[str, float] = {}
        super().__init__()

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
        """Try the head of every lane once. Returns (delivered anything, seconds until next due)."""
        now = self.clock.now()
        progressed = False
        next_due = self.poll_seconds
        for item_id in self._lane_heads():
            if self._stop.is_set():
                break
            with reading(self.factory) as session:
                item = session.get(OutboxItem, item_id)
                if item is None or item.status != "pending":
                    continue
                wait = (item.next_attempt_at - now).total_seconds()
                pace_wait = self._pace_wait(item.lane)
                if wait > 0 or pace_wait > 0:
                    next_due = min(next_due, max(wait, pace_wait))
                    continue
                session.expunge(item)
            if self._attempt(item):
                progressed = True
        return progressed, next_due

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

    def _lane_heads(self) -> list[int]:
        with reading(self.factory) as session:
            rows = session.execute(
                select(func.min(OutboxItem.id))
                .where(OutboxItem.status == "pending", OutboxItem.lane.startswith(self.lane_prefix))
                .group_by(OutboxItem.lane)
            ).all()
        return sorted(row[0] for row in rows)

    def _pace_wait(self, lane: str) -> float:
        last = self._last_sent.get(lane)
        if last is None or self.pace_seconds <= 0:
            return 0.0
        return self.pace_seconds - (time.monotonic() - last)

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
        self._last_sent[item.lane] = time.monotonic()
        try:
            result = handler.deliver(item)
        except RetryLater as exc:
            delay = exc.after if exc.after is not None else self.backoff.delay(item.attempts)
            self._reschedule(item, delay, exc.reason)
            return False
        except PermanentFailure as exc:
            self._finish_dead(item, str(exc))
            return True
        except Exception as exc:  # a bug in a handler must not wedge the lane forever silently
            log.exception("outbox item %s (%s) failed unexpectedly", item.id, item.kind)
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
        return True

    def _reschedule(self, item: OutboxItem, delay: float, reason: str) -> None:
        log.warning(
            "outbox item %s (%s) not delivered (try %s): %s; next try in %.1fs",
            item.id,
            item.kind,
            item.attempts,
            reason,
            delay,
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

    def _finish_dead(self, item: OutboxItem, reason: str) -> None:
        log.error("outbox item %s (%s) set aside, it cannot be delivered: %s", item.id, item.kind, reason)
        with transaction(self.factory) as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id)
                .values(status="dead", last_error=reason[:2000])
            )
        if self.on_dead is not None:
            self.on_dead(item, reason)


def outbox_stats(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """Counts by status (for /healthz)."""
    with factory() as session:
        rows = session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
    return {status: int(count) for status, count in rows}
