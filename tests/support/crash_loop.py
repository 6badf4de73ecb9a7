"""Crash loops: bot processes killed and restarted while customers write in and staff reply
from Slack underneath them.

`Fleet` starts `supportbot run` processes; a restarted bot may start up while the one it
replaces still runs (as a supervisor or a rolling deploy would), and takes over the
leader's duties when that one dies. Each traffic generator runs in its own thread
against whichever bot leads at the moment (`BotSlot`), and records what it did and what
the bot answered, so the test can hold the database, the Slack stand-in and the SMTP
catcher to account afterwards.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack import modals
from tests.support.harness import CHANNEL, BotProcess
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser

URGENT_WORD = "outage"


def bare_id(message_id: str) -> str:
    return message_id.strip().strip("<>")


class BotSlot:
    """The URL of the bot process alive right now, or None while it is dead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url: str | None = None

    def set(self, url: str | None) -> None:
        with self._lock:
            self._url = url

    def url(self) -> str | None:
        with self._lock:
            return self._url


class Fleet:
    """`supportbot run` processes sharing one database: started in the background, killed
    one at a time or all at once. Which of them leads is what their /healthz says."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.started = 0
        self._lock = threading.Lock()
        self._processes: list[BotProcess] = []
        self._ready: set[str] = set()
        self.errors: list[str] = []

    def launch(self) -> None:
        bot = BotProcess(self.env, self.workdir, name=f"bot{self.started:02d}")
        self.started += 1
        with self._lock:
            self._processes.append(bot)

        def start() -> None:
            try:
                bot.start(timeout=120)
            except AssertionError as exc:  # a bot killed while starting is fine; others are not
                if bot.proc is None or bot.proc.returncode != -9:
                    self.errors.append(f"{bot.name}: {exc}"[:4000])
                return
            with self._lock:
                self._ready.add(bot.name)

        threading.Thread(target=start, name=f"start-{bot.name}", daemon=True).start()

    def alive(self) -> list[BotProcess]:
        with self._lock:
            return [b for b in self._processes if b.proc is None or b.proc.poll() is None]

    def leader(self) -> BotProcess | None:
        with self._lock:
            ready = [b for b in self._processes if b.name in self._ready and b.proc and b.proc.poll() is None]
        return next((b for b in ready if b.is_leader()), None)

    def kill_all(self) -> None:
        for bot in self.alive():
            if bot.proc is None:  # still being spawned: wait for the process to exist
                deadline = time.monotonic() + 30
                while bot.proc is None and time.monotonic() < deadline:
                    time.sleep(0.01)
            bot.kill()


class TimedSmtpCatcher(SmtpCatcher):
    """The SMTP catcher, noting when each mail was accepted (the start of the window in
    which a crash makes the sender try again)."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.accepted_at: list[float] = []

    def _receive(self, envelope: Any) -> str:
        with self._changed:  # a re-entrant lock: times stay paired with mails
            answer = super()._receive(envelope)
            self.accepted_at.append(time.time())
            return answer

    def by_message_id(self) -> dict[str, list[bytes]]:
        with self._changed:
            caught = list(self.mails)
        out: dict[str, list[bytes]] = {}
        for mail in caught:
            out.setdefault(bare_id(str(mail.message["Message-ID"])), []).append(mail.raw)
        return out


@dataclass(frozen=True)
class SentMail:
    """One customer mail appended to the mailbox."""

    n: int
    kind: str  # new | urgent | follow-up | answer (to one of our replies)
    message_id: str  # without angle brackets
    parent: str | None  # the Message-ID it answers (follow-up, answer)


