"""Slack lookups kept in memory and refreshed in the background, so that no listener waits for
Slack before it acknowledges.

Slack shows `operation_timeout` when an app takes more than three seconds to acknowledge, and a
modal opened with a trigger_id older than three seconds fails with `expired_trigger_id`. A
lookup that costs one call per person (the roster: `users.info` for each of 15 people) takes
seconds when each call takes a few hundred milliseconds. So a listener reads the last known
value, and a stale one only starts a refresh in a thread of its own. The very first read of a
process has nothing to fall back on: it waits, but never longer than its caller allows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

T = TypeVar("T")


class KeptFresh(Generic[T]):
    def __init__(self, fetch: Callable[[], T], every: float, what: str) -> None:
        self._fetch = fetch
        self.every = every
        self.what = what
        self._value: T | None = None
        self._fetched_at: float | None = None
        self._running = False
        self._attempt_done = threading.Condition()

    def get(self, first_wait: float) -> T | None:
        """The last value fetched (None before the first fetch ends); a stale one starts a
        refresh in the background. Before any value exists, waits up to `first_wait` seconds."""
        with self._attempt_done:
            stale = self._fetched_at is None or time.monotonic() - self._fetched_at >= self.every
            if stale and not self._running:
                self._running = True
                threading.Thread(target=self._refresh, name=f"refresh-{self.what}", daemon=True).start()
            if self._fetched_at is None:
                self._attempt_done.wait_for(
                    lambda: self._fetched_at is not None or not self._running, timeout=first_wait
                )
            return self._value

    def recheck(self, older_than: float, wait: float) -> T | None:
        """A fresh value for a caller the last one failed (someone who just joined is not in a
        list read a minute ago): refetch if the value is older than `older_than` seconds, and
        wait for it up to `wait` seconds. `older_than` keeps a flood of misses to one fetch."""
        with self._attempt_done:
            fetched_at = self._fetched_at
            if fetched_at is not None and time.monotonic() - fetched_at < older_than:
                return self._value
            if not self._running:
                self._running = True
                threading.Thread(target=self._refresh, name=f"refresh-{self.what}", daemon=True).start()
            self._attempt_done.wait_for(
                lambda: self._fetched_at != fetched_at or not self._running, timeout=wait
            )
            return self._value

    def forget(self) -> None:
        """The value is known to be out of date: refresh it now, in the background."""
        with self._attempt_done:
            if self._fetched_at is not None:
                self._fetched_at = time.monotonic() - self.every
        self.get(first_wait=0)

    def _refresh(self) -> None:
        try:
            value = self._fetch()
        except SlackApiError as exc:
            # The last value stays: better than refusing everyone while Slack hiccups.
            log.warning("cannot read %s from Slack (%s); keeping the last one", self.what, exc)
            value = None
        except Exception:
            log.exception("refreshing %s failed; keeping the last one", self.what)
            value = None
        with self._attempt_done:
            if value is not None:
                self._value = value
                self._fetched_at = time.monotonic()
            self._running = False
            self._attempt_done.notify_all()
