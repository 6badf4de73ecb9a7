"""Waiting in the main thread for SIGTERM or SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal
import time


class StopSignal:
    """Set by SIGTERM or SIGINT; `wait()` returns within `poll` seconds of either.

    The handler only sets a flag. Setting a threading.Event from a handler can deadlock
    (the handler runs in the main thread, which may hold the Event's own lock at that
    moment), and a main thread blocked in a lock without a timeout may never run the
    handler when the kernel hands the signal to another thread: a bot once ignored a
    SIGTERM that way until it was killed. Sleeping in short steps avoids both.
    """

    def __init__(self, poll: float = 0.25) -> None:
        self.poll = poll
        self.received: int | None = None
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: object) -> None:
        self.received = number

    def wait(self) -> int:
        while self.received is None:
            time.sleep(self.poll)
        return self.received
