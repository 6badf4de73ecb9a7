"""Slack request signatures already accepted: the memory that makes a replayed request fail.

Slack signs `v0:{timestamp}:{body}`, and a request is fresh for five minutes either side
of its timestamp, so one signature identifies one request for as long as it could be
accepted. Remembering signatures for twice that window is enough.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.db import transaction
from bot.storage.models import SeenSignature
from bot.storage.sqlite_writes import answer_waits

# Slack's freshness window is ±5 minutes around the request's timestamp: a signature
# first seen at the window's early edge stays acceptable for up to ten minutes.
SIGNATURE_WINDOW = timedelta(minutes=5)
RETENTION = 2 * SIGNATURE_WINDOW


def first_time_seen(session: Session, signature: str, now: datetime) -> bool:
    """Record `signature`; False when it was already recorded (the request is a replay)."""
    return signature in newly_recorded(session, [signature], now)


def newly_recorded(session: Session, signatures: list[str], now: datetime) -> set[str]:
    """Record `signatures` (distinct); the set of those not recorded before.

    One atomic insert that does nothing on conflict: of two replicas given the same
    request at the same moment, the primary key lets exactly one through.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(SeenSignature)
        .values([{"signature": signature, "seen_at": now} for signature in signatures])
        .on_conflict_do_nothing(index_elements=[SeenSignature.signature])
        # A row comes back only when it was inserted (rowcount is not reliable through the ORM).
        .returning(SeenSignature.signature)
    )
    return set(session.scalars(statement))


class _Waiter:
    def __init__(self, signature: str) -> None:
        self.signature = signature
        self.done = threading.Event()
        self.fresh = False
        self.error: BaseException | None = None
        self.leads = False


class SignatureBook:
    """Records the signatures of requests that arrive together in one transaction.

    Every Slack request waits for its signature to be committed before it is answered. One
    transaction each made 50 simultaneous clicks queue 50 times for SQLite's single writer
    (2 ms of CPU each, most of it SQLAlchemy's); here the first request writes for all that
    are waiting, and those arriving meanwhile are written together by the next one. Each
    request is answered as soon as the batch holding it commits.
    """

    def __init__(self, factory: sessionmaker[Session], wait_seconds: float = 60.0) -> None:
        self.factory = factory
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._pending: list[_Waiter] = []
        self._writing = False

    def first_time_seen(self, signature: str, now: datetime) -> bool:
        waiter = _Waiter(signature)
        with self._lock:
            self._pending.append(waiter)
            leads = self._writing is False
            self._writing = True
        if not leads:
            if not waiter.done.wait(self.wait_seconds):
                with self._lock:
                    if waiter in self._pending and not waiter.leads:
                        self._pending.remove(waiter)
                        raise TimeoutError("the request's signature was not recorded in time")
                # Already being written, or chosen to write the next batch: see it through.
                waiter.done.wait()
            if not waiter.leads:
                return self._result(waiter)
        self._write_batch(now)
        return self._result(waiter)

    def _write_batch(self, now: datetime) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            # Someone is waiting for each answer: this write goes ahead of background ones.
            with answer_waits(), transaction(self.factory) as session:
                fresh = newly_recorded(session, sorted({w.signature for w in batch}), now)
        except BaseException as exc:
            for waiter in batch:
                waiter.error = exc
        else:
            for waiter in batch:
                # The same signature twice in one batch is a replay too: only the first passes.
                waiter.fresh = waiter.signature in fresh
                fresh.discard(waiter.signature)
        with self._lock:
            # Those who came meanwhile are written by the first of them, in its own thread.
            following = self._pending[0] if self._pending else None
            self._writing = following is not None
            if following is not None:
                following.leads = True
        for waiter in batch:
            waiter.done.set()
        if following is not None:
            following.done.set()

    @staticmethod
    def _result(waiter: _Waiter) -> bool:
        if waiter.error is not None:
            raise RuntimeError("the request's signature could not be recorded") from waiter.error
        return waiter.fresh


def purge_seen_signatures(session: Session, now: datetime) -> int:
    """Forget signatures too old to be accepted again anyway."""
    removed = session.execute(delete(SeenSignature).where(SeenSignature.seen_at < now - RETENTION)).rowcount
    return int(removed or 0)
