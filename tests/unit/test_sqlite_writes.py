"""SQLite writers of one process queue in Python: handed the lock in order, answers first,
released however the transaction ends, never held by a reader."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, select, text

from bot.storage.db import make_engine, make_sessionmaker, reading, transaction, upgrade
from bot.storage.models import Counter
from bot.storage.seen_signatures import SignatureBook, newly_recorded
from bot.storage.sqlite_writes import WriteQueue, answer_waits, write_queue_for

WAIT = 10.0
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def wait_for(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(2000):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("condition never held")


def queue_up(queue: WriteQueue, order: list[str], name: str, *, urgent: bool) -> threading.Thread:
    def take() -> None:
        if urgent:
            with answer_waits():
                assert queue.acquire(WAIT)
        else:
            assert queue.acquire(WAIT)
        order.append(name)
        queue.release()

    before = queue.waiting()
    thread = threading.Thread(target=take)
    thread.start()
    wait_for(lambda: queue.waiting() == before + 1)
    return thread


def test_the_lock_goes_to_waiting_answers_first_then_in_order_of_arrival() -> None:
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    order: list[str] = []
    threads = [
        queue_up(queue, order, "outbox", urgent=False),
        queue_up(queue, order, "watcher", urgent=False),
        queue_up(queue, order, "click 1", urgent=True),
        queue_up(queue, order, "click 2", urgent=True),
    ]
    queue.release()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["click 1", "click 2", "outbox", "watcher"]


def test_a_thread_already_writing_is_not_made_to_wait_for_itself() -> None:
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    # Its second connection goes on without the queue; SQLite's own lock decides, as before.
    assert queue.acquire(WAIT) is False
    queue.release()


def test_a_writer_that_waited_too_long_leaves_the_queue() -> None:
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(queue.acquire(0.05)))
    thread.start()
    thread.join(WAIT)
    assert results == [False]
    assert queue.waiting() == 0
    queue.release()
    assert queue.acquire(0)  # free again, nobody left holding it


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/writes.sqlite3"
    upgrade(url)
    return url


def test_engines_on_one_file_share_one_queue_and_readers_never_join_it(database: str) -> None:
    first = make_sessionmaker(make_engine(database))
    second = make_sessionmaker(make_engine(database))
    queue = write_queue_for(database.removeprefix("sqlite:///"))
    seen: list[int] = []

    def write_from_the_second_engine() -> None:
        with transaction(second) as session:
            seen.append(int(session.scalar(select(Counter.value).where(Counter.name == "q")) or 0))

    with transaction(first) as session:
        session.add(Counter(name="q", value=1))
        session.flush()
        writer = threading.Thread(target=write_from_the_second_engine)
        writer.start()
        wait_for(lambda: queue.waiting() == 1)
        with reading(second) as reader:  # a reader runs beside the writer, unqueued
            assert reader.scalar(select(Counter.value).where(Counter.name == "q")) is None
        assert queue.waiting() == 1
    writer.join(WAIT)
    assert seen == [1]  # it began only after the first transaction committed
    assert queue.waiting() == 0


@pytest.mark.parametrize("ending", ["error", "close"])
def test_the_lock_is_given_back_however_the_transaction_ends(database: str, ending: str) -> None:
    factory = make_sessionmaker(make_engine(database))
    queue = write_queue_for(database.removeprefix("sqlite:///"))
    if ending == "error":
        with pytest.raises(RuntimeError), transaction(factory) as session:
            session.execute(text("UPDATE counters SET value = value + 1"))
            raise RuntimeError("the use case refused")
    else:
        session = factory()
        session.execute(text("UPDATE counters SET value = value + 1"))
        session.close()
    # Another thread can write at once: nobody holds the queue.
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(queue.acquire(0)))
    thread.start()
    thread.join(WAIT)
    assert results == [True]
    queue.release()


def test_requests_arriving_together_are_recorded_in_one_write_and_each_passes_once(database: str) -> None:
    engine = make_engine(database)
    factory = make_sessionmaker(engine)
    book = SignatureBook(factory)
    queue = write_queue_for(database.removeprefix("sqlite:///"))
    with transaction(factory) as session:
        newly_recorded(session, ["v0=old"], NOW)
    inserts: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: inserts.append(statement) if "seen_signatures" in statement else None,
    )
    # Another writer holds SQLite: the first request waits to write, the rest gather behind it.
    assert queue.acquire(WAIT)
    signatures = ["v0=first", "v0=a", "v0=b", "v0=a", "v0=old", "v0=c"]
    results: dict[int, bool] = {}

    def request(n: int) -> None:
        results[n] = book.first_time_seen(signatures[n], NOW)

    threads = [threading.Thread(target=request, args=(0,))]
    threads[0].start()
    wait_for(lambda: queue.waiting() == 1)
    for n in range(1, len(signatures)):
        threads.append(threading.Thread(target=request, args=(n,)))
        threads[-1].start()
    wait_for(lambda: len(book._pending) == len(signatures) - 1)
    queue.release()
    for thread in threads:
        thread.join(WAIT)
    assert len(inserts) == 2  # the first request's write, then one for the five that waited
    assert [results[n] for n in range(len(signatures))] == [True, True, True, False, False, True]
