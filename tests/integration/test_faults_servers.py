"""Servers that fail: the mailbox restarting under an IDLE, a mail server refusing and
then accepting, Slack answering 429 and 500 for a long while, PostgreSQL restarting
and crashing under load, and the leader replica dying or freezing.

Each test runs the real bot against real servers over real sockets and asserts what
people would see: every mail once, every post once, in order, and the state told.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bot.app import SupportBot
from bot.clock import OffsetClock
from bot.leader import Leadership
from bot.outbox.queue import notify_workers
from bot.outbox.worker import outbox_stats
from bot.sandbox.imap_server import MailboxOps, free_port
from bot.sandbox.smtp_catcher import CaughtMail
from bot.storage.db import make_engine, transaction
from bot.storage.models import Message, OutboxItem, Ticket
from bot.tickets.replies import send_reply
from tests.integration.test_resilience import assert_exactly_once
from tests.support.databases import backend
from tests.support.harness import CHANNEL, BotProcess, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail, message_id_of
from tests.support.private_postgres import PrivatePostgres, postgres_bin_dir

pytestmark = pytest.mark.timeout(300)

AGENT = "UAGENT1"


def ticket_posts(slack) -> list[dict]:
    return [
        m
        for m in slack.messages(CHANNEL)
        if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket"
    ]


def ticket_subjects(slack) -> list[str]:
    """The subjects of the ticket posts in the channel, in the order Slack holds them."""
    return [m["text"].split(" —")[0].split(" ", 1)[1] for m in ticket_posts(slack)]


# -- the mailbox restarts under an IDLE ------------------------------------------------------


class CountingBlackout:
    """What the bot meets on the port while the IMAP server is down: every connection
    accepted and dropped at once (as a load balancer with no backend does), counted, so
    a reconnect loop without backoff shows up as hundreds of connections."""

    def __init__(self, host: str, port: int) -> None:
        self.connections = 0
        self._sock = socket.create_server((host, port), reuse_port=False)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="imap-blackout", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def deliver_to_maildir(server: MailboxOps, raws: Sequence[bytes]) -> None:
    """Drop mail into the stopped server's INBOX as a delivery agent would (Maildir `new/`),
    owned like the mailbox so Dovecot's unprivileged processes may move it to `cur/`."""
    new = server.maildir / "new"  # type: ignore[attr-defined]
    new.mkdir(parents=True, exist_ok=True)
    owner = new.stat()
    for n, raw in enumerate(raws):
        path = new / f"{int(time.time())}.M{n}P{os.getpid()}.restart"
        path.write_bytes(raw)
        if os.geteuid() == 0:
            os.chown(path, owner.st_uid, owner.st_gid)


def reconnect_lines(records: Sequence[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name == "bot.mail.watcher" and "unreachable" in r.msg]


def test_an_idle_mailbox_connection_is_probed_so_a_vanished_host_is_noticed(imap, slack, database_url):
    # While it idles the bot sends nothing, so a host that vanished without closing the
    # connection would go unnoticed for the whole IDLE (up to 29 minutes). Keepalive
    # probes end such a connection within about 90 s; dropping packets needs privileges
    # a test does not have, so this checks the live connection carries the probes.
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env) as bot:
        assert bot.watcher is not None
        wait_until(bot.watcher.connected.is_set, what="the mailbox connection")
        client = bot.watcher._client
        assert client is not None
        sock = client.socket()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) * sock.getsockopt(
                socket.IPPROTO_TCP, socket.TCP_KEEPCNT
            )
            assert idle + probes <= 120


