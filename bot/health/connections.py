"""Each outside connection's state, and when an outage must be announced.

The mailbox watcher and the SMTP sender report every connection attempt: `record_failure`
and `record_success`. A service failing without a break for `threshold` gets ONE outage
notice; working again after that notice, ONE recovery notice. Both are decided here and
returned as data, in the transaction that changes the row: the caller queues their words
in that same transaction, under dedupe keys naming the outage (`outage_key`), so no restart,
race or replica can announce an outage twice.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from imapclient.exceptions import IMAPClientAbortError, LoginError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.mail.xoauth2 import MailLoginRefused
from bot.storage.models_health import ConnectionHealth

# A failure last reported longer ago than this was not watched since (the bot was down):
# a new failure then starts a new outage instead of continuing one nobody saw. Longer than
# any retry interval (the watcher's 60 s, the SMTP lane's 300 s).
UNWATCHED_GAP = timedelta(minutes=15)
_ERROR_CHARS = 300


class Service(StrEnum):
    MAILBOX = "mailbox"  # IMAP
    OUTGOING_MAIL = "outgoing_mail"  # SMTP
    PHONE = "phone"  # calls and SMS (not reported yet)


class FailureKind(StrEnum):
    LOGIN_REFUSED = "login_refused"
    UNREACHABLE = "unreachable"  # connection refused, host unknown, network unreachable
    TIMEOUT = "timeout"
    TLS = "tls"  # handshake, certificate, no STARTTLS
    DROPPED = "dropped"  # the server closed the connection
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str  # a short sentence, secrets masked


@dataclass(frozen=True)
class OutageNotice:
    service: Service
    outage: int
    since: datetime
    failure: Failure


@dataclass(frozen=True)
class RecoveryNotice:
    service: Service
    outage: int
    since: datetime
    until: datetime


Notice = OutageNotice | RecoveryNotice


class ConnectionReporter(Protocol):
    """What the watcher and the sender are handed (bound to one service by bot/app.py)."""

    def worked(self) -> None: ...

    def failed(self, error: BaseException) -> None: ...


def outage_key(notice: Notice) -> str:
    """The stem of every outbox dedupe key of a notice: one per outage and kind."""
    what = "outage" if isinstance(notice, OutageNotice) else "recovery"
    return f"health:{notice.service}:{notice.outage}:{what}"


def classify(error: BaseException, secrets: list[str] | tuple[str, ...] = ()) -> Failure:
    """What kind of failure an exception from imaplib/imapclient/smtplib/ssl/socket is."""
    if isinstance(error, LoginError | smtplib.SMTPAuthenticationError | MailLoginRefused):
        kind = FailureKind.LOGIN_REFUSED
    elif isinstance(error, ssl.SSLError | ssl.CertificateError | smtplib.SMTPNotSupportedError):
        kind = FailureKind.TLS
    elif isinstance(error, TimeoutError | socket.timeout):
        kind = FailureKind.TIMEOUT
    elif isinstance(error, ConnectionRefusedError | socket.gaierror | smtplib.SMTPConnectError):
        kind = FailureKind.UNREACHABLE
    elif isinstance(
        error, ConnectionError | EOFError | IMAPClientAbortError | smtplib.SMTPServerDisconnected
    ):
        kind = FailureKind.DROPPED
    elif isinstance(error, OSError) and error.errno is not None:
        kind = FailureKind.UNREACHABLE  # network unreachable, no route to host
    else:
        kind = FailureKind.OTHER
    return Failure(kind, _detail(error, secrets))


def _detail(error: BaseException, secrets: list[str] | tuple[str, ...]) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        said = error.smtp_error
        text = f"{error.smtp_code} {said.decode('utf-8', 'replace') if isinstance(said, bytes) else said}"
    elif isinstance(error, TimeoutError | socket.timeout):
        text = "timed out"
    else:
        text = str(error) or type(error).__name__
        if text.startswith("b'") or text.startswith('b"'):  # imaplib quotes the server's bytes
            text = text[2:-1]
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:_ERROR_CHARS]


def _row(session: Session, service: Service) -> ConnectionHealth:
    # FOR UPDATE: the watcher, the SMTP worker and the scheduler's tick may decide at once.
    row = session.scalar(
        select(ConnectionHealth).where(ConnectionHealth.service == str(service)).with_for_update()
    )
    if row is None:
        row = ConnectionHealth(service=str(service), outages=0)
        session.add(row)
        session.flush()
    return row


def record_failure(
    session: Session, service: Service, failure: Failure, now: datetime, *, threshold: timedelta
) -> list[Notice]:
    """A connection attempt failed. Returns the outage notice when this failure makes the
    outage last `threshold` and none was sent for it yet."""
    row = _row(session, service)
    unwatched = row.last_failure_at is not None and now - row.last_failure_at > UNWATCHED_GAP
    if row.failing_since is None or (unwatched and row.notified_at is None):
        row.failing_since = now
        row.outages += 1
        row.notified_at = None
    row.error_kind = str(failure.kind)
    row.last_error = failure.detail
    row.last_failure_at = now
    return _due(row, now, threshold)


def record_success(session: Session, service: Service, now: datetime) -> list[Notice]:
    """A connection worked. Returns the recovery notice when the outage it ends was announced."""
    row = _row(session, service)
    notices: list[Notice] = []
    if row.failing_since is not None and row.notified_at is not None:
        notices.append(RecoveryNotice(service, row.outages, row.failing_since, now))
    row.failing_since = None
    row.notified_at = None
    row.last_success_at = now
    return notices


def check_outages(
    session: Session, now: datetime, *, threshold: timedelta, reported_since: datetime
) -> list[Notice]:
    """The scheduler's look: outages that passed `threshold` between two reports.

    Only failures reported since `reported_since` (when this leader started) count: a row a
    previous process left failing may be stale, and its watcher's first report decides.
    """
    rows = session.scalars(
        select(ConnectionHealth)
        .where(
            ConnectionHealth.failing_since.is_not(None),
            ConnectionHealth.notified_at.is_(None),
            ConnectionHealth.last_failure_at >= reported_since,
        )
        .with_for_update()
    ).all()
    notices: list[Notice] = []
    for row in rows:
        notices.extend(_due(row, now, threshold))
    return notices


def _due(row: ConnectionHealth, now: datetime, threshold: timedelta) -> list[Notice]:
    if row.failing_since is None or row.notified_at is not None or now - row.failing_since < threshold:
        return []
    row.notified_at = now
    failure = Failure(FailureKind(row.error_kind or FailureKind.OTHER), row.last_error or "")
    return [OutageNotice(Service(row.service), row.outages, row.failing_since, failure)]
