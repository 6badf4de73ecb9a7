"""An erasure's effects outside the database, queued in the outbox in the erasure's transaction.

Every Slack message that showed the customer's text is replaced by a short line, every file
uploaded from their mail is deleted, and their mail in the mailbox is flagged (or deleted).
The rows carry no text of the customer: a channel and a ts, a file id, UIDs and salted hashes.
Their dedupe keys name the erasure, so queueing twice (a retried transaction) queues once, and
the erasure is finished when none of its rows is pending any more.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, insert, or_, select, update
from sqlalchemy.orm import Session

from bot.outbox.queue import (
    IMAP_ERASE,
    IMAP_LANE_PREFIX,
    SLACK_DELETE_FILE,
    SLACK_ERASE_MESSAGE,
    files_lane,
    slack_lane,
    update_lane,
)
from bot.storage.models import Attachment, MailboxCheckpoint, Message, OutboxItem, Ticket
from bot.storage.models_privacy import Erasure

# Kinds that erase, and must not be cancelled or scrubbed by the erasure that queued them.
ERASURE_KINDS = (SLACK_ERASE_MESSAGE, SLACK_DELETE_FILE, IMAP_ERASE)


def erasure_key_prefix(erasure_id: int) -> str:
    return f"erase:{erasure_id}:"


class EffectPlan:
    """The Slack messages, files and mailbox UIDs one erasure must reach, gathered before the
    rows that point at them are blanked."""

    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], bool] = {}  # (channel, ts) → is a ticket card
        self.files: dict[str, str] = {}  # file id → channel
        self.mail: dict[str, tuple[set[int], set[str]]] = {}  # mailbox → (uids, digests)

    def message(self, channel: str | None, ts: str | None, *, card: bool = False) -> None:
        if channel and ts:
            self.messages[(channel, ts)] = self.messages.get((channel, ts), False) or card

    def file(self, file_id: str | None, channel: str | None) -> None:
        if file_id:
            self.files.setdefault(file_id, channel or "")

    def mailbox_message(self, mailbox: str, uid: int | None, digests: Iterable[str]) -> None:
        if not mailbox:
            return
        uids, known = self.mail.setdefault(mailbox, (set(), set()))
        if uid is not None:
            uids.add(uid)
        known.update(digests)

    def count(self) -> int:
        return len(self.messages) + len(self.files) + len(self.mail)


def gather_slack(session: Session, plan: EffectPlan, ticket_ids: list[int], message_ids: list[int]) -> None:
    """Where the tickets and messages show in Slack: the cards, thread posts, notices, page
    DMs and uploaded files, from the rows themselves and from their outbox rows' results."""
    if ticket_ids:
        for channel, ts in session.execute(
            select(Ticket.slack_channel, Ticket.slack_ts).where(Ticket.id.in_(ticket_ids))
        ):
            plan.message(channel, ts, card=True)
    channel_of: dict[int, str | None] = {
        ticket_id: channel
        for ticket_id, channel in session.execute(
            select(Ticket.id, Ticket.slack_channel).where(Ticket.id.in_(ticket_ids))
        )
    }
    if message_ids:
        for ticket_id, ts in session.execute(
            select(Message.ticket_id, Message.slack_ts).where(
                Message.id.in_(message_ids), Message.slack_ts.is_not(None)
            )
        ):
            plan.message(channel_of.get(ticket_id), ts)
        for file_id, ticket_id in session.execute(
            select(Attachment.slack_file_id, Message.ticket_id)
            .join(Message, Message.id == Attachment.message_id)
            .where(Attachment.message_id.in_(message_ids), Attachment.slack_file_id.is_not(None))
        ):
            plan.file(file_id, channel_of.get(ticket_id))
    if ticket_ids:
        rows = session.execute(
            select(OutboxItem.result).where(
                OutboxItem.ticket_id.in_(ticket_ids), OutboxItem.kind.not_in(ERASURE_KINDS)
            )
        ).scalars()
        for result in rows:
            take_result(plan, result)


def take_result(plan: EffectPlan, result: dict[str, Any] | None) -> None:
    """What a delivered outbox row put into Slack (a post, a note, a file)."""
    if not isinstance(result, dict):
        return
    channel = result.get("channel")
    if isinstance(channel, str):
        for key in ("ts", "note_ts"):
            if isinstance(result.get(key), str):
                plan.message(channel, result[key])
    if isinstance(result.get("file_id"), str):
        plan.file(result["file_id"], channel if isinstance(channel, str) else None)


