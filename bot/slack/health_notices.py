"""What people are told when the mailbox or the mail server stops working, and when it works
again: one post in the support channel and one DM to each manager, per outage.

bot/health decides when (the notices); the words, and what to do about each kind of failure,
are written here and queued in the transaction that recorded the change, under the outage's
dedupe keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.health.connections import (
    Failure,
    FailureKind,
    Notice,
    OutageNotice,
    RecoveryNotice,
    Service,
    classify,
    outage_key,
    record_failure,
    record_success,
)
from bot.outbox.queue import enqueue_post, notify_workers
from bot.slack.paging import duration
from bot.slack.render import escape, slack_date
from bot.storage.db import transaction

log = logging.getLogger(__name__)

_SUCCESS_EVERY = timedelta(minutes=1)

NAMES = {
    Service.MAILBOX: "the support mailbox",
    Service.OUTGOING_MAIL: "outgoing mail",
    Service.PHONE: "phone calls and SMS",
}
CAUSES = {
    FailureKind.LOGIN_REFUSED: "the login was refused",
    FailureKind.UNREACHABLE: "the server cannot be reached",
    FailureKind.TIMEOUT: "the server does not answer",
    FailureKind.TLS: "the secure connection (TLS) failed",
    FailureKind.DROPPED: "the server keeps closing the connection",
    FailureKind.OTHER: "it fails",
}
_CONSEQUENCES = {
    Service.MAILBOX: "Customer mail is not becoming tickets. Nothing is lost: it is read as soon as"
    " the mailbox works again.",
    Service.OUTGOING_MAIL: "Replies to customers wait in the queue and go out as soon as it works again.",
    Service.PHONE: "Pages go by Slack only.",
}


def cause(kind: FailureKind | str) -> str:
    """What is wrong, in a few words (kinds a newer version wrote read as "it fails")."""
    known = {str(k): text for k, text in CAUSES.items()}
    return known.get(str(kind), CAUSES[FailureKind.OTHER])


def name(service: Service) -> str:
    return NAMES.get(service, str(service))


def where(settings: Settings, service: Service) -> str:
    if service == Service.MAILBOX:
        return f"IMAP, {settings.imap_host}:{settings.imap_port}"
    if service == Service.OUTGOING_MAIL:
        return f"SMTP, {settings.smtp_host}:{settings.smtp_port}"
    return str(service)


# Microsoft 365 answers a password login it no longer takes with 5.7.30 (SMTP, from the end
# of 2026 for existing tenants) or 5.7.139; no password will ever work there again.
_PASSWORDS_OFF = ("5.7.30", "5.7.139", "basic authentication is disabled")


def advice(settings: Settings, service: Service, kind: FailureKind | str, detail: str = "") -> str:
    """What to do about it, naming the settings to look at (`detail`: what the server said)."""
    imap = service == Service.MAILBOX
    prefix = "IMAP" if imap else "SMTP"
    host, port = (
        (settings.imap_host, settings.imap_port) if imap else (settings.smtp_host, settings.smtp_port)
    )
    match FailureKind(kind) if kind in set(FailureKind) else FailureKind.OTHER:
        case FailureKind.LOGIN_REFUSED if settings.mail_oauth is not None:
            provider = settings.mail_oauth.provider
            return (
                f"The sign-in to {provider} was refused: run `supportbot auth {provider}` again, or check"
                f" that the app's consent and secret are still valid and {prefix}_USER is the mailbox."
            )
        case FailureKind.LOGIN_REFUSED if any(code in detail.lower() for code in _PASSWORDS_OFF):
            return (
                "This server no longer takes passwords (basic authentication is off): sign in with"
                " OAuth instead, by setting `MAIL_AUTH` (see the setup guide)."
            )
        case FailureKind.LOGIN_REFUSED:
            return f"Check `{prefix}_USER` and `{prefix}_PASSWORD` (the password may have been changed)."
        case FailureKind.UNREACHABLE | FailureKind.TIMEOUT:
            return (
                f"Check `{prefix}_HOST` and `{prefix}_PORT` (now {escape(host)}:{port}), that the server"
                " is up, and that no firewall stops the bot reaching it."
            )
        case FailureKind.TLS if imap:
            return (
                f"Check `IMAP_SSL` (now {'true' if settings.imap_ssl else 'false'}: true for port 993,"
                " false for 143) and the server's certificate."
            )
        case FailureKind.TLS:
            return (
                f"Check `SMTP_SECURITY` (now {settings.smtp_security}: ssl for port 465, starttls for 587)"
                " and the server's certificate."
            )
        case FailureKind.DROPPED:
            return "Look at the server's logs: it may limit connections, or be restarting."
    return "The bot's log has the details."


def outage_text(settings: Settings, notice: OutageNotice, now: datetime) -> str:
    failure = notice.failure
    what = name(notice.service)
    return (
        f":warning: *{what[0].upper()}{what[1:]} is not working* ({escape(where(settings, notice.service))}):"
        f" {cause(failure.kind)} since {slack_date(notice.since)}"
        f" ({duration(max(now - notice.since, timedelta()))})."
        f" {_CONSEQUENCES.get(notice.service, '')}\n"
        f"*What to do:* {advice(settings, notice.service, failure.kind, failure.detail)}\n"
        f"_The server said:_ {escape(failure.detail) or 'nothing'}"
    )


def recovery_text(settings: Settings, notice: RecoveryNotice) -> str:
    what = name(notice.service)
    return (
        f":white_check_mark: *{what[0].upper()}{what[1:]} works again*"
        f" ({escape(where(settings, notice.service))}),"
        f" after {duration(notice.until - notice.since)} (since {slack_date(notice.since)})."
        + (" Mail that arrived meanwhile is being posted now." if notice.service == Service.MAILBOX else "")
        + (" Waiting replies are going out now." if notice.service == Service.OUTGOING_MAIL else "")
    )


def queue_health_notices(session: Session, settings: Settings, notices: list[Notice], now: datetime) -> int:
    """One post in the support channel and one DM per manager for each notice, in the
    caller's transaction; keyed by outage, so a notice is never queued twice."""
    queued = 0
    for notice in notices:
        if isinstance(notice, OutageNotice):
            text = outage_text(settings, notice, now)
        else:
            text = recovery_text(settings, notice)
        key = outage_key(notice)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        managers = [(m, f"dm:{m}") for m in sorted(settings.managers)]
        targets = [(settings.support_channel, "channel"), *managers]
        for channel, suffix in targets:
            if enqueue_post(session, channel, text, now=now, blocks=blocks, dedupe_key=f"{key}:{suffix}"):
                queued += 1
    return queued


