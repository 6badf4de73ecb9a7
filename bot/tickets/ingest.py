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

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bot.mail.parse import MalformedEmailError, ParsedEmail, parse_email, ticket_token
from bot.outbox.queue import (
    MAX_UPLOADS_PER_MESSAGE,
    SLACK_ATTACHMENT_UPLOAD,
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_POST,
    SLACK_TICKET_REFRESH,
    files_lane,
    slack_lane,
    update_lane,
    upload_key,
    upload_payload,
)
from bot.storage.counters import TICKET_NUMBER
from bot.storage.models import Attachment, Counter, Customer, Event, Message, OutboxItem, Ticket
from bot.tickets.events import SYSTEM, customer_actor
from bot.tickets.spam import SPAM, blocked_among

log = logging.getLogger(__name__)

Outcome = Literal["new_ticket", "follow_up", "duplicate"]

UNREADABLE_SUBJECT = "(unreadable email)"
# Bound on the values in one IN (...): SQLite before 3.32 allows 999 parameters.
_IN_CHUNK = 900


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    ticket_id: int
    ticket_number: int
    message_id: int
    malformed: bool = False


@dataclass(frozen=True)
class PreparedMail:
    """One fetched mail, parsed (outside any transaction) and ready to store.

    `parsed` is None for mail we cannot read; `error` then says why, and the mail is
    kept raw as a flagged ticket.
    """

    raw: bytes
    uid: int | None
    parsed: ParsedEmail | None
    error: str | None = None

    @property
    def dedupe_key(self) -> str:
        if self.parsed is not None:
            # Stored cut to the column's width, so looked up cut the same way.
            return self.parsed.dedupe_key[:400]
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()


def prepare_mail(
    raw: bytes, *, mailbox: str, uid: int | None = None, own_addresses: Iterable[str] = ()
) -> PreparedMail:
    """Parse one mail; never raises for bad email content."""
    try:
        return PreparedMail(raw, uid, parse_email(raw, own_addresses=own_addresses))
    except MalformedEmailError as exc:
        return PreparedMail(raw, uid, None, str(exc))
    except Exception as exc:  # a parser bug must not stop the mailbox: keep the mail, flag it
        log.exception("parser failed on mailbox %s uid %s", mailbox, uid)
        return PreparedMail(raw, uid, None, f"parser error: {type(exc).__name__}: {exc}")


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
    batch = _Batch(session, mailbox=mailbox, channel=channel, now=now)
    batch.look_up(mails)
    outcomes = [batch.plan(mail) for mail in mails]
    batch.write()
    return [outcome.result() for outcome in outcomes]


# -- planning --------------------------------------------------------------------------
#
# Rows are planned in memory first and written together; ids exist only after the
# writes, so plans refer to each other and results are read once everything is stored.


@dataclass(eq=False)
class _CustomerPlan:
    email: str
    name: str
    id: int = 0
    renamed: bool = False


@dataclass(eq=False)
class _TicketPlan:
    """A ticket opened by this batch."""

    subject: str
    customer: _CustomerPlan | None
    auto_reason: str | None
    malformed: bool
    id: int = 0
    number: int = 0
    # Who wrote to it so far, for threading by "[#123]" later in the batch.
    senders: set[str] = field(default_factory=set)
    status: str = "open"  # SPAM when its sender is blocked


@dataclass(eq=False)
class _MessagePlan:
    mail: PreparedMail
    ticket: _TicketPlan | Ticket
    id: int = 0
    # The mail that opened its ticket: shown by the ticket's post, not by a thread post.
    opens_ticket: bool = False
    attachment_ids: list[int] = field(default_factory=list)


@dataclass(eq=False)
class _Outcome:
    outcome: Outcome
    ticket: _TicketPlan | Ticket
    message: _MessagePlan | int
    malformed: bool = False

    def result(self) -> IngestResult:
        message_id = self.message if isinstance(self.message, int) else self.message.id
        return IngestResult(self.outcome, self.ticket.id, self.ticket.number, message_id, self.malformed)