class MailTraffic(threading.Thread):
    """Customers writing in at random intervals: new tickets, urgent ones after hours
    (while `urgent` is set, up to `urgent_max`), follow-ups to earlier mails and answers to
    the replies the SMTP catcher has seen."""

    def __init__(
        self,
        imap: PymapServer,
        smtp: TimedSmtpCatcher,
        rng: random.Random,
        *,
        urgent_max: int,
        gap: tuple[float, float] = (0.4, 1.4),
    ) -> None:
        super().__init__(name="mail-traffic", daemon=True)
        self.imap = imap
        self.smtp = smtp
        self.rng = rng
        self.urgent = threading.Event()
        self.urgent.set()
        self.urgent_max = urgent_max
        self.gap = gap
        self.stop = threading.Event()
        self.sent: list[SentMail] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._one()
            except Exception as exc:  # reported by the test: a traffic bug must not pass silently
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            self.stop.wait(self.rng.uniform(*self.gap))

    def _one(self) -> None:
        n = len(self.sent)
        roll = self.rng.random()
        urgent_sent = sum(1 for m in self.sent if m.kind == "urgent")
        firsts = [m for m in self.sent if m.kind == "new"]
        replies = list(self.smtp.by_message_id())
        message_id = make_msgid(f"c{n}", domain="example.org")
        kind, parent, subject, sender = "new", None, f"Question {n}", f"customer{n}@example.org"
        if self.urgent.is_set() and urgent_sent < self.urgent_max and n % 4 == 1:
            kind, subject, sender = "urgent", f"Outage {n}: nothing works", f"pager{n}@example.org"
        elif replies and roll < 0.3:
            kind, parent = "answer", self.rng.choice(replies)
            subject, sender = "Re: your answer", "answering@example.org"
        elif firsts and roll < 0.5:
            first = self.rng.choice(firsts)
            kind, parent = "follow-up", first.message_id
            subject, sender = f"Re: Question {first.n}", f"customer{first.n}@example.org"
        raw = customer_mail(
            n,
            subject=subject,
            sender=sender,
            message_id=message_id,
            in_reply_to=f"<{parent}>" if parent else None,
            body=f"Mail {n} ({kind}).\n",
        )
        self.imap.append(raw)
        self.sent.append(SentMail(n, kind, bare_id(message_id), parent))


@dataclass(frozen=True)
class ReplyTry:
    """One reply a person tried to send: what they wrote and what the bot answered."""

    token: str
    ticket_id: int
    # acknowledged | refused (field errors) | failed (an HTTP error) | died (no answer: killed)
    outcome: str
    detail: str = ""


class ReplyTraffic(threading.Thread):
    """A member of staff answering tickets from Slack, one after another: Reply on a
    ticket's message, then Send in the modal the bot opened, each a signed request."""

    def __init__(self, slot: BotSlot, slack: SlackStandIn, user: str, rng: random.Random) -> None:
        super().__init__(name="reply-traffic", daemon=True)
        self.slot = slot
        self.slack = slack
        self.user = user
        self.rng = rng
        self.stop = threading.Event()
        self.tries: list[ReplyTry] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._one()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            self.stop.wait(self.rng.uniform(0.05, 0.4))

    def _ticket_messages(self) -> list[dict[str, Any]]:
        return [
            {**m, "channel": CHANNEL}
            for m in self.slack.messages(CHANNEL)
            if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket"
            and URGENT_WORD not in m.get("text", "").lower()  # replying would claim it: no page
        ]

    def _one(self) -> None:
        url = self.slot.url()
        messages = self._ticket_messages()
        if url is None or not messages:
            time.sleep(0.1)
            return
        before = set(self.slack.views)
        try:
            clicked = SlackUser(url, self.slack, self.user).click(self.rng.choice(messages), "ticket_reply")
        except OSError:
            return  # the bot died before it could open the modal: nothing to send
        if clicked.status != 200:
            return
        view_id = self._new_reply_view(before)
        url = self.slot.url()
        if view_id is None or url is None:
            return
        view = self.slack.views[view_id]
        ticket_id = int(json.loads(view["private_metadata"])["ticket_id"])
        token = f"R{len(self.tries):04d}"
        text = f"Thank you for writing; we are on it. Reply token {token}."
        try:
            answer = SlackUser(url, self.slack, self.user).submit(view_id, {modals.body_block_id(0): text})
        except OSError as exc:
            self.tries.append(ReplyTry(token, ticket_id, "died", f"{type(exc).__name__}: {exc}"))
            return
        body = answer.json()
        if answer.status == 200 and body.get("response_action") != "errors":
            self.tries.append(ReplyTry(token, ticket_id, "acknowledged"))
        elif answer.status == 200:
            self.tries.append(ReplyTry(token, ticket_id, "refused", json.dumps(body)))
        else:
            self.tries.append(ReplyTry(token, ticket_id, "failed", f"HTTP {answer.status}: {answer.body!r}"))

    def _new_reply_view(self, before: set[str], timeout: float = 5.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            for view_id in set(self.slack.views) - before:
                if self.slack.views[view_id].get("callback_id") == modals.REPLY_CALLBACK:
                    return view_id
            time.sleep(0.05)
        return None