@pytest.mark.slow
def test_imap_restart_mid_idle_reconnects_with_backoff_and_loses_nothing(
    any_imap, slack, database_url, caplog: pytest.LogCaptureFixture
):
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url)
    caplog.set_level(logging.INFO, logger="bot.mail.watcher")
    with running_bot(env) as bot:
        any_imap.append(customer_mail(0, subject="Before the restart"))
        wait_until(lambda: ticket_subjects(slack) == ["Before the restart"], what="the first post")
        time.sleep(1.0)  # the watcher is back in IDLE
        assert bot.watcher is not None and bot.watcher.connected.is_set()

        any_imap.stop()
        blackout = CountingBlackout(any_imap.host, any_imap.port)
        try:
            wait_until(lambda: not bot.watcher.connected.is_set(), what="the bot to notice")
            deliver_to_maildir(any_imap, [customer_mail(n, subject=f"While down {n}") for n in (1, 2)])
            down = 8.0
            time.sleep(down)
        finally:
            blackout.close()
        any_imap.start()
        restarted = time.monotonic()
        wait_until(bot.watcher.connected.is_set, timeout=30, what="the bot to reconnect")
        reconnect = time.monotonic() - restarted
        any_imap.append_many([customer_mail(n, subject=f"After the restart {n}") for n in (3, 4)])
        wait_until(lambda: len(ticket_subjects(slack)) >= 5, timeout=60, what="all five posts")
        time.sleep(1.0)
    posted = ticket_subjects(slack)
    # The server numbers the two mails found in its maildir in an order of its own choosing.
    assert posted[0] == "Before the restart" and posted[3:] == ["After the restart 3", "After the restart 4"]
    assert sorted(posted[1:3]) == ["While down 1", "While down 2"], posted
    # Backoff: 0.5 s doubling to the cap, not a tight loop. In 8 s that is five or six tries.
    assert 1 <= blackout.connections <= 8, blackout.connections
    lines = reconnect_lines(caplog.records)
    # Logged once per cause (the dropped IDLE, then the dropped connections), not per try.
    assert 1 <= len(lines) <= 3, lines
    print(
        f"\nIMAP restart ({type(any_imap).__name__}): {blackout.connections} connection tries in "
        f"{down:.0f} s down, reconnected {reconnect:.1f} s after the server came back; log lines: {lines}"
    )


# -- a mail server that refuses, then accepts ----------------------------------------------------


