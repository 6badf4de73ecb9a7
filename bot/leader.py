"""Leader election: exactly one replica runs the mailbox watcher, the outbox workers
and the scheduler.

On PostgreSQL the leader holds a session-level advisory lock on a dedicated
connection; if that replica dies its connection closes, PostgreSQL releases the
lock, and a follower (trying every second) takes over within seconds. A restart of
PostgreSQL drops every connection, the lock's too: the leader, looking at its lock
every quarter second, stops its duties, and whoever wins the lock next waits a
second before acting, so the two never run side by side. A leader that is frozen
(SIGSTOP, a paused VM) keeps its connection and so its lock: nobody takes over
until it is killed, which a liveness probe on /healthz does. On SQLite
(one machine) an exclusive `flock` on a file beside the database does the same
job, so two processes on one file never both ingest.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# An arbitrary 64-bit key naming "the supportbot leader" among other advisory locks.
ADVISORY_LOCK_KEY = 0x5375_7070_6F72_7442  # "SupportB"


class _PostgresLock:
    def __init__(self, engine: Engine) -> None:
        # A connection of its own, outside the pool: returning a pooled connection keeps
        # its session (and so the lock) alive, and a deposed leader must really let go.
        self.engine = create_engine(engine.url, poolclass=NullPool)
        self.connection: Any = None

    def try_acquire(self) -> bool:
        if self.connection is None:
            self.connection = self.engine.connect()
        got = self.connection.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
        ).scalar()
        self.connection.commit()
        return bool(got)

    def still_held(self) -> bool:
        try:
            held = self.connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objid = :lo AND classid = :hi"
                ),
                {"lo": ADVISORY_LOCK_KEY & 0xFFFFFFFF, "hi": ADVISORY_LOCK_KEY >> 32},
            ).scalar()
            self.connection.commit()
            return bool(held)
        except Exception:
            log.warning("lost the database connection that holds leadership")
            self.release()
            return False

    def release(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.execute(text("SELECT pg_advisory_unlock_all()"))
                self.connection.commit()
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None
        self.engine.dispose()


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def still_held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _lock_for(engine: Engine) -> _PostgresLock | _FileLock:
    url = make_url(str(engine.url))
    if url.get_backend_name() == "postgresql":
        return _PostgresLock(engine)
    database = url.database or ""
    if database in ("", ":memory:"):
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"supportbot-memory-{os.getpid()}.leader"
    else:
        path = Path(database + ".leader")
    return _FileLock(path)


class Leadership:
    """Runs `on_elected` when this process becomes leader and `on_deposed` when it stops being one."""

    def __init__(
        self,
        engine: Engine,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        *,
        interval: float = 1.0,
        check_interval: float = 0.25,
        handover_delay: float = 1.0,
    ) -> None:
        self.lock = _lock_for(engine)
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.interval = interval
        # The leader looks at its lock more often than followers try for it, and a
        # follower that wins the lock from someone waits `handover_delay` before acting:
        # a leader whose lock went with a dropped connection (PostgreSQL restarted) is
        # still running its duties until its next look, and two leaders would post twice.
        self.check_interval = check_interval
        self.handover_delay = handover_delay
        self.is_leader = False
        # Whether someone else may have led since we last looked: the lock was taken, or
        # the database could not be asked. Only then is the handover delay needed.
        self._contended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.is_leader:
            self._depose()
        self.lock.release()

    def _run(self) -> None:
        failing: str | None = None
        while not self._stop.is_set():
            try:
                if self.is_leader:
                    if not self.lock.still_held():
                        self._contended = True
                        self._depose()
                elif not self.lock.try_acquire():
                    self._contended = True
                elif self._contended and not self._wait_out_previous_leader():
                    self.lock.release()
                else:
                    log.info("this replica is now the leader (mailbox, outbox, scheduler)")
                    self._contended = False
                    self.is_leader = True
                    self.on_elected()
                if failing is not None:
                    log.info("leader election works again")
                    failing = None
            except Exception as exc:
                # While the database is down this fails every second: say so once per
                # cause, with the traceback, not once a second.
                cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if cause != failing:
                    log.exception("leader election check failed; trying again every %gs", self.interval)
                    failing = cause
                self._contended = True
                if self.is_leader:
                    self._depose()
                self.lock.release()
            self._stop.wait(self.check_interval if self.is_leader else self.interval)

    def _wait_out_previous_leader(self) -> bool:
        """Hold the lock without acting for longer than a previous leader takes to notice
        it lost it; then make sure it is still ours."""
        if self._stop.wait(self.handover_delay):
            return False
        return self.lock.still_held()

    def _depose(self) -> None:
        log.warning("this replica is no longer the leader")
        self.is_leader = False
        try:
            self.on_deposed()
        except Exception:
            log.exception("stopping leader duties failed")
