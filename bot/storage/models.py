"""The database schema as SQLAlchemy 2.0 typed models.

The schema itself is created and changed only by Alembic revisions in
`migrations/`; these classes must match the latest revision (a test checks).
All times are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.tickets.status import TicketStatus


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike.

    SQLite has no time zone type, so values are stored naive-in-UTC; refusing
    naive input stops local times from sneaking in unconverted.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class Counter(Base):
    """Named counters, e.g. the next human-friendly ticket number."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    subject: Mapped[str] = mapped_column(Text, default="")
    # open → claimed → waiting → resolved; a customer reply reopens.
    status: Mapped[str] = mapped_column(String(20), default=TicketStatus.OPEN)
    owner: Mapped[str | None] = mapped_column(String(32))
    # Why nothing may auto-reply to this ticket (auto-submitted, bounce, …).
    auto_reason: Mapped[str | None] = mapped_column(String(40))
    malformed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    # When the last "still unclaimed" nudge went to the thread (None: never).
    nudged_at: Mapped[datetime | None]

    customer: Mapped[Customer | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary="ticket_tags", order_by="Tag.name")
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_tickets_status_created", "status", "created_at"),
        # The stats read one period's tickets by when they were created or resolved.
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_resolved_at", "resolved_at"),
    )


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(32))


class TicketTag(Base):
    __tablename__ = "ticket_tags"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True, index=True)
    added_by: Mapped[str | None] = mapped_column(String(32))
    added_at: Mapped[datetime]


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    # in: from a customer; out: sent by us; note: internal, never emailed.
    direction: Mapped[str] = mapped_column(String(10))
    # Which mailbox it came from ("user@host/INBOX"), so dedupe is per mailbox.
    mailbox: Mapped[str] = mapped_column(String(400), default="")
    dedupe_key: Mapped[str] = mapped_column(String(400))
    message_id: Mapped[str | None] = mapped_column(String(400), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(400))
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    view_text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    auto_reason: Mapped[str | None] = mapped_column(String(40))
    parse_error: Mapped[str | None] = mapped_column(Text)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    imap_uid: Mapped[int | None] = mapped_column(BigInteger)
    author: Mapped[str | None] = mapped_column(String(32))  # Slack user for out/note
    sent_at: Mapped[datetime | None]  # the Date header, or when we sent it
    created_at: Mapped[datetime]
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    # Outgoing mail only: queued → sent | failed; which template (and version) it came from.
    delivery_status: Mapped[str | None] = mapped_column(String(12))
    template_name: Mapped[str | None] = mapped_column(String(120), index=True)
    template_version: Mapped[int | None] = mapped_column(Integer)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        UniqueConstraint("mailbox", "dedupe_key", name="uq_messages_mailbox_dedupe"),
        # The stats: replies per period, and each ticket's first reply.
        Index("ix_messages_direction_created", "direction", "created_at"),
        Index("ix_messages_ticket_direction_created", "ticket_id", "direction", "created_at"),
    )


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    # The Slack file it was uploaded as into the ticket's thread (None: not uploaded).
    slack_file_id: Mapped[str | None] = mapped_column(String(32))

    message: Mapped[Message] = relationship(back_populates="attachments")


class TemplateVersion(Base):
    """Reply templates edited from Slack: every save is a new version, never an overwrite.

    The newest version of a name overrides the file of the same name in `templates/`.
    """

    __tablename__ = "template_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(10))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("name", "version", name="uq_template_versions_name_version"),)


