"""Pacing and ordering of a lane: the token bucket, which waiting row goes next, and both
applied by the worker to real outbox rows, on a fake clock (no sleeps). Against the Slack
stand-in: tests/integration/test_channel_pacing.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.outbox.pacing import (
    MAX_THREAD_WAIT,
    NEW_TICKET,
    OTHER,
    PAGE_FIRST,
    LaneQueue,
    Pick,
    TokenBucket,
    next_in_lane,
)
from bot.outbox.queue import (
    SLACK_PAGE,
    SLACK_POST,
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_NOTICE,
    SLACK_TICKET_POST,
    enqueue,
    slack_lane,
)
from bot.outbox.worker import OutboxWorker, RetryLater
from bot.storage.db import transaction
from bot.storage.models import OutboxItem
from tests.support.harness import CHANNEL

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LANE = slack_lane(CHANNEL)


# -- the bucket ---------------------------------------------------------------------------


def test_a_quiet_lane_posts_at_once_then_a_burst_is_paced_to_the_sustained_rate() -> None:
    bucket = TokenBucket(interval=1.0, burst=3, now=100.0)
    sent: list[float] = []
    now = 100.0
    while len(sent) < 8:
        wait = bucket.wait(now)
        if wait > 0:
            now += wait
            continue
        bucket.take(now)
        sent.append(now)
    assert sent[:3] == [100.0, 100.0, 100.0]  # the burst allowance
    assert [b - a for a, b in pairwise(sent[3:])] == pytest.approx([1.0] * 4)
    assert sent[3] == pytest.approx(101.0)


def test_the_bucket_refills_while_quiet_but_never_beyond_its_burst() -> None:
    bucket = TokenBucket(interval=1.0, burst=3, now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(1.0)
    assert bucket.wait(1.0) == 0.0  # quiet for a second: the next post goes at once
    assert bucket.wait(3600.0) == 0.0
    for _ in range(3):
        assert bucket.wait(3600.0) == 0.0
        bucket.take(3600.0)
    assert bucket.wait(3600.0) == pytest.approx(1.0)


def test_a_429_empties_the_bucket_and_the_next_try_is_one_alone() -> None:
    bucket = TokenBucket(interval=1.0, burst=3, now=0.0)
    bucket.take(0.0)
    bucket.overspent(0.0)  # a 429; the worker keeps the Retry-After's pause (5 s here)
    assert bucket.wait(0.0) == pytest.approx(1.0)
    assert bucket.wait(5.0) == 0.0  # refilled while paused...
    bucket.take(5.0)
    # ...but one try when the pause ends, then the sustained rate, not a fresh burst.
    assert bucket.wait(5.0) == pytest.approx(1.0)
    bucket.take(6.0)
    assert bucket.wait(6.0) == pytest.approx(1.0)


def test_no_pace_means_no_wait() -> None:
    bucket = TokenBucket(interval=0.0, burst=3, now=0.0)
    for _ in range(100):
        bucket.take(0.0)
    bucket.overspent(0.0)
    assert bucket.wait(0.0) == 0.0


# -- the choice of the next row ---------------------------------------------------------------


def queue(
    head: int,
    *,
    page: int | None = None,
    post: int | None = None,
    barrier: int | None = None,
    thread_age: float | None = None,
) -> LaneQueue:
    oldest = None if thread_age is None else START - timedelta(seconds=thread_age)
    return LaneQueue(head=head, first_page=page, first_post=post, first_barrier=barrier, oldest_thread=oldest)


def test_a_new_ticket_goes_before_thread_posts_waiting_ahead_of_it() -> None:
    assert next_in_lane(queue(1, post=5, thread_age=3), now=START) == Pick(NEW_TICKET, 5)


def test_a_thread_post_waiting_too_long_goes_before_newer_tickets() -> None:
    age = MAX_THREAD_WAIT.total_seconds()
    assert next_in_lane(queue(1, post=5, thread_age=age), now=START) == Pick(OTHER, 1)
    assert next_in_lane(queue(1, post=5, thread_age=age - 1), now=START) == Pick(NEW_TICKET, 5)


def test_tickets_never_overtake_a_summary_or_each_other() -> None:
    # A burst summary (barrier) queued before the tickets it announces stays first.
    assert next_in_lane(queue(1, post=5, barrier=2, thread_age=1), now=START) == Pick(OTHER, 1)
    # A barrier behind the ticket post does not hold it up.
    assert next_in_lane(queue(1, post=5, barrier=9, thread_age=1), now=START) == Pick(NEW_TICKET, 5)
    # The oldest ticket post is the head: it goes, in arrival order.
    assert next_in_lane(queue(4, post=4), now=START) == Pick(NEW_TICKET, 4)


def test_a_page_goes_before_anything_in_its_lane() -> None:
    assert next_in_lane(queue(1, page=7, barrier=1), now=START) == Pick(PAGE_FIRST, 7)


def test_a_lane_of_other_rows_keeps_its_order() -> None:
    assert next_in_lane(queue(3, barrier=3), now=START) == Pick(OTHER, 3)
    assert next_in_lane(queue(3, thread_age=100), now=START) == Pick(OTHER, 3)


# -- the worker, on real rows and a fake clock ---------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A handler that records what was delivered when, and can refuse with a Retry-After."""

    def __init__(self, clock: FrozenClock, mono: FakeTime) -> None:
        self.clock = clock
        self.mono = mono
        self.delivered: list[tuple[float, str, str]] = []
        self.retry_after: list[float] = []

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        if self.retry_after:
            raise RetryLater("rate limited", after=self.retry_after.pop(0))
        self.delivered.append((self.mono.now, item.lane, str(item.payload.get("name"))))
        return {}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        pass


