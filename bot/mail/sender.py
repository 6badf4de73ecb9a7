"""Sending replies by SMTP: the outbox handler for `smtp.send` rows.

The email is rebuilt from the stored Message on every try, so a retry sends the
same bytes with the same Message-ID. SMTP has no way to ask "did you already take
this one?", so delivery is at least once: after a crash between the server's
250 and our commit the reply goes out again, and receiving servers and mail
clients that deduplicate by Message-ID (Gmail, Outlook, Thunderbird) show it once.

What a failure means decides what happens next: a server that is down or says
"try later" (4xx) is retried with backoff for as long as it takes, and the agent
hears in the ticket's thread once the reply is `reply_late_minutes` late; a
recipient the server refuses for good (5xx) will never work, so the reply is
marked failed and the agent is told at once.

What the agent is told is data here (`ReplyLate`, `ReplyFailed`, `CopiesRefused`); the
words come from the `write_notice` the composition root hands in (Slack's are in
bot/slack/mail_notices.py), so this module knows nothing of Slack.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.health.connections import ConnectionReporter
from bot.mail.compose import compose_reply
from bot.mail.oauth_token import TokenSource
from bot.mail.xoauth2 import MailLoginRefused, smtp_login
from bot.outbox.queue import SLACK_POST, SLACK_THREAD_MESSAGE, SMTP_SEND, enqueue, notify_workers, slack_lane
from bot.outbox.worker import Handler, PermanentFailure, RetryLater
from bot.storage.db import transaction
from bot.storage.models import Message, OutboxItem, Ticket
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.replies import stored_cc, stored_recipient

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0
# SIZE (RFC 1870): the message is too big for this server, which no retry will change.
_MESSAGE_TOO_BIG = 552


# -- what the agent is told, in the ticket's thread ---------------------------------------


@dataclass(frozen=True)
class ReplyLate:
    """A reply still queued `minutes` after it was sent, because of `reason` (the server's)."""

    author: str | None
    number: int
    minutes: int
    reason: str


@dataclass(frozen=True)
class ReplyFailed:
    """A reply that will never go out, because of `reason`."""

    author: str | None
    number: int
    reason: str


@dataclass(frozen=True)
class CopiesRefused:
    """The customer got the reply; these Cc recipients (address → the server's answer) did not."""

    author: str | None
    number: int
    refused: dict[str, str]


ReplyNotice = ReplyLate | ReplyFailed | CopiesRefused
# Puts a notice in the words the ticket's thread shows.
WriteNotice = Callable[[ReplyNotice], str]


def build_reply_email(message: Message) -> EmailMessage:
    """The email for a stored outgoing Message: the same bytes on every try."""
    to = stored_recipient(message)
    return compose_reply(
        from_name=message.from_name,
        from_address=message.from_address,
        to_address=to.addr_spec,
        to_name=to.display_name,
        cc=stored_cc(message),
        subject=message.subject,
        message_id=message.message_id or "",
        in_reply_to=message.in_reply_to,
        references=list(message.references or []),
        text=message.text,
        html=message.html,
        # The moment the agent pressed Send (RFC 5322 §3.6.1), not the moment a retry got through.
        date=message.created_at,
        auto_submitted=next(
            (
                value
                for name, value in message.headers or []
                if name.lower() == "auto-submitted" and value.lower() != "no"
            ),
            False,
        ),
    )


class SmtpSendHandler:
    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        write_notice: WriteNotice,
        timeout: float = SMTP_TIMEOUT,
        health: ConnectionReporter | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        """With `token_source`, log in with SASL XOAUTH2 instead of SMTP_PASSWORD."""
        self.settings = settings
        self.factory = factory
        self.clock = clock
        self.write_notice = write_notice
        self.timeout = timeout
        # Told whether the connection and login worked (bot/health); a refused recipient
        # or message is about one reply, not the mail server, and is not reported.
        self.health = health
        self.token_source = token_source

    # -- Handler ------------------------------------------------------------------------

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        message_id = int(item.payload["message_id"])
        # Read, then close the session before anything else writes: on SQLite every
        # transaction holds the write lock from its first statement.
        with self.factory() as session:
            message = session.get(Message, message_id)
            if message is None or message.direction != "out":
                raise PermanentFailure(f"reply {message_id} no longer exists")
            if message.delivery_status == "sent":
                return {"skipped": "already sent", "message_id": message.message_id}
            stored_id = message.message_id
            try:
                mail: EmailMessage | None = build_reply_email(message)
                recipient = stored_recipient(message).addr_spec
                copies = [a.addr_spec for a in stored_cc(message)]
                problem = ""
            except ValueError as exc:
                mail, recipient, copies, problem = None, "", [], str(exc)
        if mail is None:
            reason = f"the email could not be written: {problem}"
            self.reply_failed(item, reason)
            raise PermanentFailure(reason)
        try:
            refused = self._send(mail, recipient, copies)
        except RetryLater as exc:
            self._tell_if_late(exc.reason)
            raise
        except PermanentFailure as exc:
            self.reply_failed(item, str(exc))
            raise
        result: dict[str, Any] = {"message_id": stored_id, "to": recipient, "response": "accepted"}
        if copies:
            result["cc"] = copies
        if refused:
            result["cc_refused"] = refused
        return result

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        message = session.get(Message, int(item.payload["message_id"]))
        if message is None or message.delivery_status == "sent":
            return
        now = self.clock.now()
        message.delivery_status = "sent"
        message.sent_at = now
        refused: dict[str, str] = dict(result.get("cc_refused") or {})
        record_event(
            session,
            ticket_id=message.ticket_id,
            actor=SYSTEM,
            action="reply_delivered",
            at=now,
            message_id=message.id,
            to=result.get("to"),
            cc=[a for a in result.get("cc") or [] if a not in refused],
            cc_refused=refused or None,
        )
        ticket = session.get(Ticket, message.ticket_id)
        if ticket is not None and ticket.slack_channel:
            enqueue(
                session,
                kind=SLACK_THREAD_MESSAGE,
                lane=slack_lane(ticket.slack_channel),
                now=now,
                ticket_id=ticket.id,
                payload={"message_id": message.id},
                dedupe_key=f"thread-message:{message.id}",
            )
        if ticket is not None and refused:
            # The customer has the reply, so it counts as sent; the agent still has to know
            # who was left out, once (the dedupe key), to forward it or fix the address.
            text = self.write_notice(CopiesRefused(message.author, ticket.number, refused))
            self._post_to_thread(session, ticket, text, f"reply-cc-refused:{message.id}", now)

    # -- SMTP -------------------------------------------------------------------------

    def _send(self, mail: EmailMessage, recipient: str, copies: list[str]) -> dict[str, str]:
        """One SMTP session; every failure becomes RetryLater or PermanentFailure.

        Returns the Cc recipients the server refused (address → its answer). The customer
        goes first and alone decides: refused, nobody is sent anything (RSET before DATA),
        so a retry can never give a Cc a second copy of what the customer never got.
        """
        s = self.settings
        where = f"{s.smtp_host}:{s.smtp_port}"
        try:
            client = self._connect()
        except MailLoginRefused as exc:  # the token refused twice, or none to be had
            self._report(exc)
            raise RetryLater(self._clean(str(exc))) from None
        # SMTPException is an OSError: caught first, or a refused login reads "cannot reach".
        except smtplib.SMTPException as exc:  # a 4xx greeting, no STARTTLS, login refused
            self._report(exc)
            raise RetryLater(self._clean(f"the mail server {where} refused us: {_describe(exc)}")) from None
        except OSError as exc:  # refused, unreachable, timed out, TLS handshake failed
            self._report(exc)
            raise RetryLater(self._clean(f"cannot reach the mail server {where}: {_describe(exc)}")) from None
        self._report(None)
        try:
            try:
                refused = _transact(client, mail, s.support_address, recipient, copies)
            except smtplib.SMTPRecipientsRefused as exc:
                address, (code, text) = next(iter(exc.recipients.items()), (recipient, (0, b"")))
                reason = f"the mail server refused {address}: {code} {_text(text)}"
                if 500 <= code < 600:
                    raise PermanentFailure(self._clean(reason)) from None
                raise RetryLater(self._clean(reason)) from None
            except smtplib.SMTPDataError as exc:
                reason = f"the mail server refused the message: {exc.smtp_code} {_text(exc.smtp_error)}"
                if 500 <= exc.smtp_code < 600:
                    raise PermanentFailure(self._clean(reason)) from None
                raise RetryLater(self._clean(reason)) from None
            except smtplib.SMTPSenderRefused as exc:
                reason = (
                    f"the mail server refused to send as {s.support_address}: "
                    f"{exc.smtp_code} {_text(exc.smtp_error)}"
                )
                if exc.smtp_code == _MESSAGE_TOO_BIG:
                    raise PermanentFailure(self._clean(reason)) from None
                # Otherwise our account or SUPPORT_ADDRESS is at fault, not this reply:
                # once that is fixed the reply should go out, so keep it queued.
                raise RetryLater(self._clean(reason)) from None
            except (smtplib.SMTPException, OSError) as exc:
                raise RetryLater(self._clean(f"sending through {where} failed: {_describe(exc)}")) from None
        except BaseException:
            _close(client)
            raise
        # The server has the mail (250): until the outbox row is marked done, a crash sends it
        # again. QUIT costs a round trip, so it runs beside the recording instead of before it.
        threading.Thread(target=_close, args=(client,), name="smtp-quit", daemon=True).start()
        return {address: self._clean(f"{code} {_text(text)}") for address, (code, text) in refused.items()}

    def _connect(self) -> smtplib.SMTP:
        return connect_smtp(self.settings, timeout=self.timeout, token_source=self.token_source)

    def _report(self, error: BaseException | None) -> None:
        if self.health is None:
            return
        if error is None:
            self.health.worked()
        else:
            self.health.failed(error)

    def _clean(self, reason: str) -> str:
        # Servers echo odd things back; the password must never reach a log line or Slack.
        password = self.settings.smtp_password
        if password:
            reason = reason.replace(password, "***")
        return reason[:500]

    # -- telling the agent ----------------------------------------------------------------

    def _tell_if_late(self, reason: str) -> None:
        """Tell each agent whose reply is `reply_late_minutes` overdue, once per reply.

        Every queued reply is checked, not only this lane's head: the ones waiting behind
        it are just as late and would otherwise be told nothing until the head got through.
        """
        now = self.clock.now()
        cutoff = now - timedelta(minutes=self.settings.reply_late_minutes)
        try:
            with transaction(self.factory) as session:
                waiting = session.scalars(
                    select(OutboxItem).where(
                        OutboxItem.kind == SMTP_SEND,
                        OutboxItem.status == "pending",
                        OutboxItem.created_at <= cutoff,
                    )
                ).all()
                told = 0
                for row in waiting:
                    message = session.get(Message, int(row.payload["message_id"]))
                    if message is None or message.delivery_status != "queued":
                        continue
                    ticket = message.ticket
                    queued_at = row.created_at
                    minutes = int((now - queued_at).total_seconds() // 60)
                    text = self.write_notice(ReplyLate(message.author, ticket.number, minutes, reason))
                    if self._post_to_thread(session, ticket, text, f"reply-late:{message.id}", now):
                        record_event(
                            session,
                            ticket_id=ticket.id,
                            actor=SYSTEM,
                            action="reply_late",
                            at=now,
                            message_id=message.id,
                            reason=reason,
                        )
                        told += 1
        except Exception:
            # Telling is a courtesy; it must never turn a temporary failure into something else.
            log.exception("could not queue the late-reply notice")
            return
        if told:
            notify_workers()

    def reply_failed(self, item: OutboxItem, reason: str) -> None:
        """Mark a reply that can never be sent as failed and tell the agent in the thread.

        Also usable as (part of) the worker's `on_dead` callback; it is idempotent.
        """
        if item.kind != SMTP_SEND:
            return
        now = self.clock.now()
        with transaction(self.factory) as session:
            message = session.get(Message, int(item.payload["message_id"]))
            if message is None or message.delivery_status in {"sent", "failed"}:
                return
            message.delivery_status = "failed"
            ticket = session.get(Ticket, message.ticket_id)
            record_event(
                session,
                ticket_id=message.ticket_id,
                actor=SYSTEM,
                action="reply_failed",
                at=now,
                message_id=message.id,
                reason=reason,
            )
            if ticket is not None:
                text = self.write_notice(ReplyFailed(message.author, ticket.number, reason))
                self._post_to_thread(session, ticket, text, f"reply-failed:{message.id}", now)
        notify_workers()

    def on_dead(self, item: OutboxItem, reason: str) -> None:
        self.reply_failed(item, reason)

    @staticmethod
    def _post_to_thread(session: Session, ticket: Ticket, text: str, dedupe_key: str, now: datetime) -> bool:
        if not ticket.slack_channel:
            return False
        payload: dict[str, Any] = {"channel": ticket.slack_channel, "text": text}
        if ticket.slack_ts:
            payload["thread_ts"] = ticket.slack_ts
        queued = enqueue(
            session,
            kind=SLACK_POST,
            lane=slack_lane(ticket.slack_channel),
            now=now,
            ticket_id=ticket.id,
            payload=payload,
            dedupe_key=dedupe_key,
        )
        return queued is not None


def smtp_handlers(
    settings: Settings,
    factory: sessionmaker[Session],
    clock: Clock,
    *,
    write_notice: WriteNotice,
    timeout: float = SMTP_TIMEOUT,
    health: ConnectionReporter | None = None,
    token_source: TokenSource | None = None,
) -> dict[str, Handler]:
    handler = SmtpSendHandler(
        settings,
        factory,
        clock,
        write_notice=write_notice,
        timeout=timeout,
        health=health,
        token_source=token_source,
    )
    return {SMTP_SEND: handler}


def connect_smtp(
    settings: Settings, *, timeout: float, token_source: TokenSource | None = None
) -> smtplib.SMTP:
    """A connection that has said EHLO, secured itself as SMTP_SECURITY says and logged in
    (with a token when `token_source` is given, else with SMTP_USER and SMTP_PASSWORD).

    Raises SMTPException (refused), OSError (unreachable) or MailLoginRefused (the token).
    """
    s = settings
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if s.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
    try:
        if s.smtp_security == "starttls":
            client.ehlo()
            if not client.has_extn("starttls"):
                # Never fall back to plain text: the password and the mail would travel in clear.
                raise smtplib.SMTPNotSupportedError(
                    "the server does not offer STARTTLS (set SMTP_SECURITY to ssl or none)"
                )
            client.starttls(context=context)
            client.ehlo()
        if token_source is not None:
            smtp_login(client, s.smtp_user or s.imap_user, token_source)
        elif s.smtp_user:
            try:
                client.login(s.smtp_user, s.smtp_password or "")
            except smtplib.SMTPAuthenticationError as exc:
                # Still an SMTPAuthenticationError, so bot/health knows a refused login.
                raise smtplib.SMTPAuthenticationError(
                    exc.smtp_code, f"login as {s.smtp_user} refused; check SMTP_USER and SMTP_PASSWORD"
                ) from None
    except BaseException:
        _close(client)
        raise
    return client


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _transact(
    client: smtplib.SMTP, mail: EmailMessage, sender: str, recipient: str, copies: list[str]
) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT for the customer then each Cc, DATA: `sendmail` with the customer first.

    Raises as `SMTP.sendmail` does (SMTPSenderRefused, SMTPRecipientsRefused naming the
    customer, SMTPDataError); returns the refused Cc recipients.
    """
    data = mail.as_bytes()  # policy.SMTP: CRLF line ends, as send_message would flatten it
    client.ehlo_or_helo_if_needed()
    options = [f"SIZE={len(data)}"] if client.does_esmtp and client.has_extn("size") else []
    code, answer = client.mail(sender, options)
    if code != 250:
        _reset(client, code)
        raise smtplib.SMTPSenderRefused(code, answer, sender)
    code, answer = client.rcpt(recipient)
    if code not in (250, 251):
        _reset(client, code)
        raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})
    refused: dict[str, tuple[int, bytes]] = {}
    for address in copies:
        code, answer = client.rcpt(address)
        if code == 421:  # the server is closing: nothing was sent, try it all again later
            _reset(client, code)
            raise smtplib.SMTPRecipientsRefused({address: (code, answer)})
        if code not in (250, 251):
            refused[address] = (code, answer)
    code, answer = client.data(data)
    if code != 250:
        _reset(client, code)
        raise smtplib.SMTPDataError(code, answer)
    return refused


def _reset(client: smtplib.SMTP, code: int) -> None:
    # As sendmail does: a 421 means the server already hung up; anything else gets RSET
    # so the half-made transaction is dropped before the connection is closed.
    try:
        if code == 421:
            client.close()
        else:
            client.rset()
    except (smtplib.SMTPException, OSError):
        client.close()


def _close(client: smtplib.SMTP) -> None:
    # After the server's 250 the reply is sent; a failing QUIT must not make us send it again.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
