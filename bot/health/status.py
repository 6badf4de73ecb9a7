"""What `/support status` reports, read from the database only (any replica answers it,
within Slack's second, whatever Slack, the mailbox or the mail server are doing)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.health.connections import Service
from bot.outbox.queue import FILES_LANE_PREFIX
from bot.storage.models import Message, OutboxItem
from bot.storage.models_health import ConnectionHealth, LeaderRecord

# The leader writes its record every half minute; older than this, it is presumed gone.
LEADER_STALE = timedelta(minutes=2)
LANE_KINDS = ("slack", "files", "smtp")


@dataclass(frozen=True)
class ServiceState:
    service: Service
    failing_since: datetime | None = None
    error_kind: str | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    notified: bool = False
    # The mailbox: the newest mail stored; outgoing mail: the newest reply sent.
    last_mail_at: datetime | None = None


@dataclass
class LaneState:
    kind: str  # slack, files or smtp
    waiting: int = 0
    failed: int = 0
    oldest_waiting: datetime | None = None


@dataclass(frozen=True)
class LeaderState:
    replica: str
    since: datetime
    seen_at: datetime
    stale: bool


@dataclass(frozen=True)
class StatusReport:
    mailbox: ServiceState
    outgoing_mail: ServiceState
    lanes: list[LaneState] = field(default_factory=list)
    leader: LeaderState | None = None
    this_replica: str = ""


def this_replica() -> str:
    """How a replica is named: the host (the pod, the container) and the process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def bot_version() -> str:
    try:
        return version("supportbot")
    except PackageNotFoundError:
        return "unknown"


def lane_kind(lane: str) -> str:
    if lane.startswith("smtp"):
        return "smtp"
    if lane.startswith(FILES_LANE_PREFIX):
        return "files"
    return "slack"


def status_report(session: Session, now: datetime) -> StatusReport:
    rows = {row.service: row for row in session.scalars(select(ConnectionHealth))}
    last_in = session.scalar(select(func.max(Message.created_at)).where(Message.direction == "in"))
    # The newest reply sent: walked newest first along (direction, created_at), stopping at
    # the first one sent, instead of a max over every reply's sent_at.
    last_out = session.scalar(
        select(Message.sent_at)
        .where(Message.direction == "out", Message.delivery_status == "sent")
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    return StatusReport(
        mailbox=_state(rows.get(str(Service.MAILBOX)), Service.MAILBOX, last_in),
        outgoing_mail=_state(rows.get(str(Service.OUTGOING_MAIL)), Service.OUTGOING_MAIL, last_out),
        lanes=_lanes(session),
        leader=_leader(session, now),
        this_replica=this_replica(),
    )


def _state(row: ConnectionHealth | None, service: Service, last_mail: datetime | None) -> ServiceState:
    if row is None:
        return ServiceState(service, last_mail_at=last_mail)
    return ServiceState(
        service,
        failing_since=row.failing_since,
        error_kind=row.error_kind,
        last_error=row.last_error,
        last_success_at=row.last_success_at,
        last_failure_at=row.last_failure_at,
        notified=row.notified_at is not None,
        last_mail_at=last_mail,
    )


def _lanes(session: Session) -> list[LaneState]:
    lanes = {kind: LaneState(kind) for kind in LANE_KINDS}
    counted = session.execute(
        select(OutboxItem.lane, OutboxItem.status, func.count(), func.min(OutboxItem.created_at))
        .where(OutboxItem.status.in_(("pending", "dead")))
        .group_by(OutboxItem.lane, OutboxItem.status)
    ).all()
    for lane, status, count, oldest in counted:
        state = lanes[lane_kind(lane)]
        if status == "dead":
            state.failed += int(count)
            continue
        state.waiting += int(count)
        if oldest is not None and (state.oldest_waiting is None or oldest < state.oldest_waiting):
            state.oldest_waiting = oldest
    return list(lanes.values())


def _leader(session: Session, now: datetime) -> LeaderState | None:
    row = session.get(LeaderRecord, 1)
    if row is None:
        return None
    return LeaderState(row.replica, row.since, row.seen_at, stale=now - row.seen_at > LEADER_STALE)


def record_leader(session: Session, replica: str, since: datetime, now: datetime) -> None:
    """The leader says it leads (since its election): at once, then every half minute."""
    row = session.get(LeaderRecord, 1, with_for_update=True)
    if row is None:
        session.add(LeaderRecord(id=1, replica=replica, since=since, seen_at=now))
        session.flush()
        return
    row.replica = replica
    row.since = since
    row.seen_at = now