@pytest.fixture
def fake(
    session_factory: sessionmaker[Session],
) -> Iterator[tuple[OutboxWorker, Recorder, FrozenClock, FakeTime]]:
    clock = FrozenClock(START)
    mono = FakeTime()
    recorder = Recorder(clock, mono)
    kinds = (SLACK_TICKET_POST, SLACK_THREAD_MESSAGE, SLACK_TICKET_NOTICE, SLACK_POST, SLACK_PAGE)
    worker = OutboxWorker(
        session_factory,
        dict.fromkeys(kinds, recorder),
        lane_prefix="slack:",
        clock=clock,
        pace_seconds=1.0,
        monotonic=mono,
    )
    yield worker, recorder, clock, mono
    worker.stop()


def add(factory: sessionmaker[Session], clock: FrozenClock, kind: str, name: str, lane: str = LANE) -> None:
    with transaction(factory) as session:
        enqueue(session, kind=kind, lane=lane, now=clock.now(), payload={"name": name})


def run_for(
    worker: OutboxWorker, clock: FrozenClock, mono: FakeTime, seconds: float, step: float = 0.1
) -> None:
    end = mono.now + seconds
    while mono.now < end:
        while worker.run_once()[0]:
            pass
        mono.now += step
        clock.advance(timedelta(seconds=step))


def names(recorder: Recorder) -> list[str]:
    return [name for _, _, name in recorder.delivered]


def test_new_tickets_overtake_waiting_thread_posts_within_the_channels_budget(
    session_factory: sessionmaker[Session], fake: tuple[OutboxWorker, Recorder, FrozenClock, FakeTime]
) -> None:
    worker, recorder, clock, mono = fake
    # A busy moment: five staff replies wait in the channel's lane, then two new mails arrive.
    for n in range(5):
        add(session_factory, clock, SLACK_THREAD_MESSAGE, f"reply{n}")
    add(session_factory, clock, SLACK_TICKET_POST, "ticket1")
    add(session_factory, clock, SLACK_TICKET_POST, "ticket2")
    run_for(worker, clock, mono, 10)
    assert names(recorder) == ["ticket1", "ticket2", "reply0", "reply1", "reply2", "reply3", "reply4"]
    times = [t for t, _, _ in recorder.delivered]
    assert times[:3] == [1000.0] * 3  # the burst allowance: both tickets at once
    # ...and never faster than the sustained rate after it.
    assert all(b - a >= 1.0 - 1e-9 for a, b in pairwise(times[2:]))


