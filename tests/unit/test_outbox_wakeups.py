"""Who is woken when rows are committed: the workers of the lanes written, and those that
hear of every commit (triage), but not the one that committed them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.outbox.queue import (
    FILES_LANE_PREFIX,
    SLACK_THREAD_MESSAGE,
    SMTP_SEND,
    SignalledWorker,
    enqueue,
    notify_workers,
    slack_lane,
)
from bot.outbox.worker import OutboxWorker
from bot.storage.db import make_engine, make_sessionmaker, transaction, upgrade

PREFIXES = ("slack:", FILES_LANE_PREFIX, "smtp", "imap:", "phone:")


@pytest.fixture
def workers() -> Iterator[dict[str, SignalledWorker]]:
    """Outbox workers as the leader runs them (not started: only their signals matter), and
    one that hears of every commit, as the triage worker does."""
    clock = FrozenClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    made: dict[str, SignalledWorker] = {
        prefix: OutboxWorker(sessionmaker(), {}, lane_prefix=prefix, clock=clock) for prefix in PREFIXES
    }
    made["every commit"] = SignalledWorker()
    for worker in made.values():
        worker._signal.clear()
    yield made
    for worker in made.values():
        worker.stop()


def woken(workers: dict[str, SignalledWorker]) -> set[str]:
    names = {name for name, worker in workers.items() if worker._signal.is_set()}
    for worker in workers.values():
        worker._signal.clear()
    return names


def test_ingestions_commit_wakes_the_slack_and_upload_workers_and_triage_only(workers):
    notify_workers(lanes=(slack_lane(""), FILES_LANE_PREFIX))
    assert woken(workers) == {"slack:", FILES_LANE_PREFIX, "every commit"}


def test_a_lane_wakes_the_worker_that_delivers_it(workers):
    notify_workers(lanes=[slack_lane("C0SUPPORT") + ":updates"])
    assert woken(workers) == {"slack:", "every commit"}
    notify_workers(lanes=["phone:+15550100"])
    assert woken(workers) == {"phone:", "every commit"}


def test_a_commit_without_lanes_wakes_every_worker(workers):
    notify_workers()
    assert woken(workers) == set(workers)


def test_a_workers_own_commit_does_not_wake_it(workers):
    notify_workers(besides=workers["every commit"]._signal)
    assert woken(workers) == set(PREFIXES)


class _Mailed:
    """Delivers like SMTP does, and on record queues the reply's post in the ticket's thread."""

    def deliver(self, item: Any) -> dict[str, Any]:
        return {"sent": True}

    def record(self, session: Session, item: Any, result: dict[str, Any]) -> None:
        enqueue(session, kind=SLACK_THREAD_MESSAGE, lane=slack_lane("C0SUPPORT"), now=item.created_at)


def test_rows_a_record_queues_wake_their_worker(workers, tmp_path):
    # Before, the Slack worker found a reply's thread post only at its next poll (0.5 s).
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    upgrade(url)
    factory = make_sessionmaker(make_engine(url))
    clock = FrozenClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    with transaction(factory) as session:
        enqueue(session, kind=SMTP_SEND, lane="smtp", now=clock.now())
    smtp = OutboxWorker(factory, {SMTP_SEND: _Mailed()}, lane_prefix="smtp", clock=clock)
    try:
        woken(workers)
        assert smtp.run_once()[0]
        assert woken(workers) == {"slack:", "every commit"}
    finally:
        smtp.stop()
