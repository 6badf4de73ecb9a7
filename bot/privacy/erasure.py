"""Erasing a customer: every row about them, and every effect that shows their text elsewhere.

The use cases here are the interface the Slack command calls (handlers/ via bot/slack):
`erasure_preview` says what would go, `start_erasure` erases the rows in one transaction and
queues the outside effects (Slack messages replaced, files deleted, mailbox flagged) in the
outbox, so a crash midway is finished by the outbox after restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session


class NothingToErase(Exception):
    """Nothing about this address is held (no customer row, no ticket, no block)."""

    def __init__(self, address_hash: str) -> None:
        super().__init__("nothing held about this address")
        self.address_hash = address_hash


@dataclass(frozen=True)
class ErasurePreview:
    """What an erasure of one address would remove (shown in the confirmation modal)."""

    tickets: int
    messages: int
    attachments: int
    surveys: int
    auto_replies: int
    blocks: int
    slack_posts: int  # ticket cards and thread messages that will read "erased on request"
    files: int  # Slack files that will be deleted


@dataclass(frozen=True)
class ErasureStarted:
    """An erasure under way: its rows are gone, its effects queued (`effects`)."""

    erasure_id: int
    address_hash: str
    already_running: bool  # True: an erasure of this address was under way; nothing new queued
    effects: int
    preview: ErasurePreview


def erasure_preview(session: Session, address: str) -> ErasurePreview:
    """Counts of what `start_erasure` would remove. Raises NothingToErase."""
    raise NotImplementedError


def start_erasure(
    session: Session, address: str, *, by: str, now: datetime, reason: str = "request"
) -> ErasureStarted:
    """Erase every row about `address` and queue its effects, in the caller's transaction.

    Idempotent per address while an erasure of it is running. Raises NothingToErase.
    """
    raise NotImplementedError