class MoodySmtp:
    """An SMTP server (aiosmtpd) whose answer is set by the test: `mood` is "accept",
    "busy" (421 to MAIL FROM, as a server shedding load) or "greylist" (451 to DATA).
    Recipients in `unknown` are refused for good (550), whatever the mood."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mood = "accept"
        self.unknown: set[str] = set()
        self.accepted: list[CaughtMail] = []
        self.refused: list[tuple[str, str]] = []  # (command, recipient or sender)
        self._controller: Controller | None = None

    async def handle_MAIL(self, server, session, envelope, address: str, options) -> str:
        if self.mood == "busy":
            self.refused.append(("MAIL", address))
            return "421 4.3.2 System busy, try again later"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address: str, options) -> str:
        if address in self.unknown:
            self.refused.append(("RCPT", address))
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.mood == "greylist":
            self.refused.append(("DATA", ",".join(envelope.rcpt_tos)))
            return "451 4.7.1 Greylisted, please try again later"
        self.accepted.append(CaughtMail(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def queue_reply(bot: SupportBot, ticket_number: int, text: str) -> tuple[int, str]:
    """An agent's reply, as the Reply modal's Send stores it: (message id, Message-ID)."""
    with transaction(bot.factory) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == ticket_number)).one()
        message = send_reply(
            session,
            ticket_id=ticket.id,
            agent_id=AGENT,
            agent_name="Anna Bianchi",
            text=text,
            now=bot.clock.now(),
            settings=bot.settings,
        )
        result = (message.id, f"<{message.message_id}>")
    notify_workers()
    return result


def thread_texts(slack, ticket_number: int) -> list[str]:
    parent = next(m for m in slack.messages(CHANNEL) if m["text"].startswith(f"#{ticket_number} "))
    return [" ".join([r["text"], *mrkdwn_of(r.get("blocks") or [])]) for r in parent["replies"]]


def mrkdwn_of(blocks: list) -> list[str]:
    out: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            out.append(str(text.get("text", "")))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element:
                out.append(str(element["text"]))
    return out


@pytest.mark.slow
def test_smtp_refused_busy_and_greylisting_then_accepting_delivers_each_reply_once_in_order(
    imap, slack, database_url
):
    """Replies queued while the mail server is down, then busy (421), then greylisting (451),
    then up: every reply goes out once, in the order agents sent them; the one the server
    refuses for good (550) is failed at once and never retried; the threads say so."""
    clock = OffsetClock()
    port = free_port()
    env = bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=database_url,
        smtp_port=port,
        REPLY_LATE_MINUTES="10",
    )
    server = MoodySmtp(port)
    customers = {1: "maria@example.org", 2: "gone@example.org", 3: "luca@example.org"}
    with running_bot(env, clock=clock) as bot:
        imap.append_many([customer_mail(n, sender=customers[n], subject=f"Question {n}") for n in customers])
        wait_until(lambda: len(ticket_subjects(slack)) == 3, what="three tickets")
        # Agents answer while nothing listens on the SMTP port.
        plan = [(1, "First answer to one"), (2, "Answer to two"), (1, "Second answer to one")]
        plan += [(3, "Answer to three"), (1, "Third answer to one")]
        replies = [(number, *queue_reply(bot, number, text)) for number, text in plan]

        def head_error() -> str:
            with bot.factory() as session:
                row = session.scalars(
                    select(OutboxItem).where(OutboxItem.kind == "smtp.send").order_by(OutboxItem.id)
                ).first()
                return row.last_error or ""

        def advance(seconds: float) -> None:
            clock.jump_to(clock.now() + timedelta(seconds=seconds))

        wait_until(lambda: "cannot reach the mail server" in head_error(), what="a refused connection")

        # More than ten minutes go by (bot time): the agents hear that their replies are late.
        def all_told_late() -> bool:
            return all(
                any("has not reached the customer" in t for t in thread_texts(slack, n)) for n in customers
            )

        for _ in range(100):
            if all_told_late():
                break
            advance(20)
            time.sleep(0.1)
        wait_until(all_told_late, timeout=30, what="late notices in every thread")
        server.mood = "busy"
        server.unknown = {customers[2]}
        server.start()
        try:
            for mood, command in (("busy", "MAIL"), ("greylist", "DATA")):
                server.mood = mood
                tries = len([r for r in server.refused if r[0] == command])
                for _ in range(60):  # past the longest backoff (300 s), a little at a time
                    if len([r for r in server.refused if r[0] == command]) > tries:
                        break
                    advance(10)
                    time.sleep(0.05)
                wait_until(
                    lambda: len([r for r in server.refused if r[0] == command]) > tries,  # noqa: B023
                    what=f"a {command} refusal",
                )
                assert server.accepted == []
            server.mood = "accept"
            # Moved on a little at a time: a jump made while the worker is still writing
            # down the last refusal would be counted from before it.
            for _ in range(60):
                if len(server.accepted) == 4:
                    break
                advance(10)
                time.sleep(0.1)
            wait_until(lambda: len(server.accepted) == 4, timeout=30, what="four replies accepted")
            for _ in range(5):  # later passes must not send anything again
                advance(301)
                time.sleep(0.6)
        finally:
            server.stop()
        wait_until(
            lambda: any("could not be sent" in t for t in thread_texts(slack, 2)), what="the failure told"
        )
        wait_until(
            lambda: sum(":outbox_tray:" in t for n in (1, 3) for t in thread_texts(slack, n)) == 4,
            what="the sent replies in their threads",
        )
        with bot.factory() as session:
            status = {m.id: m.delivery_status for m in session.scalars(select(Message))}

    sent_ids = [mail.message["Message-ID"] for mail in server.accepted]
    expected = [mid for number, _, mid in replies if number != 2]
    assert sent_ids == expected, "each reply once, in the order agents sent them"
    assert [r for r in server.refused if r[0] == "RCPT"] == [("RCPT", customers[2])], "a 550 is not retried"
    assert [status[message_id] for _, message_id, _ in replies] == ["sent", "failed", "sent", "sent", "sent"]
    sent_to_one = [t for t in thread_texts(slack, 1) if ":outbox_tray:" in t]
    texts_to_one = [text for number, text in plan if number == 1]
    assert len(sent_to_one) == 3 and all(text in sent_to_one[k] for k, text in enumerate(texts_to_one))
    two = thread_texts(slack, 2)
    assert sum("could not be sent" in t for t in two) == 1 and "User unknown" in " ".join(two)
    assert not any(":outbox_tray:" in t for t in two)


# -- Slack answering 429 and 500 for minutes --------------------------------------------------------

# What the outbox asks Slack while delivering to the channel's lane: the post, and the
# look for an earlier try's post before trying again.
LANE_METHODS = {"chat.postMessage", "conversations.history", "conversations.replies"}


def next_try(bot: SupportBot, lane: str) -> datetime | None:
    """When the lane's head is due; None when the lane is empty (everything went out)."""
    with bot.factory() as session:
        head = session.scalars(
            select(OutboxItem)
            .where(OutboxItem.lane == lane, OutboxItem.status == "pending")
            .order_by(OutboxItem.id)
        ).first()
        if head is None:
            return None
        due = head.next_attempt_at
    return due if due.tzinfo else due.replace(tzinfo=UTC)


