"""One SQLite writer at a time in this process, queued in Python, answers Slack waits for first.

SQLite lets one transaction write at a time. Left to itself, a thread that finds the lock
taken sleeps in SQLite's busy handler (1, 2, 5, 10 … then 100 ms at a time) and tries again:
the lock often sits free while every waiter sleeps, and whoever wakes first wins, not whoever
came first. With 50 claims at once, a request's signature record (written before Slack gets
its answer) waited up to 0.9 s behind claims already answered and outbox bookkeeping.

Here each write transaction of the process queues for a Python lock before `BEGIN IMMEDIATE`
and is handed the lock the moment the previous writer commits: in order of arrival, those
inside `answer_waits()` (work a person's click is waiting on) ahead of the rest. SQLite's own
lock and busy timeout stay underneath for other processes (`supportbot` commands, backups).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ANSWER_WAITS: ContextVar[bool] = ContextVar("sqlite_answer_waits", default=False)


@contextmanager
def answer_waits() -> Iterator[None]:
    """Writes in this block go ahead of background ones: someone is waiting for the answer."""
    token = _ANSWER_WAITS.set(True)
    try:
        yield
    finally:
        _ANSWER_WAITS.reset(token)


class WriteQueue:
    """A lock handed from one writer directly to the next waiting one (no thundering herd,
    no free lock while waiters sleep), waiting answers first, then background work, each in
    order of arrival."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._urgent: deque[tuple[threading.Lock, int]] = deque()
        self._background: deque[tuple[threading.Lock, int]] = deque()

    def acquire(self, timeout: float) -> bool:
        """True once this thread holds the lock; False when it should go on without it (it
        already writes on another connection, or waited `timeout`): SQLite then decides,
        as it did before this queue existed."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner is None:
                self._owner = me
                return True
            if self._owner == me:
                return False
            entry = (threading.Lock(), me)
            entry[0].acquire()
            queue = self._urgent if _ANSWER_WAITS.get() else self._background
            queue.append(entry)
        if entry[0].acquire(timeout=timeout):
            return True
        with self._mutex:
            if entry in queue:
                queue.remove(entry)
                return False
        return True  # handed over between the timeout and the withdrawal

    def waiting(self) -> int:
        """How many writers are queued (not counting the one writing)."""
        with self._mutex:
            return len(self._urgent) + len(self._background)

    def release(self) -> None:
        with self._mutex:
            for queue in (self._urgent, self._background):
                if queue:
                    waiter, ident = queue.popleft()
                    self._owner = ident
                    waiter.release()
                    return
            self._owner = None


class QueuedConnection(sqlite3.Connection):
    """A connection that gives its place in the write queue back as its transaction ends,
    however it ends (commit, rollback, close)."""

    write_queue: WriteQueue | None = None
    _holds = False

    def start_write(self, timeout: float) -> None:
        if self.write_queue is not None and not self._holds:
            self._holds = self.write_queue.acquire(timeout)

    def end_write(self) -> None:
        # A failed COMMIT leaves the transaction open: the lock stays until its rollback.
        if self._holds and not self.in_transaction:
            self._holds = False
            assert self.write_queue is not None
            self.write_queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_write()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_write()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holds and self.write_queue is not None:
                self._holds = False
                self.write_queue.release()


_queues: dict[str, WriteQueue] = {}
_queues_lock = threading.Lock()


def write_queue_for(database: str) -> WriteQueue:
    """The one queue of a database file in this process, however many engines open it."""
    with _queues_lock:
        return _queues.setdefault(database, WriteQueue())
