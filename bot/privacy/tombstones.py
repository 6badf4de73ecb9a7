"""Checked at ingest: mail an erasure removed is never stored again.

A re-scan of the mailbox (after a UIDVALIDITY change, or a mailbox restored from backup)
reads the erased customer's old mail again; its Message-ID (or sender and date, for mail
without one) matches a tombstone and is skipped. New mail from the same address has a
new Message-ID and date: that customer starts afresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.privacy.digests import SALT_NAME, message_id_digest, sender_date_digest
from bot.storage.models import AppSecret
from bot.storage.models_privacy import Tombstone
from bot.tickets.prepared_mail import PreparedMail


def erased_mails(session: Session, mails: Sequence[PreparedMail]) -> set[int]:
    """Indexes into `mails` of those an erasure removed."""
    # Most installs never erase anything: one cheap look-up, and no hashing.
    if session.scalar(select(Tombstone.digest).limit(1)) is None:
        return set()
    salt_row = session.get(AppSecret, SALT_NAME)
    if salt_row is None:
        return set()
    salt = salt_row.value.encode()
    wanted: dict[str, int] = {}
    for index, mail in enumerate(mails):
        parsed = mail.parsed
        if parsed is None:
            continue
        if parsed.message_id:
            wanted[message_id_digest(salt, parsed.message_id)] = index
        if parsed.from_address and parsed.date is not None:
            wanted[sender_date_digest(salt, parsed.from_address, parsed.date)] = index
    if not wanted:
        return set()
    found = session.scalars(select(Tombstone.digest).where(Tombstone.digest.in_(list(wanted))))
    return {wanted[d] for d in found}