def earlier_retry_after(call, limited: list) -> float:
    """The Retry-After the stand-in sent with this 429: 3 s for the first two, then 2 s."""
    return 2.0 if call is limited[-1] else 3.0


@pytest.mark.slow
def test_slack_429_and_500_for_minutes_delay_posts_but_never_double_drop_or_reorder(
    imap, slack, database_url
):
    """First a real-time storm (a post Slack stored but answered 500 for, 429s with
    Retry-After, 500s), then ten minutes of 429s and 500s in the bot's time (the clock is
    moved on, so the test does not sleep for them). After recovery the next post comes
    within the backoff cap, and every post is there once, in order."""
    clock = OffsetClock()
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, BURST_THRESHOLD="1000")
    first = customer_mail(0, subject="Storm 0")
    with running_bot(env, clock=clock) as bot:
        # Whatever the bot posts as it starts (the morning hand-over) goes first.
        time.sleep(1.0)
        wait_until(lambda: outbox_stats(bot.factory, clock.now()).get("pending", 0) == 0, what="a quiet lane")
        before = len(slack.calls())
        # The first post reaches Slack, but the answer is lost: the retry must adopt it.
        slack.fail_next("chat.postMessage", status=500, after_effect=True)
        slack.fail_next("chat.postMessage", status=500, times=2)
        slack.fail_next("chat.postMessage", status=429, retry_after=3, times=2)
        slack.fail_next("chat.postMessage", status=429, retry_after=2)
        imap.append_many([first] + [customer_mail(n, subject=f"Storm {n}") for n in (1, 2)])
        wait_until(lambda: len(ticket_subjects(slack)) == 3, timeout=90, what="the storm's posts")
        storm = [c for c in slack.calls()[before:] if c.method in LANE_METHODS]
        limited = [c for c in storm if c.status == 429]
        assert len(limited) == 3 and len([c for c in storm if c.status == 500]) == 3
        for earlier, later in itertools.pairwise(storm):
            if earlier.status == 429:
                honoured = later.at - earlier.at >= float(earlier_retry_after(earlier, limited)) - 0.05
                assert honoured, "a request came sooner than Retry-After"

        # Ten minutes of 429 (Retry-After 20 s) and 500 in turn, in bot time.
        slack.fail_next("conversations.history", status=500, times=10**6)
        for _ in range(200):
            slack.fail_next("chat.postMessage", status=429, retry_after=20)
            slack.fail_next("chat.postMessage", status=500)
        imap.append(customer_mail(3, subject="Outage 3"))
        imap.append(customer_mail(4, subject="Re: Storm 0", in_reply_to=message_id_of(first)))
        imap.append(customer_mail(5, subject="Outage 5"))
        wait_until(lambda: len(slack.calls()) > len(storm), what="a try during the outage")
        outage_started = clock.now()
        while clock.now() - outage_started < timedelta(minutes=10):
            clock.jump_to(clock.now() + timedelta(seconds=30))
            time.sleep(0.3)
        failed_in_outage = len([c for c in slack.calls() if c.status != 200]) - 6
        assert len(ticket_subjects(slack)) == 3
        slack.clear_faults()
        recovered = clock.now()
        time.sleep(0.5)  # a try already under way writes down its next one
        # A try that fell due just as Slack came back may have emptied the lane already.
        due = next_try(bot, f"slack:{CHANNEL}")
        due_in = 0.0 if due is None else (due - recovered).total_seconds()
        while not [c for c in slack.calls("chat.postMessage") if c.status == 200 and c.at > storm[-1].at]:
            assert clock.now() - recovered < timedelta(seconds=90), "no post long after Slack recovered"
            clock.jump_to(clock.now() + timedelta(seconds=5))
            time.sleep(0.3)
        wait = (clock.now() - recovered).total_seconds()
        wait_until(lambda: len(ticket_subjects(slack)) == 5, timeout=30, what="every post")
        wait_until(lambda: ticket_posts(slack)[0]["replies"], what="the follow-up in its thread")
        time.sleep(1.0)
    # The worker's backoff is capped at 60 s and a Retry-After here is 20 s: however long
    # Slack was down, the next try is at most a minute away when it comes back.
    assert due_in <= 60 + 1, due_in
    assert ticket_subjects(slack) == ["Storm 0", "Storm 1", "Storm 2", "Outage 3", "Outage 5"]
    posts = ticket_posts(slack)
    ids = [m["metadata"]["event_payload"]["ticket_id"] for m in posts]
    assert len(ids) == len(set(ids)) == 5, "no ticket posted twice"
    assert [len(m["replies"]) for m in posts] == [1, 0, 0, 0, 0], "the follow-up once, in its thread"
    print(
        f"\nSlack storm: {failed_in_outage} refused tries in 10 min of bot time; "
        f"next try due {due_in:.0f} s after Slack recovered, first post {wait:.0f} s after (bot time)"
    )