class Event(Base):
    """The audit log: who did what, when. Never updated, only appended."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    actor: Mapped[str] = mapped_column(String(340))  # Slack user id, "system", or "customer:<email>"
    action: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # The stats: resolutions and reopens per period, and a ticket's resolutions after a reply.
    __table_args__ = (
        Index("ix_events_action_at", "action", "at"),
        Index("ix_events_ticket_action_at", "ticket_id", "action", "at"),
    )


class MailboxCheckpoint(Base):
    """How far a mailbox has been read: resume from here after any restart."""

    __tablename__ = "mailbox_checkpoints"
    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class OutboxItem(Base):
    """An effect waiting to leave the process (Slack call, email).

    Written in the same transaction as the state change it reports; the
    outbox worker delivers it at least once and records the result.
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # Items of one lane are delivered strictly in id order and paced together
    # (a Slack channel, or "smtp").
    lane: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # pending → done | dead. `attempts` counts delivery tries that started.
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_outbox_status_lane", "status", "lane", "id"),)


# -- the on-call rota ----------------------------------------------------------------


class RotaMember(Base):
    """Someone who can be on call: support staff, synced from Slack, with a manager-set weight."""

    __tablename__ = "rota_members"
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    tz: Mapped[str] = mapped_column(String(64), default="UTC")  # from their Slack profile
    weight: Mapped[float] = mapped_column(Float, default=1.0)  # 0.5: part-time, half the load
    # False: left the staff, or taken off the rota by a manager; their history stays.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The secret in their personal calendar feed's URL.
    ical_token: Mapped[str] = mapped_column(String(64), unique=True)
    joined_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TimeOffRecord(Base):
    """Whole local days away, first to last inclusive; [start, end) is the same in UTC."""

    __tablename__ = "time_off"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    start: Mapped[datetime]
    end: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(32))


class RotaDuty(Base):
    """One published duty: `user_id` holds the emergency phone during [start, end).

    Duties tile the after-hours without gaps. `pinned` duties (a swap, a cover, a
    manager's choice) are kept by re-planning. The three *_at markers make each
    hand-off step happen once, whatever restarts in between.
    """

    __tablename__ = "rota_duties"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[datetime] = mapped_column(unique=True)
    end: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(20), default="planned")  # planned|swap|cover|manager|split
    why: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime]
    published_by: Mapped[str] = mapped_column(String(32))
    reminded_at: Mapped[datetime | None]
    handed_off_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]


class DutySwap(Base):
    """A duty offered to a colleague (swap) or taken outright (cover), and what became of it."""

    __tablename__ = "duty_swaps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    duty_id: Mapped[int] = mapped_column(ForeignKey("rota_duties.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # swap | cover
    from_user: Mapped[str | None] = mapped_column(String(32))
    to_user: Mapped[str] = mapped_column(String(32))
    # offered → accepted | declined | expired | cancelled; awaiting_approval → accepted | rejected
    status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(32))


class LedgerLine(Base):
    """The compensation ledger: earned per duty held, taken, or adjusted by a manager."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # earned | taken | adjusted
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    unit: Mapped[str] = mapped_column(String(10))  # days | money
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")
    duty_id: Mapped[int | None] = mapped_column(ForeignKey("rota_duties.id"))
    # Night work on a page (from the page to the ticket's resolution), when the policy pays for it.
    page_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]

    # A duty, or a page, earns once, whatever retries the settling job goes through.
    __table_args__ = (
        UniqueConstraint("duty_id", "user_id", "kind", name="uq_ledger_duty_user_kind"),
        UniqueConstraint("page_id", "user_id", "kind", name="uq_ledger_page_user_kind"),
    )


class CalendarFeed(Base):
    """The team's calendar feed secret (personal ones live on RotaMember)."""

    __tablename__ = "calendar_feeds"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


# -- after hours: urgency, paging, automatic replies ----------------------------------


class UrgencyRule(Base):
    """One rule deciding whether a ticket is urgent; rules are tried in `position` order, first match wins."""

    __tablename__ = "urgency_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    # keyword (subject or body) | sender (an address) | domain | tag
    kind: Mapped[str] = mapped_column(String(10))
    pattern: Mapped[str] = mapped_column(String(320))
    urgent: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class TicketTriage(Base):
    """What happened to a ticket when it arrived: urgent or not and why, paged, answered automatically."""

    __tablename__ = "ticket_triage"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(400), default="")  # the rule that matched, in words
    auto_reply: Mapped[str | None] = mapped_column(String(120))  # template of the automatic reply sent
    triaged_at: Mapped[datetime]


