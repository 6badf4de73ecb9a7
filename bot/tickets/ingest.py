"""Turning fetched emails into tickets and follow-ups, exactly once.

Everything happens in the caller's transaction: the messages, their tickets, the
audit events and the outbox rows that will show them in Slack commit together, or
not at all. Re-ingesting the same email is a no-op (per-mailbox dedupe key).

A batch of mails is stored with a fixed number of statements, however many mails
it holds: one lookup each for duplicates, threads, customers and waiting Slack
posts, one insert per table. The outcome is the one of storing the mails one at a
time, in order: a reply to a mail earlier in the same batch joins its ticket, a
mail repeated in the batch is stored once, ticket numbers and outbox rows follow
mail order (Slack shows tickets in the order they came).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bot.privacy.tombstones import erased_mails
from bot.tickets.ingest_plan import BatchPlan
from bot.tickets.ingest_rows import write_batch
from bot.tickets.prepared_mail import IngestResult, PreparedMail, prepare_mail

log = logging.getLogger(__name__)

# What storing an erased mail gives: nothing, as for a mail already stored.
ERASED = IngestResult("duplicate", 0, 0, 0)


def ingest_email(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    channel: str,
    now: datetime,
    uid: int | None = None,
    own_addresses: Iterable[str] = (),
) -> IngestResult:
    """Store one email and queue its Slack post; never raises for bad email content."""
    mail = prepare_mail(raw, mailbox=mailbox, uid=uid, own_addresses=own_addresses)
    return store_mails(session, [mail], mailbox=mailbox, channel=channel, now=now)[0]


def store_mails(
    session: Session, mails: Sequence[PreparedMail], *, mailbox: str, channel: str, now: datetime
) -> list[IngestResult]:
    """Store a batch of prepared mails in order; one result per mail, in the same order."""
    if not mails:
        return []
    # Mail a customer's erasure removed stays removed, whatever re-reads the mailbox.
    erased = erased_mails(session, mails)
    kept = [mail for index, mail in enumerate(mails) if index not in erased]
    results: list[IngestResult] = []
    if kept:
        batch = BatchPlan(session, mailbox=mailbox, channel=channel, now=now)
        batch.look_up(kept)
        outcomes = [batch.plan(mail) for mail in kept]
        write_batch(batch)
        results = [outcome.result() for outcome in outcomes]
    if not erased:
        return results
    stored = iter(results)
    return [ERASED if index in erased else next(stored) for index in range(len(mails))]


def store_mails_one_by_one(
    session: Session, mails: Sequence[PreparedMail], *, mailbox: str, channel: str, now: datetime
) -> list[IngestResult]:
    """Store mails each in its own savepoint, for a batch that failed as a whole.

    A mail that cannot be stored (a value the database refuses, a bug) is kept raw and
    flagged like unreadable mail, so one bad mail never holds up the mailbox. Errors of
    the database itself (connection, locks) are raised: they are no mail's fault, and
    the caller retries the batch later.
    """
    results: list[IngestResult] = []
    for mail in mails:
        try:
            with session.begin_nested():
                results.extend(store_mails(session, [mail], mailbox=mailbox, channel=channel, now=now))
            continue
        except Exception as exc:
            if is_database_outage(exc):
                raise
            log.exception(
                "mailbox %s uid %s could not be stored; keeping it raw and flagged", mailbox, mail.uid
            )
            reason = f"could not be stored: {type(exc).__name__}: {exc}"
        kept = PreparedMail(mail.raw, mail.uid, None, reason[:2000])
        with session.begin_nested():
            results.extend(store_mails(session, [kept], mailbox=mailbox, channel=channel, now=now))
    return results


def is_database_outage(exc: BaseException) -> bool:
    """Is this the database failing (worth retrying), rather than one mail's data?"""
    return isinstance(exc, OperationalError | InterfaceError) or bool(
        getattr(exc, "connection_invalidated", False)
    )