# -- PostgreSQL restarting and crashing under load --------------------------------------------------

needs_postgres = pytest.mark.skipif(
    backend() != "postgresql", reason="the suite runs on SQLite (set TEST_DATABASE_URL for PostgreSQL)"
)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with PrivatePostgres() as cluster:
        yield cluster


def posts_after(slack, count: int, timeout: float = 60.0) -> float:
    """Seconds until the channel holds more than `count` ticket posts."""
    started = time.monotonic()
    wait_until(lambda: len(ticket_subjects(slack)) > count, timeout=timeout, what="a new ticket post")
    return time.monotonic() - started


@needs_postgres
@pytest.mark.slow
def test_postgres_restart_and_crash_under_load_lose_nothing_and_need_no_bot_restart(
    imap, slack, private_pg, tmp_path
):
    total = 150
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=private_pg.url, BURST_THRESHOLD="100000")
    mails = [customer_mail(n, subject=f"Under load {n}") for n in range(total)]
    sending = threading.Event()

    def deliver_mail() -> None:
        for start in range(0, total, 3):
            imap.append_many(mails[start : start + 3])
            time.sleep(0.15)
        sending.set()

    bot = BotProcess(env, tmp_path, name="pg-restarts")
    bot.start()
    recoveries: dict[str, float] = {}
    try:
        wait_until(bot.is_leader, what="leadership")
        sender = threading.Thread(target=deliver_mail, daemon=True)
        sender.start()
        wait_until(lambda: len(ticket_subjects(slack)) >= 10, timeout=60, what="ingestion under way")
        for mode in ("fast", "immediate", "stopped 5 s"):
            if mode.startswith("stopped"):
                private_pg.stop("fast")
                time.sleep(5)
                private_pg.start()
            else:
                private_pg.restart(mode)
            recoveries[mode] = posts_after(slack, len(ticket_subjects(slack)))
            assert bot.proc is not None and bot.proc.poll() is None, bot.log()[-4000:]
        sender.join(120)
        assert sending.is_set()
        wait_until(lambda: len(ticket_subjects(slack)) >= total, timeout=120, what="every post")
        time.sleep(1.0)
        assert bot.is_leader() and bot.health()["database"] == "ok"
    finally:
        bot.kill()
    assert_exactly_once(private_pg.url, slack, total)
    print(
        "\nPostgreSQL under load, first new post after: "
        + ", ".join(f"{mode} {seconds:.1f} s" for mode, seconds in recoveries.items())
    )


# -- the leader replica crashing, dying or freezing ---------------------------------------------------


@contextlib.contextmanager
def two_replicas(env: dict[str, str], workdir: Path) -> Iterator[tuple[BotProcess, BotProcess]]:
    replicas = (BotProcess(env, workdir, name="replica-a"), BotProcess(env, workdir, name="replica-b"))
    try:
        for replica in replicas:
            replica.start()
        wait_until(lambda: sum(r.is_leader() for r in replicas) == 1, timeout=30, what="one leader")
        yield replicas
    finally:
        for replica in replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGCONT)
            replica.kill()


def leaders(replicas: Sequence[BotProcess]) -> list[BotProcess]:
    return [r for r in replicas if r.is_leader()]