class Page(Base):
    """Waking someone for an urgent ticket: one escalation chain, stepped by the scheduler."""

    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    # active → acknowledged | exhausted | cancelled
    status: Mapped[str] = mapped_column(String(14), default="active")
    step: Mapped[int] = mapped_column(Integer, default=0)  # pages sent so far
    next_step_at: Mapped[datetime | None] = mapped_column(index=True)
    started_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    acknowledged_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class PageAttempt(Base):
    """One page sent: to whom, at which level of the chain, and whether their notifications were paused."""

    __tablename__ = "page_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(10))  # oncall | backup | managers
    user_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    dnd: Mapped[bool | None] = mapped_column(Boolean)  # None until Slack has told us

    __table_args__ = (UniqueConstraint("page_id", "step", "user_id", name="uq_page_attempts_step_user"),)


class AutoReply(Base):
    """Every automatic email sent, by recipient: the per-sender rate cap counts these."""

    __tablename__ = "auto_replies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # ack | template
    template_name: Mapped[str | None] = mapped_column(String(120))
    sent_at: Mapped[datetime] = mapped_column(index=True)


class TemplateAutomation(Base):
    """A template a manager switched to automatic: sent by itself to matching tickets."""

    __tablename__ = "template_automations"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    # after_hours | business_hours | always; a row is deleted when switched off (the audit log keeps it).
    when: Mapped[str] = mapped_column(String(16))
    # Which tickets: a tag they carry or a keyword in subject or body, as in urgency rules.
    match_kind: Mapped[str] = mapped_column(String(10))
    match_pattern: Mapped[str] = mapped_column(String(320))
    enabled_by: Mapped[str] = mapped_column(String(32))
    enabled_at: Mapped[datetime]


# -- satisfaction surveys ---------------------------------------------------------------


class Survey(Base):
    """The satisfaction survey of one resolution of a ticket: sent, then (maybe) answered.

    A reopened and re-resolved ticket gets a new survey (`round` counts resolutions);
    answering again keeps the last answer.
    """

    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    agent: Mapped[str | None] = mapped_column(String(32))  # who resolved it: the answer counts for them
    resolved_at: Mapped[datetime]
    # pending → sent | skipped (opted out, auto mail, disabled); answered keeps sent_at.
    status: Mapped[str] = mapped_column(String(10), default="pending")
    sent_at: Mapped[datetime | None]
    solved: Mapped[bool | None] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("ticket_id", "round", name="uq_surveys_ticket_round"),)


class SurveyOptOut(Base):
    """Customers who asked never to get a survey again."""

    __tablename__ = "survey_opt_outs"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    at: Mapped[datetime]


class AppSecret(Base):
    """A server secret made once, at first use, and shared by every replica (e.g. the survey link key).

    Kept in the database rather than a file so that all replicas sign and check with the
    same key without anyone having to configure one.
    """

    __tablename__ = "app_secrets"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class SeenSignature(Base):
    """A Slack request signature already accepted: the same signed request twice is a replay.

    Kept in the database so every replica refuses a request another one already served.
    """

    __tablename__ = "seen_signatures"
    signature: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


class BlockedSender(Base):
    """An address (or, by a manager, a whole domain) whose mail is kept but set aside as spam.

    Mail from it is still stored, as a ticket with status `spam`, so nothing is ever lost;
    it is just never shown to the team, triaged or answered.
    """

    __tablename__ = "blocked_senders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # address | domain
    value: Mapped[str] = mapped_column(String(320))  # lowercased address or domain
    blocked_by: Mapped[str] = mapped_column(String(32))
    blocked_at: Mapped[datetime]
    # The ticket that was marked as spam when the address was blocked, if any.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))

    __table_args__ = (UniqueConstraint("kind", "value", name="uq_blocked_senders_kind_value"),)
