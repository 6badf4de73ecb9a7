"""The thread that triages new tickets on the leader, moments after they are stored.

It wakes whenever any transaction commits outbox rows (ingestion does, for each new
ticket's channel post) and at least every `poll_seconds`, so a missed wake-up costs
seconds, not a ticket. Errors are logged and the loop carries on: one bad ticket
must not leave every later one untriaged.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.outbox.queue import SignalledWorker, notify_workers
from bot.storage.db import reading, transaction
from bot.tickets.triage import Pager, TriageResult, has_untriaged, triage_pending

log = logging.getLogger(__name__)


class TriageWorker(SignalledWorker):
    thread_name = "triage"
    # Small batches hold the write lock briefly, so a mailbox backlog keeps flowing in meanwhile.
    batch = 50

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        clock: Clock,
        *,
        page: Pager,
        poll_seconds: float = 10.0,
    ) -> None:
        self.factory = factory
        self.page = page
        self.settings = settings
        self.calendar = settings.calendar()
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._seeded = False
        super().__init__()

    def run(self) -> None:
        while not self._stop.is_set():
            # Cleared before the pass, so a commit during it wakes the next one.
            self._signal.clear()
            try:
                results = self.run_once()
            except Exception:
                log.exception("triage failed; trying again shortly")
                results = []
            if self._stop.is_set():
                break
            # A full batch means more may be waiting: go again at once.
            if len(results) < self.batch:
                self._signal.wait(self.poll_seconds)

    def run_once(self) -> list[TriageResult]:
        # Every commit wakes this thread (claims, posts delivered), mostly with nothing new to
        # triage: look without the write lock first, so load does not queue behind empty passes.
        # The first pass always runs, to seed the urgency rules.
        if self._seeded:
            with reading(self.factory) as session:
                if not has_untriaged(session, self.clock.now()):
                    return []
        with transaction(self.factory) as session:
            results = triage_pending(
                session, self.settings, self.calendar, self.clock.now(), page=self.page, limit=self.batch
            )
        self._seeded = True
        if results:
            # Our own rows (acks, pages, card refreshes) are committed: hand them to the outbox.
            # Not to ourselves: a pass of our own just then would only find nothing to triage,
            # on the CPU while the page goes out.
            notify_workers(besides=self._signal)
            for result in results:
                log.info(
                    "triaged #%s: %s%s%s",
                    result.number,
                    "urgent" if result.urgent else "not urgent",
                    " after hours" if result.after_hours else "",
                    f", auto-replied with {result.auto_reply}" if result.auto_reply else "",
                )
        return results
