"""Leader election: exactly one replica runs the mailbox watcher, the outbox workers
and the scheduler.

On PostgreSQL the leader holds a session-level advisory lock on a dedicated
connection; if that replica dies its connection closes, PostgreSQL releases the
lock, and a follower (trying every second) takes over within seconds. On SQLite
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
    ) -> None:
        self.lock = _lock_for(engine)
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.interval = interval
        self.is_leader = False
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
        while not self._stop.is_set():
            try:
                if self.is_leader:
                    if not self.lock.still_held():
                        self._depose()
                elif self.lock.try_acquire():
                    log.info("this replica is now the leader (mailbox, outbox, scheduler)")
                    self.is_leader = True
                    self.on_elected()
            except Exception:
                log.exception("leader election check failed")
                if self.is_leader:
                    self._depose()
                self.lock.release()
            self._stop.wait(self.interval)

    def _depose(self) -> None:
        log.warning("this replica is no longer the leader")
        self.is_leader = False
        try:
            self.on_deposed()
        except Exception:
            log.exception("stopping leader duties failed")
