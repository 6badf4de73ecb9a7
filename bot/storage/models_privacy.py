"""Erasures of customers' data, and the tombstones that keep erased mail from coming back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


class Erasure(Base):
    """One erasure: of an address on request, or of a retention batch. Never the address itself."""

    __tablename__ = "erasures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Salted hash of the erased address (None for a retention batch).
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    by: Mapped[str] = mapped_column(String(32))  # a Slack user, or "retention"
    reason: Mapped[str] = mapped_column(String(20))  # request | retention
    requested_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # running (effects queued in the outbox) → finished (none left pending)
    state: Mapped[str] = mapped_column(String(10), default="running")
    tickets: Mapped[int] = mapped_column(Integer, default=0)


class ErasedTicket(Base):
    """A ticket whose customer data is gone (kept, anonymised, for the stats)."""

    __tablename__ = "erased_tickets"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    erasure_id: Mapped[int] = mapped_column(ForeignKey("erasures.id"), index=True)


class Tombstone(Base):
    """A salted hash of an erased mail's Message-ID (kind "mid") or sender and date ("from"),
    checked at ingest so a re-scan of the mailbox does not bring the mail back."""

    __tablename__ = "erasure_tombstones"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    erasure_id: Mapped[int] = mapped_column(ForeignKey("erasures.id"), index=True)