@dataclass(frozen=True)
class _StoredDuplicate:
    message_id: int
    ticket_id: int
    ticket_number: int

    def result(self) -> IngestResult:
        return IngestResult("duplicate", self.ticket_id, self.ticket_number, self.message_id)


@dataclass(eq=False)
class _EventPlan:
    ticket: _TicketPlan | Ticket
    actor: str
    action: str
    message: _MessagePlan | None
    data: dict[str, Any]


@dataclass(eq=False)
class _OutboxPlan:
    kind: str
    ticket: _TicketPlan | Ticket
    message: _MessagePlan | None = None


def _chunks(values: Sequence[str] | Sequence[int]) -> Iterator[list[Any]]:
    ordered = list(dict.fromkeys(values))
    for start in range(0, len(ordered), _IN_CHUNK):
        yield ordered[start : start + _IN_CHUNK]


class _Batch:
    def __init__(self, session: Session, *, mailbox: str, channel: str, now: datetime) -> None:
        self.session = session
        self.mailbox = mailbox
        self.channel = channel
        self.lane = slack_lane(channel)
        self.now = now
        # What the database already holds, looked up once for the whole batch.
        self.stored: dict[str, _StoredDuplicate] = {}
        self.threads: dict[str, int] = {}
        self.token_senders: dict[int, tuple[int, set[str]]] = {}
        self.tickets: dict[int, Ticket] = {}
        self.customers: dict[str, _CustomerPlan] = {}
        self.blocked: set[str] = set()  # senders whose mail is kept as spam, lowercased
        # What this batch adds, in mail order.
        self.seen: dict[str, _Outcome] = {}
        self.batch_threads: dict[str, _TicketPlan | Ticket] = {}
        self.batch_numbers: dict[int, _TicketPlan] = {}
        self.new_customers: list[_CustomerPlan] = []
        self.new_tickets: list[_TicketPlan] = []
        self.messages: list[_MessagePlan] = []
        self.events: list[_EventPlan] = []
        self.outbox: list[_OutboxPlan] = []
        self.refreshing: set[int] = set()
        # Ticket numbers are taken for every mail that may open a ticket before any is
        # planned, so a "[#123]" later in the batch can name a ticket opened earlier in
        # it; those not used are given back before commit.
        self.next_number = 0
        self.unused_numbers = 0

    # -- lookups ------------------------------------------------------------------

    def look_up(self, mails: Sequence[PreparedMail]) -> None:
        session = self.session
        for keys in _chunks([mail.dedupe_key for mail in mails]):
            for key, message_id, ticket_id, number in session.execute(
                select(Message.dedupe_key, Message.id, Ticket.id, Ticket.number)
                .join(Ticket, Message.ticket_id == Ticket.id)
                .where(Message.mailbox == self.mailbox, Message.dedupe_key.in_(keys))
            ):
                self.stored[key] = _StoredDuplicate(message_id, ticket_id, number)
        may_open = sum(1 for mail in mails if mail.dedupe_key not in self.stored)
        if may_open:
            self.next_number = _take_numbers(session, may_open)
            self.unused_numbers = may_open
        fresh = [m.parsed for m in mails if m.parsed is not None and m.dedupe_key not in self.stored]

        referenced = [msgid for p in fresh for msgid in (p.in_reply_to, *p.references) if msgid]
        for ids in _chunks(referenced):
            for message_id, ticket_id in session.execute(
                select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(ids))
            ):
                self.threads[message_id] = ticket_id

        tokens = [(ticket_token(p.subject), p.from_address) for p in fresh]
        numbers = [number for number, sender in tokens if number is not None and sender]
        senders = [sender for number, sender in tokens if number is not None and sender]
        for chunk in _chunks(numbers):
            for ticket_id, number, sender in session.execute(
                select(Ticket.id, Ticket.number, Message.from_address)
                .join(Message, Message.ticket_id == Ticket.id)
                .where(Ticket.number.in_(chunk), Message.from_address.in_(senders))
                .distinct()
            ):
                self.token_senders.setdefault(number, (ticket_id, set()))[1].add(sender)

        ticket_ids = [*self.threads.values(), *(ticket_id for ticket_id, _ in self.token_senders.values())]
        for chunk in _chunks(ticket_ids):
            # Through the ORM: a follow-up changes these tickets, and the session's
            # copies must show it.
            for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(chunk))):
                self.tickets[ticket.id] = ticket

        for emails in _chunks([p.from_address for p in fresh if p.from_address]):
            for customer_id, email, name in session.execute(
                select(Customer.id, Customer.email, Customer.name).where(Customer.email.in_(emails))
            ):
                self.customers[email] = _CustomerPlan(email, name, customer_id)

        self.blocked = blocked_among(session, [p.from_address for p in fresh])

    # -- one mail -----------------------------------------------------------------

    def plan(self, mail: PreparedMail) -> _Outcome | _StoredDuplicate:
        key = mail.dedupe_key
        stored = self.stored.get(key)
        if stored is not None:
            return stored
        earlier = self.seen.get(key)
        if earlier is not None:
            return _Outcome("duplicate", earlier.ticket, earlier.message)
        outcome = self._plan_unreadable(mail) if mail.parsed is None else self._plan_parsed(mail, mail.parsed)
        self.seen[key] = outcome
        return outcome

    def _plan_parsed(self, mail: PreparedMail, parsed: ParsedEmail) -> _Outcome:
        ticket = self._thread_of(parsed)
        customer = self._customer(parsed)
        actor = customer_actor(parsed.from_address) if parsed.from_address else SYSTEM
        if ticket is None:
            ticket = self._open_ticket(parsed.subject, customer, parsed.auto_reason, malformed=False)
            message = self._message(mail, ticket)
            message.opens_ticket = True
            self.events.append(
                _EventPlan(
                    ticket,
                    actor,
                    "ticket_created",
                    message,
                    {"subject": parsed.subject, "auto_reason": parsed.auto_reason},
                )
            )
            if parsed.from_address.lower() in self.blocked:
                # Stored, never shown: no post, and triage sees the status (bot/tickets/spam.py).
                ticket.status = SPAM
                data = {"previous": "open", "sender": parsed.from_address.lower(), "blocked_sender": True}
                self.events.append(_EventPlan(ticket, SYSTEM, "marked_spam", message, data))
            else:
                self.outbox.append(_OutboxPlan(SLACK_TICKET_POST, ticket))
            return _Outcome("new_ticket", ticket, message)

        message = self._message(mail, ticket)
        self.events.append(_EventPlan(ticket, actor, "customer_message", message, {}))
        if isinstance(ticket, Ticket):
            ticket.updated_at = self.now
            if ticket.status in {"resolved", "waiting"}:
                previous = ticket.status
                ticket.status = "claimed" if ticket.owner else "open"
                ticket.resolved_at = None
                self.events.append(
                    _EventPlan(
                        ticket,
                        actor,
                        "reopened" if previous == "resolved" else "customer_replied",
                        None,
                        {"previous_status": previous, "status": ticket.status},
                    )
                )
        if ticket.status == SPAM:
            return _Outcome("follow_up", ticket, message)  # stays quiet; Not spam shows it
        self.outbox.append(_OutboxPlan(SLACK_THREAD_MESSAGE, ticket, message))
        # A pending refresh renders the ticket's state when delivered, so one is enough;
        # a ticket opened in this batch has its (pending) post.
        if isinstance(ticket, Ticket) and ticket.id not in self.refreshing:
            self.refreshing.add(ticket.id)
            self.outbox.append(_OutboxPlan(SLACK_TICKET_REFRESH, ticket))
        return _Outcome("follow_up", ticket, message)

    def _plan_unreadable(self, mail: PreparedMail) -> _Outcome:
        """Keep mail we cannot read as a flagged ticket, so a person can look at the raw source."""
        # Nobody knows who sent it, so nothing may answer it automatically.
        ticket = self._open_ticket(UNREADABLE_SUBJECT, None, "malformed", malformed=True)
        message = self._message(mail, ticket)
        reason = mail.error or "unreadable"
        self.events.append(
            _EventPlan(
                ticket, SYSTEM, "malformed_email", message, {"reason": reason[:500], "size": len(mail.raw)}
            )
        )
        self.outbox.append(_OutboxPlan(SLACK_TICKET_POST, ticket))
        return _Outcome("new_ticket", ticket, message, malformed=True)

    def _thread_of(self, parsed: ParsedEmail) -> _TicketPlan | Ticket | None:
        """The ticket an email continues: by its reply headers first, then by a [#123] token."""
        # Nearest ancestor first: In-Reply-To, then References from the end.
        for candidate in (parsed.in_reply_to, *reversed(parsed.references)):
            if not candidate:
                continue
            in_batch = self.batch_threads.get(candidate)
            if in_batch is not None:
                return in_batch
            ticket_id = self.threads.get(candidate)
            if ticket_id is not None and ticket_id in self.tickets:
                return self.tickets[ticket_id]
        number = ticket_token(parsed.subject)
        if number is None or not parsed.from_address:
            return None
        # A token is easy to guess, so it only threads mail from someone already on the
        # ticket; anyone else typing "[#12]" gets a ticket of their own.
        opened = self.batch_numbers.get(number)
        if opened is not None:
            return opened if parsed.from_address in opened.senders else None
        stored = self.token_senders.get(number)
        if stored is not None and parsed.from_address in stored[1]:
            return self.tickets.get(stored[0])
        return None

    def _customer(self, parsed: ParsedEmail) -> _CustomerPlan | None:
        if not parsed.from_address:
            return None
        customer = self.customers.get(parsed.from_address)
        if customer is None:
            customer = _CustomerPlan(parsed.from_address, parsed.from_name[:200])
            self.customers[parsed.from_address] = customer
            self.new_customers.append(customer)
        elif parsed.from_name and not customer.name:
            customer.name = parsed.from_name[:200]
            customer.renamed = customer.id != 0
        return customer

    def _open_ticket(
        self, subject: str, customer: _CustomerPlan | None, auto_reason: str | None, *, malformed: bool
    ) -> _TicketPlan:
        ticket = _TicketPlan(subject, customer, auto_reason, malformed, number=self.next_number)
        self.next_number += 1
        self.unused_numbers -= 1
        self.new_tickets.append(ticket)
        self.batch_numbers[ticket.number] = ticket
        return ticket

    def _message(self, mail: PreparedMail, ticket: _TicketPlan | Ticket) -> _MessagePlan:
        message = _MessagePlan(mail, ticket)
        self.messages.append(message)
        parsed = mail.parsed
        if parsed is not None:
            if parsed.message_id:
                self.batch_threads[parsed.message_id[:400]] = ticket
            sender = parsed.from_address[:320]
            if isinstance(ticket, _TicketPlan):
                ticket.senders.add(sender)
            else:
                self.token_senders.setdefault(ticket.number, (ticket.id, set()))[1].add(sender)
                self.tickets.setdefault(ticket.id, ticket)
        return message

    # -- writing ------------------------------------------------------------------

    def write(self) -> None:
        session = self.session
        if self.new_customers:
            ids = session.scalars(
                insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
                [{"email": c.email, "name": c.name, "created_at": self.now} for c in self.new_customers],
            ).all()
            for customer, customer_id in zip(self.new_customers, ids, strict=True):
                customer.id = customer_id
        for customer in self.customers.values():
            if customer.renamed:
                session.execute(update(Customer).where(Customer.id == customer.id).values(name=customer.name))

        if self.unused_numbers:
            # Still ours: the UPDATE that took them holds the counter's row lock.
            session.execute(
                update(Counter)
                .where(Counter.name == TICKET_NUMBER)
                .values(value=Counter.value - self.unused_numbers)
            )
        if self.new_tickets:
            ids = session.scalars(
                insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True),
                [self._ticket_row(ticket) for ticket in self.new_tickets],
            ).all()
            for ticket, ticket_id in zip(self.new_tickets, ids, strict=True):
                ticket.id = ticket_id

        if self.messages:
            ids = session.scalars(
                insert(Message).returning(Message.id, sort_by_parameter_order=True),
                [self._message_row(message) for message in self.messages],
            ).all()
            for message, message_id in zip(self.messages, ids, strict=True):
                message.id = message_id
            owners = [
                message
                for message in self.messages
                if message.mail.parsed is not None
                for _ in message.mail.parsed.attachments
            ]
            attachments = [
                {
                    "message_id": message.id,
                    "filename": a.filename[:500],
                    "content_type": a.content_type[:200],
                    "size": a.size,
                    "slack_file_id": None,
                }
                for message in self.messages
                if message.mail.parsed is not None
                for a in message.mail.parsed.attachments
            ]
            if attachments:
                attachment_ids = session.scalars(
                    insert(Attachment).returning(Attachment.id, sort_by_parameter_order=True), attachments
                ).all()
                for message, attachment_id in zip(owners, attachment_ids, strict=True):
                    message.attachment_ids.append(attachment_id)

        if self.events:
            session.execute(insert(Event), [self._event_row(event) for event in self.events])
        self._write_outbox()
        # The followed-up tickets' new status and updated_at.
        session.flush()

    def _write_outbox(self) -> None:
        session = self.session
        keyed = {self._outbox_key(item): item for item in self.outbox}
        keyed.pop(None, None)
        taken: set[str] = set()
        for keys in _chunks([key for key in keyed if key is not None]):
            taken.update(
                session.scalars(select(OutboxItem.dedupe_key).where(OutboxItem.dedupe_key.in_(keys)))
            )
        waiting: set[int] = set()
        refreshed = [item.ticket.id for item in self.outbox if item.kind == SLACK_TICKET_REFRESH]
        for chunk in _chunks(refreshed):
            waiting.update(
                session.scalars(
                    select(OutboxItem.ticket_id).where(
                        OutboxItem.ticket_id.in_(chunk),
                        OutboxItem.kind.in_([SLACK_TICKET_REFRESH, SLACK_TICKET_POST]),
                        OutboxItem.status == "pending",
                        OutboxItem.attempts == 0,
                    )
                )
            )
        rows = []
        for item in self.outbox:
            key = self._outbox_key(item)
            if key is not None and key in taken:
                continue
            if item.kind == SLACK_TICKET_REFRESH and item.ticket.id in waiting:
                continue
            rows.append(
                self._outbox_row(
                    item.kind,
                    update_lane(self.lane) if item.kind == SLACK_TICKET_REFRESH else self.lane,
                    {"message_id": item.message.id} if item.message is not None else {},
                    item.ticket.id,
                    key,
                )
            )
        rows.extend(self._upload_rows())
        if rows:
            session.execute(insert(OutboxItem), rows)

    def _outbox_row(
        self, kind: str, lane: str, payload: dict[str, Any], ticket_id: int, key: str | None
    ) -> dict[str, Any]:
        """An OutboxItem as `enqueue` would add it, for one bulk insert."""
        return {
            "kind": kind,
            "lane": lane,
            "payload": payload,
            "ticket_id": ticket_id,
            "dedupe_key": key,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": self.now,
            "created_at": self.now,
            "result": {},
            "last_error": None,
            "delivered_at": None,
        }

    def _upload_rows(self) -> list[dict[str, Any]]:
        """One upload per attachment of a customer's own mail, in mail and part order.

        Automatic mail (bounces, auto-replies) and mail set aside as unreadable get none:
        what they carry is a report or unknown, not something a customer sent us to see.
        Which attachments are worth a file (not a signature logo, not over the size
        limit) is decided at delivery, where the bytes are read back from the raw source.
        """
        rows = []
        for message in self.messages:
            parsed = message.mail.parsed
            if parsed is None or parsed.auto_reason is not None or message.ticket.status == SPAM:
                continue
            for attachment_id in message.attachment_ids[:MAX_UPLOADS_PER_MESSAGE]:
                rows.append(
                    self._outbox_row(
                        SLACK_ATTACHMENT_UPLOAD,
                        files_lane(self.lane),
                        upload_payload(attachment_id, message.id, opens_ticket=message.opens_ticket),
                        message.ticket.id,
                        upload_key(attachment_id),
                    )
                )
        return rows

    @staticmethod
    def _outbox_key(item: _OutboxPlan) -> str | None:
        if item.kind == SLACK_TICKET_POST:
            return f"ticket-post:{item.ticket.id}"
        if item.kind == SLACK_THREAD_MESSAGE and item.message is not None:
            return f"thread-message:{item.message.id}"
        return None

    def _ticket_row(self, ticket: _TicketPlan) -> dict[str, Any]:
        return {
            "number": ticket.number,
            "customer_id": ticket.customer.id if ticket.customer is not None else None,
            "subject": ticket.subject,
            "status": ticket.status,
            "owner": None,
            "auto_reason": ticket.auto_reason,
            "malformed": ticket.malformed,
            "created_at": self.now,
            "updated_at": self.now,
            "resolved_at": None,
            "slack_channel": self.channel,
            "slack_ts": None,
            "nudged_at": None,
        }

    def _message_row(self, message: _MessagePlan) -> dict[str, Any]:
        mail, parsed = message.mail, message.mail.parsed
        row: dict[str, Any] = {
            "ticket_id": message.ticket.id,
            "direction": "in",
            "mailbox": self.mailbox,
            "dedupe_key": mail.dedupe_key,
            "raw": mail.raw,
            "imap_uid": mail.uid,
            "created_at": self.now,
            "author": None,
            "slack_ts": None,
            "delivery_status": None,
            "template_name": None,
            "template_version": None,
        }
        if parsed is None:
            row.update(
                message_id=None,
                in_reply_to=None,
                references=[],
                from_address="",
                from_name="",
                subject=UNREADABLE_SUBJECT,
                headers=[],
                text="",
                view_text="",
                html=None,
                auto_reason="malformed",
                parse_error=(mail.error or "unreadable")[:2000],
                defects=[],
                sent_at=None,
            )
            return row
        row.update(
            message_id=parsed.message_id[:400] if parsed.message_id else None,
            in_reply_to=parsed.in_reply_to[:400] if parsed.in_reply_to else None,
            references=list(parsed.references),
            from_address=parsed.from_address[:320],
            from_name=parsed.from_name[:200],
            subject=parsed.subject,
            headers=[[name, value] for name, value in parsed.headers],
            text=parsed.text,
            view_text=parsed.view_text,
            html=parsed.html,
            auto_reason=parsed.auto_reason,
            parse_error=None,
            defects=list(parsed.defects),
            sent_at=parsed.date,
        )
        return row

    def _event_row(self, event: _EventPlan) -> dict[str, Any]:
        data = event.data if event.message is None else {"message_id": event.message.id, **event.data}
        return {
            "ticket_id": event.ticket.id,
            "actor": event.actor,
            "action": event.action,
            "at": self.now,
            "data": data,
        }


def _take_numbers(session: Session, count: int) -> int:
    """Reserve `count` consecutive ticket numbers; returns the first."""
    # UPDATE … RETURNING takes the row lock, as bot.storage.counters.next_value does, so
    # concurrent callers serialise on it instead of reading the same MAX()+1.
    last = session.execute(
        update(Counter)
        .where(Counter.name == TICKET_NUMBER)
        .values(value=Counter.value + count)
        .returning(Counter.value)
    ).scalar_one_or_none()
    if last is None:
        session.execute(insert(Counter).values(name=TICKET_NUMBER, value=count))
        return 1
    return int(last) - count + 1


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
