"""Planning a batch of mails in memory: which are duplicates, which thread onto which
ticket, which open one, and the rows, events and outbox items that follow.

What the database already holds is looked up once for the whole batch
(`BatchPlan.look_up`); each mail is then planned in order (`BatchPlan.plan`), so
a reply to a mail earlier in the batch joins its ticket. `bot.tickets.ingest_rows`
writes the plan.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from bot.mail.parse import ParsedEmail, ticket_token
from bot.outbox.queue import SLACK_THREAD_MESSAGE, SLACK_TICKET_POST, SLACK_TICKET_REFRESH, slack_lane
from bot.storage.counters import TICKET_NUMBER
from bot.storage.models import Counter, Customer, Message, Ticket
from bot.tickets.events import SYSTEM, customer_actor
from bot.tickets.prepared_mail import UNREADABLE_SUBJECT, IngestResult, Outcome, PreparedMail
from bot.tickets.spam import SPAM, blocked_among
from bot.tickets.status import TicketStatus

# Bound on the values in one IN (...): SQLite before 3.32 allows 999 parameters.
_IN_CHUNK = 900


# Rows are planned in memory first and written together; ids exist only after the
# writes, so plans refer to each other and results are read once everything is stored.


@dataclass(eq=False)
class CustomerPlan:
    email: str
    name: str
    id: int = 0
    renamed: bool = False


@dataclass(eq=False)
class TicketPlan:
    """A ticket opened by this batch."""

    subject: str
    customer: CustomerPlan | None
    auto_reason: str | None
    malformed: bool
    id: int = 0
    number: int = 0
    # Who wrote to it so far, for threading by "[#123]" later in the batch.
    senders: set[str] = field(default_factory=set)
    status: str = TicketStatus.OPEN  # SPAM when its sender is blocked


@dataclass(eq=False)
class MessagePlan:
    mail: PreparedMail
    ticket: TicketPlan | Ticket
    id: int = 0
    # The mail that opened its ticket: shown by the ticket's post, not by a thread post.
    opens_ticket: bool = False
    attachment_ids: list[int] = field(default_factory=list)


@dataclass(eq=False)
class PlannedOutcome:
    outcome: Outcome
    ticket: TicketPlan | Ticket
    message: MessagePlan | int
    malformed: bool = False

    def result(self) -> IngestResult:
        message_id = self.message if isinstance(self.message, int) else self.message.id
        return IngestResult(self.outcome, self.ticket.id, self.ticket.number, message_id, self.malformed)


@dataclass(frozen=True)
class StoredDuplicate:
    message_id: int
    ticket_id: int
    ticket_number: int

    def result(self) -> IngestResult:
        return IngestResult("duplicate", self.ticket_id, self.ticket_number, self.message_id)


@dataclass(eq=False)
class EventPlan:
    ticket: TicketPlan | Ticket
    actor: str
    action: str
    message: MessagePlan | None
    data: dict[str, Any]


@dataclass(eq=False)
class OutboxPlan:
    kind: str
    ticket: TicketPlan | Ticket
    message: MessagePlan | None = None


def chunks(values: Sequence[str] | Sequence[int]) -> Iterator[list[Any]]:
    """The distinct values, in order, in pieces small enough for one IN (...)."""
    ordered = list(dict.fromkeys(values))
    for start in range(0, len(ordered), _IN_CHUNK):
        yield ordered[start : start + _IN_CHUNK]


class BatchPlan:
    """One batch of mails planned in memory; `ingest_rows.write_batch` stores it."""

    def __init__(self, session: Session, *, mailbox: str, channel: str, now: datetime) -> None:
        self.session = session
        self.mailbox = mailbox
        self.channel = channel
        self.lane = slack_lane(channel)
        self.now = now
        # What the database already holds, looked up once for the whole batch.
        self.stored: dict[str, StoredDuplicate] = {}
        self.threads: dict[str, int] = {}
        self.token_senders: dict[int, tuple[int, set[str]]] = {}
        self.tickets: dict[int, Ticket] = {}
        self.customers: dict[str, CustomerPlan] = {}
        self.blocked: set[str] = set()  # senders whose mail is kept as spam, lowercased
        # What this batch adds, in mail order.
        self.seen: dict[str, PlannedOutcome] = {}
        self.batch_threads: dict[str, TicketPlan | Ticket] = {}
        self.batch_numbers: dict[int, TicketPlan] = {}
        self.new_customers: list[CustomerPlan] = []
        self.new_tickets: list[TicketPlan] = []
        self.messages: list[MessagePlan] = []
        self.events: list[EventPlan] = []
        self.outbox: list[OutboxPlan] = []
        self.refreshing: set[int] = set()
        # Ticket numbers are taken for every mail that may open a ticket before any is
        # planned, so a "[#123]" later in the batch can name a ticket opened earlier in
        # it; those not used are given back before commit.
        self.next_number = 0
        self.unused_numbers = 0

    # -- lookups ------------------------------------------------------------------

    def look_up(self, mails: Sequence[PreparedMail]) -> None:
        session = self.session
        for keys in chunks([mail.dedupe_key for mail in mails]):
            for key, message_id, ticket_id, number in session.execute(
                select(Message.dedupe_key, Message.id, Ticket.id, Ticket.number)
                .join(Ticket, Message.ticket_id == Ticket.id)
                .where(Message.mailbox == self.mailbox, Message.dedupe_key.in_(keys))
            ):
                self.stored[key] = StoredDuplicate(message_id, ticket_id, number)
        may_open = sum(1 for mail in mails if mail.dedupe_key not in self.stored)
        if may_open:
            self.next_number = _take_numbers(session, may_open)
            self.unused_numbers = may_open
        fresh = [m.parsed for m in mails if m.parsed is not None and m.dedupe_key not in self.stored]

        referenced = [msgid for p in fresh for msgid in (p.in_reply_to, *p.references) if msgid]
        for ids in chunks(referenced):
            for message_id, ticket_id in session.execute(
                select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(ids))
            ):
                self.threads[message_id] = ticket_id

        tokens = [(ticket_token(p.subject), p.from_address) for p in fresh]
        numbers = [number for number, sender in tokens if number is not None and sender]
        senders = [sender for number, sender in tokens if number is not None and sender]
        for chunk in chunks(numbers):
            for ticket_id, number, sender in session.execute(
                select(Ticket.id, Ticket.number, Message.from_address)
                .join(Message, Message.ticket_id == Ticket.id)
                .where(Ticket.number.in_(chunk), Message.from_address.in_(senders))
                .distinct()
            ):
                self.token_senders.setdefault(number, (ticket_id, set()))[1].add(sender)

        ticket_ids = [*self.threads.values(), *(ticket_id for ticket_id, _ in self.token_senders.values())]
        for chunk in chunks(ticket_ids):
            # Through the ORM: a follow-up changes these tickets, and the session's
            # copies must show it.
            for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(chunk))):
                self.tickets[ticket.id] = ticket

        for emails in chunks([p.from_address for p in fresh if p.from_address]):
            for customer_id, email, name in session.execute(
                select(Customer.id, Customer.email, Customer.name).where(Customer.email.in_(emails))
            ):
                self.customers[email] = CustomerPlan(email, name, customer_id)

        self.blocked = blocked_among(session, [p.from_address for p in fresh])

    # -- one mail -----------------------------------------------------------------

    def plan(self, mail: PreparedMail) -> PlannedOutcome | StoredDuplicate:
        key = mail.dedupe_key
        stored = self.stored.get(key)
        if stored is not None:
            return stored
        earlier = self.seen.get(key)
        if earlier is not None:
            return PlannedOutcome("duplicate", earlier.ticket, earlier.message)
        outcome = self._plan_unreadable(mail) if mail.parsed is None else self._plan_parsed(mail, mail.parsed)
        self.seen[key] = outcome
        return outcome

    def _plan_parsed(self, mail: PreparedMail, parsed: ParsedEmail) -> PlannedOutcome:
        ticket = self._thread_of(parsed)
        customer = self._customer(parsed)
        actor = customer_actor(parsed.from_address) if parsed.from_address else SYSTEM
        if ticket is None:
            ticket = self._open_ticket(parsed.subject, customer, parsed.auto_reason, malformed=False)
            message = self._message(mail, ticket)
            message.opens_ticket = True
            self.events.append(
                EventPlan(
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
                data = {
                    "previous": TicketStatus.OPEN,
                    "sender": parsed.from_address.lower(),
                    "blocked_sender": True,
                }
                self.events.append(EventPlan(ticket, SYSTEM, "marked_spam", message, data))
            else:
                self.outbox.append(OutboxPlan(SLACK_TICKET_POST, ticket))
            return PlannedOutcome("new_ticket", ticket, message)

        message = self._message(mail, ticket)
        # One answer is one event: the status it moved the ticket out of rides along, so
        # the timeline shows it once. A reopening stays an event of its own as well, as
        # the figures count reopened tickets (the timeline folds it into this line).
        said: dict[str, Any] = {}
        self.events.append(EventPlan(ticket, actor, "customer_message", message, said))
        if isinstance(ticket, Ticket):
            ticket.updated_at = self.now
            if ticket.status in {TicketStatus.RESOLVED, TicketStatus.WAITING}:
                previous = ticket.status
                ticket.status = TicketStatus.CLAIMED if ticket.owner else TicketStatus.OPEN
                ticket.resolved_at = None
                said.update({"previous_status": previous, "status": ticket.status})
                if previous == TicketStatus.RESOLVED:
                    self.events.append(EventPlan(ticket, actor, "reopened", None, dict(said)))
        if ticket.status == SPAM:
            return PlannedOutcome("follow_up", ticket, message)  # stays quiet; Not spam shows it
        self.outbox.append(OutboxPlan(SLACK_THREAD_MESSAGE, ticket, message))
        # A pending refresh renders the ticket's state when delivered, so one is enough;
        # a ticket opened in this batch has its (pending) post.
        if isinstance(ticket, Ticket) and ticket.id not in self.refreshing:
            self.refreshing.add(ticket.id)
            self.outbox.append(OutboxPlan(SLACK_TICKET_REFRESH, ticket))
        return PlannedOutcome("follow_up", ticket, message)

    def _plan_unreadable(self, mail: PreparedMail) -> PlannedOutcome:
        """Keep mail we cannot read as a flagged ticket, so a person can look at the raw source."""
        # Nobody knows who sent it, so nothing may answer it automatically.
        ticket = self._open_ticket(UNREADABLE_SUBJECT, None, "malformed", malformed=True)
        message = self._message(mail, ticket)
        reason = mail.error or "unreadable"
        self.events.append(
            EventPlan(
                ticket, SYSTEM, "malformed_email", message, {"reason": reason[:500], "size": len(mail.raw)}
            )
        )
        self.outbox.append(OutboxPlan(SLACK_TICKET_POST, ticket))
        return PlannedOutcome("new_ticket", ticket, message, malformed=True)

    def _thread_of(self, parsed: ParsedEmail) -> TicketPlan | Ticket | None:
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

    def _customer(self, parsed: ParsedEmail) -> CustomerPlan | None:
        if not parsed.from_address:
            return None
        customer = self.customers.get(parsed.from_address)
        if customer is None:
            customer = CustomerPlan(parsed.from_address, parsed.from_name[:200])
            self.customers[parsed.from_address] = customer
            self.new_customers.append(customer)
        elif parsed.from_name and not customer.name:
            customer.name = parsed.from_name[:200]
            customer.renamed = customer.id != 0
        return customer

    def _open_ticket(
        self, subject: str, customer: CustomerPlan | None, auto_reason: str | None, *, malformed: bool
    ) -> TicketPlan:
        ticket = TicketPlan(subject, customer, auto_reason, malformed, number=self.next_number)
        self.next_number += 1
        self.unused_numbers -= 1
        self.new_tickets.append(ticket)
        self.batch_numbers[ticket.number] = ticket
        return ticket

    def _message(self, mail: PreparedMail, ticket: TicketPlan | Ticket) -> MessagePlan:
        message = MessagePlan(mail, ticket)
        self.messages.append(message)
        parsed = mail.parsed
        if parsed is not None:
            if parsed.message_id:
                self.batch_threads[parsed.message_id[:400]] = ticket
            sender = parsed.from_address[:320]
            if isinstance(ticket, TicketPlan):
                ticket.senders.add(sender)
            else:
                self.token_senders.setdefault(ticket.number, (ticket.id, set()))[1].add(sender)
                self.tickets.setdefault(ticket.id, ticket)
        return message


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
