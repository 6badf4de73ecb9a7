"""Answers first: work that follows a listener's ack() waits while other Slack requests
still wait for theirs.

Slack gives a request 3 seconds for its answer and times it; what a listener does after
ack() (the claim's transaction, refreshing the card, opening a modal) nobody times that
strictly. Both share one interpreter: 50 claims at once cost about 7 ms of CPU each, and
when each claim's own work ran right after its ack, the last of the 50 answers waited
behind the work of the first 49 (p99 350–450 ms on SQLite). Here a listener's work after
its ack() waits, for at most `MAX_DEFER_SECONDS`, until no request is waiting for its
answer and none has arrived for `SETTLE_SECONDS`; on a quiet bot that is 30 ms after the
request came, which nobody sees behind a Slack round trip.

The work waits in the listener's own thread, so the listener pool must have threads to
spare for the acks of the requests still waiting (`LISTENER_THREADS` in bot/app.py): a
pool filled by held listeners would leave a waiting request no thread for its ack, and
the hold would last until `MAX_DEFER_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from slack_bolt.context.ack import Ack
from slack_bolt.response import BoltResponse

# Long enough for a burst's answers (50 claims answer within about 0.2 s), short enough
# that a steady stream of requests cannot hold a listener's work back for long.
MAX_DEFER_SECONDS = 0.5

# A burst's requests reach the gate over 150-400 ms, not at once (the HTTP server's one I/O
# thread reads them between the others' turns on the interpreter), so "none waiting" came
# between arrivals and let held work compete with the rest of the burst. Quiet is none
# waiting and none arrived for this long.
SETTLE_SECONDS = 0.03


class PendingAnswers:
    """How many Slack requests are waiting for their answer in this process."""

    def __init__(self, max_defer: float = MAX_DEFER_SECONDS, settle: float = SETTLE_SECONDS) -> None:
        self.max_defer = max_defer
        self.settle = settle
        self._changed = threading.Condition()
        self._waiting = 0
        self._last_arrival = float("-inf")

    def request(self) -> Waiting:
        """A request from arrival until its answer is set (or it ends without one)."""
        return Waiting(self)

    @property
    def waiting(self) -> int:
        with self._changed:
            return self._waiting

    def _add(self, delta: int) -> None:
        with self._changed:
            self._waiting += delta
            if delta > 0:
                self._last_arrival = time.monotonic()
            if self._waiting == 0:
                self._changed.notify_all()

    def after_answers(self) -> float:
        """Wait until no request waits for its answer and none arrived for `settle` seconds
        (at most `max_defer` in all); the seconds waited."""
        started = time.monotonic()
        deadline = started + self.max_defer
        with self._changed:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if self._waiting:
                    self._changed.wait(deadline - now)
                    continue
                quiet_at = self._last_arrival + self.settle
                if now >= quiet_at:
                    break
                self._changed.wait(min(quiet_at, deadline) - now)
        return time.monotonic() - started


class Waiting:
    """One request's wait for its answer; ended once, by its ack or by leaving."""

    def __init__(self, pending: PendingAnswers) -> None:
        self._pending = pending
        self._lock = threading.Lock()
        self._open = False

    def __enter__(self) -> Waiting:
        with self._lock:
            self._open = True
        self._pending._add(1)
        return self

    def answered(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._pending._add(-1)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.answered()


class FirstAck(Ack):
    """Bolt's ack() that, the first time it is called, runs `on_first` (metrics add their
    timer there), ends the request's wait, then holds the caller, the listener, until no
    other request waits for its answer."""

    def __init__(self, waiting: Waiting | None = None, pending: PendingAnswers | None = None) -> None:
        super().__init__()
        self.on_first: list[Callable[[], None]] = []
        self._waiting = waiting
        self._pending = pending
        self._called = False
        # Bolt acknowledges events itself, in the thread that answers the request: holding
        # that thread would hold back the answer.
        self._answering_thread = threading.get_ident()

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        first, self._called = not self._called, True
        response = super().__call__(*args, **kwargs)
        if first:
            for hook in self.on_first:
                hook()
            if self._waiting is not None:
                self._waiting.answered()
            if self._pending is not None and threading.get_ident() != self._answering_thread:
                self._pending.after_answers()
        return response