class HealthReporter:
    """A service's `ConnectionReporter`: records each attempt and queues what it decides.

    Reporting must never stop the watcher or the sender: a database that is down as well is
    logged (once per cause) and the attempt is simply not recorded.
    """

    def __init__(
        self, service: Service, settings: Settings, factory: sessionmaker[Session], clock: Clock
    ) -> None:
        self.service = service
        self.settings = settings
        self.factory = factory
        self.clock = clock
        self._secrets = tuple(settings.secrets())
        self._failing: str | None = None
        self._healthy_at: datetime | None = None

    @property
    def threshold(self) -> timedelta:
        return timedelta(minutes=self.settings.health_notice_minutes)

    def worked(self) -> None:
        # Every reply sent is a working connection: after one recorded success, the next
        # are written at most once a minute, so sending costs no extra commit each time.
        now = self.clock.now()
        if self._healthy_at is not None and timedelta() <= now - self._healthy_at < _SUCCESS_EVERY:
            return
        if self._record(lambda session, now: record_success(session, self.service, now)):
            self._healthy_at = now

    def failed(self, error: BaseException) -> None:
        self._healthy_at = None
        failure: Failure = classify(error, self._secrets)
        self._record(
            lambda session, now: record_failure(session, self.service, failure, now, threshold=self.threshold)
        )

    def _record(self, change: Callable[[Session, datetime], list[Notice]]) -> bool:
        try:
            now = self.clock.now()
            with transaction(self.factory) as session:
                notices = change(session, now)
                queued = queue_health_notices(session, self.settings, notices, now)
            self._failing = None
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"
            if cause != self._failing:
                log.warning("could not record the %s connection's health (%s)", self.service, cause)
                self._failing = cause
            return False
        if queued:
            notify_workers()
        return True
