"""Erasing a customer: every row about them, and every effect that shows their text elsewhere.

The use cases here are the interface the Slack command calls: `erasure_preview` says what
would go, `start_erasure` erases the rows in the caller's transaction and queues the outside
effects (Slack messages replaced, files deleted, mailbox flagged) in the outbox, so a crash
midway is finished by the outbox after restart. Retention (`erase_expired`) erases old
resolved tickets the same way, a bounded batch at a time.

The audit log keeps that an erasure happened, by whom and when, with a salted hash of the
address, never the address; tombstones (salted hashes of the erased mails) keep a re-scan
of the mailbox from bringing them back, while new mail from the same address is a new customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from bot.privacy.digests import (
    SALT_NAME,
    address_digest,
    erasure_salt,
    message_id_digest,
    normalise_address,
    sender_date_digest,
)
from bot.privacy.erasure_effects import (
    ERASURE_KINDS,
    EffectPlan,
    finish_erasures,
    gather_slack,
    queue_effects,
    rows_mentioning,
    silence_outbox,
    take_result,
)
from bot.privacy.erasure_rows import (
    anonymise_tickets,
    blank_messages,
    delete_tickets,
    drop_customer,
    drop_orphan_customers,
    erase_address_rows,
    events_naming,
)
from bot.privacy.settings import PrivacySettings
from bot.storage.models import (
    AppSecret,
    Attachment,
    AutoReply,
    BlockedSender,
    Customer,
    Message,
    OutboxItem,
    Survey,
    SurveyOptOut,
    Ticket,
)
from bot.storage.models_privacy import ErasedTicket, Erasure, Tombstone
from bot.tickets.events import record_event
from bot.tickets.status import TicketStatus

RETENTION_ACTOR = "retention"


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

    @property
    def empty(self) -> bool:
        return not any(
            (self.tickets, self.messages, self.attachments, self.surveys, self.auto_replies, self.blocks)
        )


@dataclass(frozen=True)
class ErasureStarted:
    """An erasure under way: its rows are gone, its effects queued (`effects`)."""

    erasure_id: int
    address_hash: str
    already_running: bool  # True: an erasure of this address was under way; nothing new queued
    effects: int
    preview: ErasurePreview


@dataclass(frozen=True)
class _Targets:
    customer_id: int | None
    ticket_ids: list[int]
    message_ids: list[int]  # of those tickets, and the address's mail in other tickets


def _targets(session: Session, address: str) -> _Targets:
    customer_id = session.scalar(select(Customer.id).where(func.lower(Customer.email) == address))
    ticket_ids: list[int] = []
    if customer_id is not None:
        ticket_ids = list(
            session.scalars(
                select(Ticket.id)
                .where(Ticket.customer_id == customer_id, Ticket.id.not_in(select(ErasedTicket.ticket_id)))
                .order_by(Ticket.id)
            )
        )
    message_ids = list(
        session.scalars(
            select(Message.id).where(
                or_(Message.ticket_id.in_(ticket_ids), func.lower(Message.from_address) == address)
            )
        )
    )
    return _Targets(customer_id, ticket_ids, message_ids)


def erasure_preview(session: Session, address: str) -> ErasurePreview:
    """Counts of what `start_erasure` would remove. Raises NothingToErase."""
    address = normalise_address(address)
    targets = _targets(session, address)
    preview = _count(session, address, targets)
    if preview.empty and targets.customer_id is None and not _opted_out(session, address):
        # A preview writes nothing: with no salt made yet, there is no hash to give.
        salt = session.get(AppSecret, SALT_NAME)
        raise NothingToErase(address_digest(salt.value.encode(), address) if salt else "")
    return preview


def _opted_out(session: Session, address: str) -> bool:
    return session.get(SurveyOptOut, address) is not None


def _count(session: Session, address: str, targets: _Targets) -> ErasurePreview:
    tickets, messages = targets.ticket_ids, targets.message_ids

    def count(query: object) -> int:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]

    plan = EffectPlan()
    gather_slack(session, plan, tickets, messages)
    return ErasurePreview(
        tickets=len(tickets),
        messages=len(messages),
        attachments=count(
            select(func.count()).select_from(Attachment).where(Attachment.message_id.in_(messages))
        ),
        surveys=count(select(func.count()).select_from(Survey).where(Survey.ticket_id.in_(tickets))),
        auto_replies=count(
            select(func.count())
            .select_from(AutoReply)
            .where(or_(AutoReply.ticket_id.in_(tickets), func.lower(AutoReply.address) == address))
        ),
        blocks=count(
            select(func.count())
            .select_from(BlockedSender)
            .where(BlockedSender.kind == "address", func.lower(BlockedSender.value) == address)
        ),
        slack_posts=len(plan.messages),
        files=len(plan.files),
    )


def start_erasure(
    session: Session,
    address: str,
    *,
    by: str,
    now: datetime,
    reason: str = "request",
    keep_stats: bool = True,
) -> ErasureStarted:
    """Erase every row about `address` and queue its effects, in the caller's transaction.

    Idempotent per address while an erasure of it is running. Raises NothingToErase.
    """
    address = normalise_address(address)
    salt = erasure_salt(session)
    address_hash = address_digest(salt, address)
    running = session.scalar(
        select(Erasure).where(Erasure.address_hash == address_hash, Erasure.state == "running").limit(1)
    )
    if running is not None:
        zero = ErasurePreview(0, 0, 0, 0, 0, 0, 0, 0)
        return ErasureStarted(running.id, address_hash, True, 0, zero)
    preview = erasure_preview(session, address)
    targets = _targets(session, address)
    # Whole-table scans first: on SQLite the write lock is taken at the first write.
    events = events_naming(session, address)
    mentions = rows_mentioning(session, [address])
    erasure = Erasure(
        address_hash=address_hash,
        by=by[:32],
        reason=reason[:20],
        requested_at=now,
        state="running",
        tickets=len(targets.ticket_ids),
    )
    session.add(erasure)
    session.flush()
    effects = _erase(
        session, erasure, targets.ticket_ids, targets.message_ids, salt, now, keep_stats, mentions=mentions
    )
    erase_address_rows(session, address, events, targets.ticket_ids)
    drop_customer(session, address)
    record_event(
        session,
        ticket_id=None,
        actor=by,
        action="customer_erased",
        at=now,
        erasure_id=erasure.id,
        address_hash=address_hash,
        tickets=len(targets.ticket_ids),
        reason=reason,
    )
    if effects == 0:
        finish_erasures(session, now)
    return ErasureStarted(erasure.id, address_hash, False, effects, preview)


def _erase(
    session: Session,
    erasure: Erasure,
    ticket_ids: list[int],
    message_ids: list[int],
    salt: bytes,
    now: datetime,
    keep_stats: bool,
    *,
    mentions: Sequence[OutboxItem] = (),
) -> int:
    """Erase the tickets and messages; returns how many effects were queued."""
    plan = EffectPlan()
    gather_slack(session, plan, ticket_ids, message_ids)
    _bury(session, plan, erasure.id, message_ids, salt)
    for row in mentions:
        take_result(plan, row.result)
    silence_outbox(session, ticket_ids, list(mentions))
    queued = queue_effects(session, erasure, plan, now)
    if ticket_ids:
        session.execute(AutoReply.__table__.delete().where(AutoReply.ticket_id.in_(ticket_ids)))
    if keep_stats:
        blank_messages(session, message_ids)
        anonymise_tickets(session, ticket_ids, erasure.id)
    else:
        in_tickets = set(session.scalars(select(Message.id).where(Message.ticket_id.in_(ticket_ids))))
        blank_messages(session, [m for m in message_ids if m not in in_tickets])
        delete_tickets(session, ticket_ids)
    session.expire_all()
    return queued


def _bury(session: Session, plan: EffectPlan, erasure_id: int, message_ids: list[int], salt: bytes) -> None:
    """Tombstones for the erased mail, and the mailbox effect that flags it there."""
    digests: dict[str, str] = {}
    for mailbox, uid, message_id, sender, sent_at in session.execute(
        select(
            Message.mailbox, Message.imap_uid, Message.message_id, Message.from_address, Message.sent_at
        ).where(Message.id.in_(message_ids), Message.direction == "in")
    ):
        mine: list[str] = []
        if message_id:
            mine.append(message_id_digest(salt, message_id))
            digests[mine[-1]] = "mid"
        if sender and sent_at is not None:
            mine.append(sender_date_digest(salt, sender, sent_at))
            digests[mine[-1]] = "from"
        plan.mailbox_message(mailbox, uid, mine)
    if not digests:
        return
    known: set[str] = set()
    keys = list(digests)
    for start in range(0, len(keys), 500):
        known.update(
            session.scalars(select(Tombstone.digest).where(Tombstone.digest.in_(keys[start : start + 500])))
        )
    fresh = [{"digest": d, "kind": k, "erasure_id": erasure_id} for d, k in digests.items() if d not in known]
    if fresh:
        session.execute(Tombstone.__table__.insert(), fresh)


def erase_expired(
    session: Session, settings: PrivacySettings, now: datetime, *, limit: int | None = None
) -> int:
    """One retention batch of at most `limit` (RETENTION_BATCH) resolved tickets untouched for
    RETENTION_DAYS, erased like a request. Returns how many were erased (0: none left)."""
    if settings.retention_days is None:
        return 0
    cutoff = now - timedelta(days=settings.retention_days)
    rows = session.execute(
        select(Ticket.id, Ticket.customer_id)
        .where(
            Ticket.status == TicketStatus.RESOLVED,
            Ticket.updated_at < cutoff,
            Ticket.id.not_in(select(ErasedTicket.ticket_id)),
        )
        .order_by(Ticket.id)
        .limit(limit or settings.retention_batch)
    ).all()
    if not rows:
        return 0
    ticket_ids = [ticket_id for ticket_id, _ in rows]
    customers = {customer_id for _, customer_id in rows if customer_id is not None}
    salt = erasure_salt(session)
    erasure = Erasure(
        address_hash=None,
        by=RETENTION_ACTOR,
        reason="retention",
        requested_at=now,
        state="running",
        tickets=len(ticket_ids),
    )
    session.add(erasure)
    session.flush()
    message_ids = list(session.scalars(select(Message.id).where(Message.ticket_id.in_(ticket_ids))))
    effects = _erase(session, erasure, ticket_ids, message_ids, salt, now, settings.keep_stats)
    drop_orphan_customers(session, customers)
    record_event(
        session,
        ticket_id=None,
        actor=RETENTION_ACTOR,
        action="retention_erased",
        at=now,
        erasure_id=erasure.id,
        tickets=len(ticket_ids),
        days=settings.retention_days,
    )
    if effects == 0:
        finish_erasures(session, now)
    return len(ticket_ids)


def sweep_late_effects(session: Session, now: datetime) -> int:
    """Erase what reached Slack after its ticket was erased.

    A post already being delivered when the erasure committed (rendered before it, its try
    counted) lands afterwards, and the worker records it as done: its card or message shows
    the customer, and its row keeps the result. Found here by the erased ticket it belongs
    to, and erased like the rest under that ticket's erasure. Returns the effects queued.
    """
    late_rows = session.execute(
        select(OutboxItem, ErasedTicket.erasure_id)
        .join(ErasedTicket, ErasedTicket.ticket_id == OutboxItem.ticket_id)
        .where(
            OutboxItem.status == "done",
            OutboxItem.kind.not_in(ERASURE_KINDS),
            or_(cast(OutboxItem.result, Text) != "{}", cast(OutboxItem.payload, Text) != "{}"),
        )
    ).all()
    late_cards = session.execute(
        select(Ticket, ErasedTicket.erasure_id)
        .join(ErasedTicket, ErasedTicket.ticket_id == Ticket.id)
        .where(Ticket.slack_ts.is_not(None))
    ).all()
    plans: dict[int, EffectPlan] = {}
    for row, erasure_id in late_rows:
        take_result(plans.setdefault(erasure_id, EffectPlan()), row.result)
        row.payload, row.result, row.last_error = {}, {}, None
    for ticket, erasure_id in late_cards:
        plans.setdefault(erasure_id, EffectPlan()).message(ticket.slack_channel, ticket.slack_ts, card=True)
        ticket.slack_channel, ticket.slack_ts = None, None
    queued = 0
    for erasure_id, plan in plans.items():
        erasure = session.get(Erasure, erasure_id)
        if erasure is None:
            continue
        added = queue_effects(session, erasure, plan, now)
        if added and erasure.state == "finished":
            erasure.state, erasure.finished_at = "running", None
        queued += added
    return queued