def test_a_thread_post_is_not_starved_by_a_stream_of_new_tickets(
    session_factory: sessionmaker[Session], fake: tuple[OutboxWorker, Recorder, FrozenClock, FakeTime]
) -> None:
    worker, recorder, clock, mono = fake
    for n in range(3):  # the burst allowance, spent
        add(session_factory, clock, SLACK_TICKET_POST, f"ticket{n}")
    run_for(worker, clock, mono, 0.1)
    add(session_factory, clock, SLACK_THREAD_MESSAGE, "reply")
    # More new mail than the channel's one post a second can carry, for a minute.
    for n in range(3, 90):
        add(session_factory, clock, SLACK_TICKET_POST, f"ticket{n}")
        run_for(worker, clock, mono, 0.7)
    assert "reply" in names(recorder)
    waited = next(t for t, _, name in recorder.delivered if name == "reply") - 1000.0
    assert MAX_THREAD_WAIT.total_seconds() <= waited <= MAX_THREAD_WAIT.total_seconds() + 1.5
    tickets = [name for name in names(recorder) if name.startswith("ticket")]
    assert tickets == sorted(tickets, key=lambda name: int(name.removeprefix("ticket")))


def test_a_page_dm_waits_behind_nothing(
    session_factory: sessionmaker[Session], fake: tuple[OutboxWorker, Recorder, FrozenClock, FakeTime]
) -> None:
    worker, recorder, clock, _ = fake
    for n in range(3):
        add(session_factory, clock, SLACK_POST, f"dm{n}", lane=slack_lane("UADA"))
        add(session_factory, clock, SLACK_TICKET_POST, f"ticket{n}")
    add(session_factory, clock, SLACK_PAGE, "page", lane=slack_lane("UADA"))
    worker.run_once()
    assert names(recorder)[0] == "page"


def test_a_retry_after_pauses_the_whole_lane_even_for_a_ticket_that_could_overtake(
    session_factory: sessionmaker[Session], fake: tuple[OutboxWorker, Recorder, FrozenClock, FakeTime]
) -> None:
    worker, recorder, clock, mono = fake
    add(session_factory, clock, SLACK_THREAD_MESSAGE, "reply")
    add(session_factory, clock, SLACK_TICKET_POST, "ticket")
    recorder.retry_after.append(5.0)  # Slack answers the ticket's post with a 429
    run_for(worker, clock, mono, 10)
    assert names(recorder) == ["ticket", "reply"]
    assert recorder.delivered[0][0] == pytest.approx(1005.0, abs=0.11)
    assert recorder.delivered[1][0] - recorder.delivered[0][0] >= 1.0 - 1e-9


def test_a_ticket_post_in_backoff_holds_up_nothing_it_overtook(
    session_factory: sessionmaker[Session], fake: tuple[OutboxWorker, Recorder, FrozenClock, FakeTime]
) -> None:
    worker, recorder, clock, mono = fake
    add(session_factory, clock, SLACK_THREAD_MESSAGE, "reply")
    add(session_factory, clock, SLACK_TICKET_POST, "ticket")
    with transaction(session_factory) as session:  # its last try failed; the next is in 20 s
        session.query(OutboxItem).filter(OutboxItem.kind == SLACK_TICKET_POST).update(
            {"next_attempt_at": clock.now() + timedelta(seconds=20), "attempts": 1}
        )
    run_for(worker, clock, mono, 3)
    assert names(recorder) == ["reply"]
