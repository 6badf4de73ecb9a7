"""Connection health: how each outside service the bot depends on is doing, and which
replica leads. Kept in the database so every replica can answer `/support status`, and so
an outage is announced once across restarts and replicas (bot/health)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


class ConnectionHealth(Base):
    """One row per service ("mailbox", "outgoing_mail", later "phone")."""

    __tablename__ = "connection_health"
    service: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Set at the first failure after a success; cleared by the next success.
    failing_since: Mapped[datetime | None]
    # What went wrong last, as a kind (login_refused, unreachable, timeout, tls, dropped,
    # other) and a short sentence with secrets masked.
    error_kind: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    # Numbers the outages, so each one's notices have dedupe keys of their own.
    outages: Mapped[int] = mapped_column(Integer, default=0)
    # When the current outage's notice was queued; None while none was.
    notified_at: Mapped[datetime | None]


class LeaderRecord(Base):
    """Which replica leads: written by the leader when elected and then every half minute,
    since the lock itself (an advisory lock, a file lock) does not say who holds it."""

    __tablename__ = "leader_record"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replica: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime]
    seen_at: Mapped[datetime]