@needs_postgres
@pytest.mark.slow
def test_two_replicas_through_a_postgres_crash_and_a_frozen_leader(imap, slack, private_pg, tmp_path):
    """A crash of PostgreSQL kills every replica's connections, the leader's lock with them:
    one replica leads again and nothing doubles. A frozen leader (SIGSTOP) keeps its
    connection, and so its lock: the follower must not lead beside it (it cannot know
    the leader will not wake up), and when it wakes it carries on."""
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=private_pg.url, BURST_THRESHOLD="100000")
    sent = 0

    def send(count: int, label: str) -> None:
        nonlocal sent
        imap.append_many([customer_mail(sent + n, subject=f"{label} {sent + n}") for n in range(count)])
        sent += count

    with two_replicas(env, tmp_path) as replicas:
        send(20, "Before the crash")
        wait_until(lambda: len(ticket_subjects(slack)) >= 10, timeout=60, what="ingestion under way")
        private_pg.restart("immediate")
        crashed = time.monotonic()
        send(20, "After the crash")
        wait_until(lambda: len(leaders(replicas)) == 1, timeout=30, what="one leader after the crash")
        wait_until(lambda: len(ticket_subjects(slack)) >= sent, timeout=60, what="every post after the crash")
        crash_recovery = time.monotonic() - crashed
        assert all(r.proc is not None and r.proc.poll() is None for r in replicas)

        [leader] = leaders(replicas)
        follower = next(r for r in replicas if r is not leader)
        assert leader.proc is not None
        leader.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        send(5, "While the leader is frozen")
        time.sleep(12)
        follower_led = follower.is_leader()
        posted_while_frozen = len(ticket_subjects(slack))
        leader.proc.send_signal(signal.SIGCONT)
        thawed = time.monotonic()
        wait_until(lambda: len(ticket_subjects(slack)) >= sent, timeout=60, what="the frozen leader's mail")
        resumed = time.monotonic() - thawed
        assert len(leaders(replicas)) == 1
        time.sleep(1.0)
    # Never two leaders: the frozen one still holds the lock on its open connection.
    assert not follower_led, "the follower led beside a frozen leader"
    assert posted_while_frozen == sent - 5
    assert_exactly_once(private_pg.url, slack, sent)
    print(
        f"\nTwo replicas: every post {crash_recovery:.1f} s after PostgreSQL crashed; leader frozen "
        f"{thawed - frozen:.0f} s: no takeover, mail waited and went out {resumed:.1f} s after it woke"
    )


class LeadershipLog:
    """When a Leadership started and stopped leading, by the monotonic clock."""

    def __init__(self) -> None:
        self.spans: list[list[float]] = []

    def elected(self) -> None:
        self.spans.append([time.monotonic(), float("inf")])

    def deposed(self) -> None:
        self.spans[-1][1] = time.monotonic()


@needs_postgres
def test_after_a_postgres_restart_a_new_leader_acts_only_once_the_old_one_stopped(private_pg):
    """The leader looks at its lock only every two seconds here, and the other replica tries
    for it twenty times a second: without the handover delay the newcomer would act
    while the old leader, not knowing yet, still runs its duties."""
    engine = make_engine(private_pg.url)
    logs = {"a": LeadershipLog(), "b": LeadershipLog()}
    a = Leadership(
        engine, logs["a"].elected, logs["a"].deposed, interval=0.05, check_interval=2.0, handover_delay=2.5
    )
    b = Leadership(
        engine, logs["b"].elected, logs["b"].deposed, interval=0.05, check_interval=2.0, handover_delay=2.5
    )
    a.start()
    try:
        wait_until(lambda: a.is_leader, what="a to lead")
        b.start()
        for _ in range(2):
            private_pg.restart("immediate")
            time.sleep(0.5)
            wait_until(lambda: a.is_leader != b.is_leader, timeout=20, what="one leader again")
            time.sleep(2.5)
    finally:
        a.stop()
        b.stop()
        engine.dispose()
    spans = sorted((start, end, who) for who, log in logs.items() for start, end in log.spans)
    assert len(spans) >= 2, "leadership moved at least once"
    for (_, end, who), (start, _, other) in itertools.pairwise(spans):
        assert end <= start, f"{who} still led when {other} started leading"
