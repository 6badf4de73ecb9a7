"""Where reading a mailbox got to: (UIDVALIDITY, last UID), stored with the tickets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.storage.models import MailboxCheckpoint


def load_checkpoint(session: Session, mailbox: str) -> MailboxCheckpoint | None:
    return session.get(MailboxCheckpoint, mailbox)


def save_checkpoint(session: Session, mailbox: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
    checkpoint = session.get(MailboxCheckpoint, mailbox)
    if checkpoint is None:
        session.add(
            MailboxCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now)
        )
        return
    checkpoint.uidvalidity = uidvalidity
    # Never move backwards: a slow batch must not undo a later one's progress.
    if last_uid >= checkpoint.last_uid or last_uid == 0:
        checkpoint.last_uid = last_uid
    checkpoint.updated_at = now