def rows_mentioning(session: Session, needles: Iterable[str]) -> list[OutboxItem]:
    """Outbox rows not tied to a ticket whose payload names the customer (a notice to managers)."""
    conditions = [
        cast(OutboxItem.payload, Text).contains(needle, autoescape=True) for needle in needles if needle
    ]
    if not conditions:
        return []
    return list(
        session.scalars(
            select(OutboxItem).where(
                OutboxItem.ticket_id.is_(None), OutboxItem.kind.not_in(ERASURE_KINDS), or_(*conditions)
            )
        )
    )


def silence_outbox(session: Session, ticket_ids: list[int], extra: list[OutboxItem]) -> int:
    """Cancel the pending rows that would still show the customer's text, and blank every
    row's payload and result (a mail's recipients): history the erasure must not leave behind.
    What they put into Slack was gathered into the effects first."""
    cancelled = 0
    if ticket_ids:
        cancelled += int(
            session.execute(
                update(OutboxItem)
                .where(
                    OutboxItem.ticket_id.in_(ticket_ids),
                    OutboxItem.status == "pending",
                    OutboxItem.kind.not_in(ERASURE_KINDS),
                )
                .values(status="cancelled", payload={}, result={}, last_error=None)
            ).rowcount
            or 0
        )
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.ticket_id.in_(ticket_ids), OutboxItem.kind.not_in(ERASURE_KINDS))
            .values(payload={}, result={}, last_error=None)
        )
    for row in extra:
        if row.status == "pending":
            row.status = "cancelled"
            cancelled += 1
        row.payload = {}
        row.result = {}
        row.last_error = None
    return cancelled


def queue_effects(session: Session, erasure: Erasure, plan: EffectPlan, now: datetime) -> int:
    """Queue every effect in bulk (a retention batch queues hundreds: one insert, not hundreds)."""
    prefix = erasure_key_prefix(erasure.id)
    rows: list[dict[str, Any]] = []

    def add(kind: str, lane: str, payload: dict[str, Any], key: str) -> None:
        rows.append(
            {
                "kind": kind,
                "lane": lane[:64],
                "dedupe_key": key[:200],
                "ticket_id": None,
                "payload": {**payload, "erasure_id": erasure.id},
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "result": {},
            }
        )

    for (channel, ts), card in sorted(plan.messages.items()):
        payload = {"channel": channel, "ts": ts, "card": card}
        add(SLACK_ERASE_MESSAGE, update_lane(slack_lane(channel)), payload, f"{prefix}m:{channel}:{ts}")
    for file_id, channel in sorted(plan.files.items()):
        lane = files_lane(slack_lane(channel or "files"))
        add(SLACK_DELETE_FILE, lane, {"file": file_id}, f"{prefix}f:{file_id}")
    for mailbox, (uids, digests) in sorted(plan.mail.items()):
        checkpoint = session.get(MailboxCheckpoint, mailbox)
        payload = {
            "mailbox": mailbox,
            "uidvalidity": checkpoint.uidvalidity if checkpoint else None,
            "uids": sorted(uids),
            "digests": sorted(digests),
        }
        add(IMAP_ERASE, IMAP_LANE_PREFIX + mailbox, payload, f"{prefix}i:{mailbox}")
    if not rows:
        return 0
    # Queued already when the same transaction is retried: the keys name this erasure.
    keys = [row["dedupe_key"] for row in rows]
    queued: set[str] = set()
    for start in range(0, len(keys), 500):
        found = session.scalars(
            select(OutboxItem.dedupe_key).where(OutboxItem.dedupe_key.in_(keys[start : start + 500]))
        )
        queued.update(k for k in found if k is not None)
    fresh = [row for row in rows if row["dedupe_key"] not in queued]
    if fresh:
        session.execute(insert(OutboxItem), fresh)
    return len(fresh)


def finish_erasures(session: Session, now: datetime, *, except_item: int | None = None) -> list[int]:
    """Mark finished the running erasures none of whose effects is pending any more."""
    finished = []
    for erasure in session.scalars(select(Erasure).where(Erasure.state == "running")):
        query = select(OutboxItem.id).where(
            OutboxItem.dedupe_key.startswith(erasure_key_prefix(erasure.id)),
            OutboxItem.status == "pending",
        )
        if except_item is not None:
            query = query.where(OutboxItem.id != except_item)
        if session.scalar(query.limit(1)) is None:
            erasure.state = "finished"
            erasure.finished_at = now
            finished.append(erasure.id)
    return finished
