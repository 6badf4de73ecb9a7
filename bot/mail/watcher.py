"""Watching the support mailbox: IMAP IDLE, resume by UID, never touch flags.

The mailbox is opened read-only (EXAMINE) and bodies are fetched with
BODY.PEEK[], so mail is ingested whether or not someone already read it in
webmail, and nothing we do marks, moves or deletes it. Progress is the pair
(UIDVALIDITY, last UID) committed together with the tickets it produced, so a
crash at any point resumes exactly where the database says.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.health.connections import ConnectionReporter
from bot.mail.checkpoints import load_checkpoint, save_checkpoint
from bot.mail.oauth_token import TokenSource
from bot.mail.xoauth2 import MailLoginRefused, imap_login
from bot.outbox.queue import FILES_LANE_PREFIX, SLACK_POST, enqueue, notify_workers, slack_lane
from bot.storage.db import transaction
from bot.tickets.events import SYSTEM, record_event
from bot.tickets.ingest import is_database_outage, store_mails, store_mails_one_by_one
from bot.tickets.prepared_mail import IngestResult, PreparedMail, prepare_mail

log = logging.getLogger(__name__)

# A backlog is fetched and stored in batches: each is one FETCH and one transaction,
# so the per-statement and per-commit costs are paid per batch, not per mail. Bounded
# in count and bytes so a slow server (pymap, a busy Exchange) answers each FETCH well
# inside the read timeout, memory stays modest with large attachments, and a crash
# re-reads little.
_FETCH_BATCH = 500
_FETCH_BATCH_BYTES = 32 * 1024 * 1024
# Up to this many new mails are fetched at once without asking their sizes first:
# the usual case, one or two mails after an IDLE wake-up, costs one round trip.
_FETCH_UNSIZED = 50


@dataclass(frozen=True)
class MailboxSettings:
    host: str
    port: int
    user: str
    password: str
    ssl: bool
    folder: str
    channel: str
    own_addresses: tuple[str, ...]
    idle_seconds: float = 25 * 60
    poll_seconds: float = 30.0
    burst_threshold: int = 20
    timeout: float = 60.0
    # With a token source, log in with SASL XOAUTH2 instead of the password, and end each
    # session this long before its token expires: Exchange Online ends a session whose
    # token expired (mid-IDLE, "AccessTokenExpired"), which would read as an outage.
    token_source: TokenSource | None = field(default=None, repr=False, compare=False)
    token_margin_seconds: float = 300.0

    @property
    def mailbox_key(self) -> str:
        return f"{self.user}@{self.host}/{self.folder}"


def _arrived_meanwhile(client: IMAPClient) -> bool:
    """Did the server announce new mail since we last asked? (The announcements are dropped.)

    An EXISTS that arrives inside another command's response is kept by imaplib
    with the untagged responses and never reaches IDLE, so without this check a
    mail appended during a sync would wait for the next one (up to 25 minutes).
    """
    pending = client._imap.untagged_responses.pop("EXISTS", None)
    return bool(pending)


def _server_spoke(client: IMAPClient, timeout: float) -> bool:
    """Is there anything to read, already buffered or arriving on the socket within `timeout`?"""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    # imaplib reads through a buffered file: a response that came in the same segment as
    # the IDLE continuation sits in that buffer, invisible to poll(). Peeking on a
    # non-blocking socket shows it without consuming or waiting.
    sock.setblocking(False)
    try:
        buffered = client._imap.file.peek(1)
    except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
        buffered = b""
    finally:
        sock.setblocking(True)
        client._set_read_timeout()
    if buffered:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(timeout * 1000))


# The channel's heads-up before a backlog of `count` mails is posted: (text, blocks) for
# a Slack post, written by the composition root's renderer (bot/slack/mail_notices.py).
BurstNotice = Callable[[int], tuple[str, list[dict[str, Any]]]]


class MailboxWatcher:
    def __init__(
        self,
        settings: MailboxSettings,
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        on_ingested: Callable[[list[IngestResult]], None] | None = None,
        burst_notice: BurstNotice | None = None,
        health: ConnectionReporter | None = None,
        max_backoff: float = 60.0,
    ) -> None:
        """Without `burst_notice`, a backlog is ingested without a heads-up in the channel.
        `health` is told of every connection attempt (bot/health); `max_backoff` keeps a
        mailbox that is down reported at least that often."""
        self.settings = settings
        self.factory = factory
        self.clock = clock
        self.on_ingested = on_ingested
        self.burst_notice = burst_notice
        self.health = health
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: IMAPClient | None = None
        self._was_connected = False
        self.connected = threading.Event()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="imap-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            # Unblock an IDLE wait at once instead of waiting for its timeout.
            with contextlib.suppress(OSError):
                client.socket().shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        failures = 0
        failing_since: str | None = None
        while not self._stop.is_set():
            try:
                self._session()
            except (IMAPClientError, OSError, ssl.SSLError, EOFError, MailLoginRefused) as exc:
                if self._stop.is_set():
                    break
                # A connection that worked for a while starts the backoff afresh: only
                # failures in a row (the server is down) should slow reconnection.
                failures = 1 if self._was_connected else failures + 1
                reason = f"{type(exc).__name__}: {exc}"
                if self.health is not None:
                    self.health.failed(exc)
                # Log the first failure and every change of cause, not every retry.
                if reason != failing_since:
                    log.warning(
                        "mailbox %s unreachable (%s); reconnecting with backoff",
                        self._where(),
                        reason,
                    )
                    failing_since = reason
                self._stop.wait(self._backoff(failures))
                continue
            except Exception:
                if self._stop.is_set():
                    break
                failures = 1 if self._was_connected else failures + 1
                log.exception("mailbox watcher failed; restarting it")
                self._stop.wait(self._backoff(failures))
                continue
            failures = 0
            if failing_since is not None:
                log.info("mailbox %s reachable again", self._where())
                failing_since = None
        self.connected.clear()

    def _backoff(self, failures: int) -> float:
        return float(min(self.max_backoff, 0.5 * 2 ** min(failures - 1, 10)))

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}/{self.settings.folder}"

    # -- one connection ----------------------------------------------------------

    def _session(self) -> None:
        s = self.settings
        # Cleared before connecting: a refused or dropped connection raises from the
        # constructor, and must count as one more failure in a row, not as a fresh start.
        self._was_connected = False
        client = IMAPClient(s.host, port=s.port, ssl=s.ssl, timeout=s.timeout, use_uid=True)
        self._client = client
        _keep_alive(client.socket())
        try:
            renew_at = self._login(client)
            status = client.select_folder(s.folder, readonly=True)
            uidvalidity = int(status[b"UIDVALIDITY"])
            self.connected.set()
            self._was_connected = True
            if self.health is not None:
                self.health.worked()
            can_idle = client.has_capability("IDLE")
            while not self._stop.is_set():
                self.sync(client, uidvalidity)
                if _arrived_meanwhile(client):
                    continue
                if renew_at is not None and _now() >= renew_at:
                    return  # a new session, on a new token, at once (no backoff)
                if can_idle:
                    self._idle(client, renew_at)
                else:
                    left = (renew_at - _now()).total_seconds() if renew_at is not None else s.poll_seconds
                    self._stop.wait(max(0.0, min(s.poll_seconds, left)))
                    client.noop()
        finally:
            self.connected.clear()
            self._client = None
            try:
                client.logout()
            except Exception:
                with contextlib.suppress(Exception):
                    client.shutdown()

    def _login(self, client: IMAPClient) -> datetime | None:
        """Log in; with OAuth, returns when this session must end to renew its token."""
        s = self.settings
        if s.token_source is None:
            client.login(s.user, s.password)
            return None
        token = imap_login(client, s.user, s.token_source)
        if token.expires_at is None:
            return None
        return renewal_time(token.expires_at, _now(), timedelta(seconds=s.token_margin_seconds))

    def _idle(self, client: IMAPClient, renew_at: datetime | None = None) -> None:
        """Wait in IDLE until the server says anything, we are stopped, or it is time to renew.

        We only wait for the socket to become readable and let `idle_done` read what the
        server sent, in blocking mode. imapclient's `idle_check` reads lines from a
        non-blocking socket, and a response split across TCP segments is then read in two
        halves: the second half later fails to parse ("unexpected response"), dropping
        the connection. Any word from the server (EXISTS, EXPUNGE, a keep-alive) just
        costs one UID SEARCH, which is cheap.
        """
        client.idle()
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() - started >= self.settings.idle_seconds:
                    return
                wait = 1.0
                if renew_at is not None:
                    wait = min(wait, (renew_at - _now()).total_seconds())
                    if wait <= 0:
                        return
                if _server_spoke(client, timeout=wait):
                    return
        finally:
            if not self._stop.is_set():
                client.idle_done()

    # -- fetching -----------------------------------------------------------------

    def sync(self, client: IMAPClient, uidvalidity: int) -> int:
        """Ingest everything newer than the checkpoint. Returns how many new messages were stored."""
        s = self.settings
        with transaction(self.factory) as session:
            checkpoint = load_checkpoint(session, s.mailbox_key)
            if checkpoint is None or checkpoint.uidvalidity != uidvalidity:
                previous = checkpoint.uidvalidity if checkpoint else None
                if previous is not None:
                    # UIDs of the old generation mean nothing now: read everything again;
                    # Message-ID dedupe keeps what we already have from doubling.
                    log.warning(
                        "UIDVALIDITY of %s changed (%s → %s); rescanning",
                        s.mailbox_key,
                        previous,
                        uidvalidity,
                    )
                    record_event(
                        session,
                        ticket_id=None,
                        actor=SYSTEM,
                        action="uidvalidity_changed",
                        at=self.clock.now(),
                        mailbox=s.mailbox_key,
                        previous=previous,
                        current=uidvalidity,
                    )
                save_checkpoint(session, s.mailbox_key, uidvalidity, 0, self.clock.now())
                last_uid = 0
            else:
                last_uid = checkpoint.last_uid
        # The EXISTS that ended the IDLE is answered by this SEARCH: forget it, so that
        # `_arrived_meanwhile` reports only mail announced from here on. imaplib keeps every
        # untagged response, the IDLE's too, and left there it sent each wake-up round
        # again: a second checkpoint read and UID SEARCH after every new mail, with the
        # post on its way and the next IDLE waiting behind them.
        _arrived_meanwhile(client)
        # "n:*" always matches the highest UID even when it is below n (RFC 3501 §6.4.8).
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        if not uids:
            return 0
        if len(uids) >= s.burst_threshold and self.burst_notice is not None:
            self._announce_burst(self.burst_notice, uids, uidvalidity)
        stored = 0
        for batch in _fetch_batches(client, uids):
            if self._stop.is_set():
                break
            fetched = _without_expunged(batch, client.fetch(batch, ["BODY.PEEK[]"]))
            stored += self._ingest_batch(batch, fetched, uidvalidity)
        return stored

    def _ingest_batch(
        self, batch: list[int], fetched: dict[int, dict[bytes, object]], uidvalidity: int
    ) -> int:
        s = self.settings
        # Parsed before the transaction opens: on SQLite the write lock is held only
        # while rows are written, not while Python reads MIME.
        mails: list[PreparedMail] = []
        for uid in batch:
            data = fetched.get(uid)
            if data is None:
                continue  # expunged between SEARCH and FETCH: nothing to read
            raw = data.get(b"BODY[]")
            if not isinstance(raw, bytes):
                raw = b"" if raw is None else str(raw).encode("utf-8", "replace")
            mails.append(prepare_mail(raw, mailbox=s.mailbox_key, uid=uid, own_addresses=s.own_addresses))
        now = self.clock.now()
        try:
            with transaction(self.factory) as session:
                results = store_mails(session, mails, mailbox=s.mailbox_key, channel=s.channel, now=now)
                save_checkpoint(session, s.mailbox_key, uidvalidity, batch[-1], now)
        except Exception as exc:
            if is_database_outage(exc):
                raise
            # Some mail in the batch cannot be stored: store them one by one, so only
            # that mail is set aside (kept raw and flagged) and the others go in as usual.
            log.warning(
                "storing %d mails of %s at once failed (%s: %s); storing them one by one",
                len(mails),
                s.mailbox_key,
                type(exc).__name__,
                exc,
            )
            with transaction(self.factory) as session:
                results = store_mails_one_by_one(
                    session, mails, mailbox=s.mailbox_key, channel=s.channel, now=now
                )
                save_checkpoint(session, s.mailbox_key, uidvalidity, batch[-1], now)
        # Ingestion writes Slack lanes only (a ticket's posts and card edits, in its channel's
        # lanes, and its uploads); the triage worker hears of every commit.
        notify_workers(lanes=(slack_lane(""), FILES_LANE_PREFIX))
        if self.on_ingested is not None:
            self.on_ingested(results)
        return sum(1 for r in results if r.outcome != "duplicate")

    def _announce_burst(self, notice: BurstNotice, uids: list[int], uidvalidity: int) -> None:
        s = self.settings
        text, blocks = notice(len(uids))
        with transaction(self.factory) as session:
            enqueue(
                session,
                kind=SLACK_POST,
                lane=slack_lane(s.channel),
                now=self.clock.now(),
                payload={"channel": s.channel, "text": text, "blocks": blocks},
                # One summary per backlog, even if we crash and rescan it.
                dedupe_key=f"burst:{s.mailbox_key}:{uidvalidity}:{uids[0]}"[:200],
            )
        notify_workers()


def _without_expunged(
    batch: list[int], fetched: dict[int, dict[bytes, object]]
) -> dict[int, dict[bytes, object]]:
    """`fetched` less the UIDs that came back with no message.

    Mail another session expunged between SEARCH and FETCH (an erasure, another client) is
    still answered for, with no message or an empty one (pymap; its SEARCH in this session
    still lists the UID). Stored, it became an empty "(unreadable email)" ticket. A message
    of zero bytes has no sender, subject or body to keep, so nothing is lost by skipping it.
    """
    empty = {uid for uid in batch if uid in fetched and not fetched[uid].get(b"BODY[]")}
    if not empty:
        return fetched
    log.info("UIDs %s came back with no message (expunged meanwhile); skipped", sorted(empty))
    return {uid: data for uid, data in fetched.items() if uid not in empty}


def _fetch_batches(client: IMAPClient, uids: list[int]) -> list[list[int]]:
    """The UIDs split into FETCH batches of at most _FETCH_BATCH mails and about
    _FETCH_BATCH_BYTES (a single larger mail gets a batch of its own)."""
    if len(uids) <= _FETCH_UNSIZED:
        return [uids]
    sizes: dict[int, int] = {}
    for uid, data in client.fetch(uids, ["RFC822.SIZE"]).items():
        size = data.get(b"RFC822.SIZE")
        sizes[uid] = size if isinstance(size, int) else 0
    batches: list[list[int]] = []
    batch: list[int] = []
    batch_bytes = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= _FETCH_BATCH or batch_bytes + size > _FETCH_BATCH_BYTES):
            batches.append(batch)
            batch, batch_bytes = [], 0
        batch.append(uid)
        batch_bytes += size
    if batch:
        batches.append(batch)
    return batches


def renewal_time(expires_at: datetime, now: datetime, margin: timedelta) -> datetime:
    """When a session logged in `now` with a token expiring at `expires_at` should end:
    `margin` before the expiry, or halfway there for a token with less than twice that
    left, so a short-lived token is used for a while rather than renewed in a tight loop."""
    return expires_at - min(margin, (expires_at - now) / 2)


def _now() -> datetime:
    # Token expiry is the server's real time, not the bot's (movable) Clock.
    return datetime.now(UTC)


def _keep_alive(sock: socket.socket, idle: int = 60, interval: int = 10, count: int = 3) -> None:
    """Probe a quiet connection, so a mailbox host that vanished (rebooted, cut off) is
    noticed within about 90 s instead of at the end of an IDLE of up to 29 minutes:
    while we idle, we send nothing that would fail."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
        if hasattr(socket, option):  # Linux; elsewhere the system's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
