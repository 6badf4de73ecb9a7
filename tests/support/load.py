"""A busy hour at the support desk, for the load benchmark and its test.

Customer mail arrives over IMAP at "2,000 in an hour" (random arrival times, some
follow-ups to earlier tickets, one burst), compressed by `speedup`, with Slack's pace
compressed by the same factor so that arrival and posting keep their real ratio. Meanwhile
each member of staff acts through signed requests into the bot's real `/slack/events`,
at human speed (every `think` seconds on average): claims, tags, replies from the modal
with templates or their own words, resolutions, notes in threads, `/support open|mine|
ticket N|stats`, `/oncall` and App Home.

`team="realistic"` is a real team's hour instead (see `RealisticTeam`): 200 mails an hour
(times `activity`), and staff whose actions follow the tickets with human delays rather
than a fixed clock.

`run_load` drives it and records what happened; `check_load` reads the stand-ins and the
database afterwards and says what the load broke, if anything: lost or doubled mail,
posts out of arrival order or faster than the pace, replies not sent exactly once.
"""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.queue import SLACK_THREAD_MESSAGE
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_requests import find_element
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack import modals, render
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Message, OutboxItem, Ticket
from tests.support.harness import CHANNEL, PROJECT_ROOT, BotProcess, MailServer, bot_env, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser

# The figure: a busy small team's day of mail arrives in one hour.
MAILS_PER_HOUR = 2000
REPLY_TEMPLATES = (
    "acknowledgement.en",
    "more_information.en",
    "password_reset.en",
    "refund_request.en",
    "resolved.en",
    "acknowledgement.it",
    "refund_request.it",
)
# What a busy agent's clicks are made of (relative weights).
ACTIONS = {
    "claim": 18,
    "reply": 18,
    "tag": 7,
    "resolve": 9,
    "note": 5,
    "open": 9,
    "mine": 8,
    "ticket": 6,
    "oncall": 4,
    "home": 8,
    "stats": 2,  # managers only
}
# A follow-up answers a mail at least this many arrivals older, whose ticket exists by then.
FOLLOW_UP_DISTANCE = 20
# A real team's hour (issue #20): 10 staff, 200 mails an hour; `RealisticTeam` has the rest.
REALISTIC_MAILS_PER_HOUR = 200
# At 200 an hour five arrivals are about 90 s: the parent's ticket exists long before.
REALISTIC_FOLLOW_UP_DISTANCE = 5


@dataclass(frozen=True)
class LoadPlan:
    mails: int = 2000
    speedup: float = 60.0
    staff: int = 10
    managers: int = 2
    think: float = 3.0  # mean seconds between one person's actions, wall clock (humans are not sped up)
    follow_up_share: float = 0.15
    burst: int = 30  # mails delivered at once halfway through (a mail server flushing its queue)
    seed: int = 8
    team: str = "busy"  # "busy": everyone acts every `think` s; "realistic": see RealisticTeam
    mails_per_hour: float = MAILS_PER_HOUR
    activity: float = 1.0  # realistic team: mail rate and lookups multiplied by this
    follow_up_distance: int = FOLLOW_UP_DISTANCE

    @property
    def rate(self) -> float:
        """Mails an hour at the real pace."""
        return self.mails_per_hour * self.activity

    @property
    def span(self) -> float:
        """Wall-clock seconds over which the mail arrives."""
        return self.mails * 3600 / self.rate / self.speedup

    @property
    def pace(self) -> float:
        """Slack's one message per second per channel, compressed like the arrivals."""
        return 1.0 / self.speedup

    def staff_ids(self) -> list[str]:
        return [f"U0LOAD{n:02d}" for n in range(self.staff)]

    def manager_ids(self) -> list[str]:
        return self.staff_ids()[: self.managers]


@dataclass(frozen=True)
class PlannedMail:
    index: int
    at: float  # seconds after the start, wall clock
    raw: bytes
    message_id: str
    parent: int | None  # index of the mail this one follows up


def plan_mails(plan: LoadPlan) -> list[PlannedMail]:
    rng = random.Random(plan.seed)
    # A Poisson process with a known count: uniform arrival times, sorted.
    times = sorted(rng.uniform(0, plan.span) for _ in range(plan.mails - plan.burst))
    burst_at = plan.span / 2
    times = sorted(times + [burst_at] * plan.burst)
    mails: list[PlannedMail] = []
    new_ones: list[int] = []
    for index, at in enumerate(times):
        parent = None
        distance = plan.follow_up_distance
        if index >= distance * 2 and rng.random() < plan.follow_up_share:
            parent = rng.choice([n for n in new_ones if n <= index - distance][-200:])
        message_id = f"<load-{plan.seed}-{index}@customers.example.org>"
        if parent is None:
            new_ones.append(index)
            customer = rng.randrange(plan.mails // 3 + 1)
            raw = customer_mail(
                index,
                subject=f"Order {index}: {rng.choice(('refund', 'login', 'invoice', 'delivery', 'outage'))}",
                sender=f"customer{customer}@customers.example.org",
                sender_name=f"Customer {customer}",
                message_id=message_id,
                body=f"Hello, this is about request {index}.\nThanks!\n",
            )
        else:
            first = mails[parent]
            raw = customer_mail(
                index,
                subject=f"Re: Order {parent}",
                sender=_sender_of(first.raw),
                message_id=message_id,
                in_reply_to=first.message_id,
                body=f"Any news on request {parent}? (follow-up {index})\n",
            )
        mails.append(PlannedMail(index, at, raw, message_id, parent))
    return mails


def _sender_of(raw: bytes) -> str:
    from email.utils import parseaddr

    return parseaddr(str(message_from_bytes(raw)["From"]))[1]


# -- what happened -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    kind: str
    seconds: float
    ok: bool


@dataclass
class LoadRun:
    plan: LoadPlan
    mails: list[PlannedMail]
    appended_at: dict[int, float] = field(default_factory=dict)  # index → time.time() at APPEND
    samples: list[Sample] = field(default_factory=list)
    replies_sent: int = 0  # submissions the bot accepted (the modal closed)
    append_lag: float = 0.0  # how far the appender fell behind its schedule, at worst
    span_seconds: float = 0.0  # how long the arrivals actually took
    drain_seconds: float = 0.0  # from the last APPEND to the last post and mail
    failures: list[str] = field(default_factory=list)
    team_planned: int = 0  # realistic team: ticket actions planned, and done before the mail stopped
    team_done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, kind: str, seconds: float, ok: bool = True) -> None:
        with self._lock:
            self.samples.append(Sample(kind, seconds, ok))

    def reply_sent(self) -> None:
        with self._lock:
            self.replies_sent += 1

    def fail(self, why: str) -> None:
        with self._lock:
            if len(self.failures) < 50:
                self.failures.append(why)


class Board:
    """The ticket messages in the channel as staff see them, read from the stand-in."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        self._seen = 0
        self._tickets: dict[int, str] = {}  # number → ts
        self._numbers: list[int] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            posts = self.slack.posts[CHANNEL][self._seen :]
            self._seen += len(posts)
            for post in posts:
                metadata = post.metadata or {}
                if post.thread_ts is None and metadata.get("event_type") == render.TICKET_EVENT_TYPE:
                    number = int(metadata["event_payload"]["number"])
                    if number not in self._tickets:
                        self._tickets[number] = post.ts
                        self._numbers.append(number)

    def numbers(self) -> list[int]:
        self.refresh()
        with self._lock:
            return list(self._numbers)

    def message(self, number: int) -> dict[str, Any] | None:
        ts = self._tickets.get(number)
        return self.slack.find_message(CHANNEL, ts) if ts else None


# -- staff ---------------------------------------------------------------------------------------


class Agent:
    """One person at the desk, acting every few seconds until told to stop."""

    def __init__(
        self, user: SlackUser, *, manager: bool, board: Board, run: LoadRun, rng: random.Random
    ) -> None:
        self.user = user
        self.manager = manager
        self.board = board
        self.run = run
        self.rng = rng
        self.mine: list[int] = []
        self.claimed: set[int] = set()

    def work(self, stop: threading.Event) -> None:
        kinds = [k for k in ACTIONS if self.manager or k != "stats"]
        weights = [ACTIONS[k] for k in kinds]
        while not stop.wait(self.rng.expovariate(1 / self.run.plan.think)):
            kind = self.rng.choices(kinds, weights)[0]
            try:
                getattr(self, f"do_{kind}")()
            except Exception as exc:  # a broken step is a finding, not a reason to stop the desk
                self.run.fail(f"{self.user.id} {kind}: {type(exc).__name__}: {exc}")

    # Each request is timed from sending it to the bot's HTTP answer (its ack); where the
    # answer comes later through the Web API (a modal, App Home), that is timed too.

    def _timed(self, kind: str, request: Callable[[], Any]) -> Any:
        started = time.monotonic()
        answer = request()
        self.run.record(kind, time.monotonic() - started, answer.status == 200)
        if answer.status != 200:
            self.run.fail(f"{self.user.id} {kind}: HTTP {answer.status} {answer.body[:200]!r}")
        return answer

    def _shown(self, kind: str, started: float, check: Callable[[], Any]) -> Any:
        try:
            value = wait_until(check, timeout=15, interval=0.005, what=kind)
        except AssertionError:
            self.run.record(kind, time.monotonic() - started, False)
            self.run.fail(f"{self.user.id} {kind}: nothing shown within 15 s")
            return None
        self.run.record(kind, time.monotonic() - started)
        return value

    def _pick_ticket(self, *, unclaimed: bool = False) -> tuple[int, dict[str, Any]] | None:
        numbers = self.board.numbers()
        # People take the oldest waiting tickets; several reaching for the same one is real.
        candidates = [n for n in numbers if n not in self.claimed][:8] if unclaimed else numbers[-300:]
        if not candidates:
            return None
        number = self.rng.choice(candidates)
        message = self.board.message(number)
        return (number, {**message, "channel": CHANNEL}) if message else None

    def _modal(self, callback: str, before: str | None) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            view = self.user.slack.open_modal(self.user.id)
            if view and view["id"] != before and view.get("callback_id") == callback:
                return view
            return None

        return check

    def _current_modal_id(self) -> str | None:
        view = self.user.slack.open_modal(self.user.id)
        return view["id"] if view else None

    def _ticket(self, number: int) -> tuple[int, dict[str, Any]] | None:
        found = self.board.message(number)
        return (number, {**found, "channel": CHANNEL}) if found else None

    def do_claim(self) -> None:
        picked = self._pick_ticket(unclaimed=True)
        if picked is not None:
            self.claim(*picked)

    def claim(self, number: int, message: dict[str, Any]) -> None:
        try:
            find_element(message["blocks"], render.ACTION_CLAIM)
        except LookupError:
            self.claimed.add(number)  # someone has it already
            return
        self._timed("claim", lambda: self.user.click(message, render.ACTION_CLAIM))
        self.claimed.add(number)
        self.mine.append(number)

    def do_reply(self) -> None:
        # Mostly one's own tickets; replying to someone else's waiting ticket claims it.
        if self.mine and self.rng.random() < 0.8:
            picked = self._ticket(self.rng.choice(self.mine))
        else:
            picked = self._pick_ticket()
        if picked is not None:
            self.reply(*picked)

    def reply(self, number: int, message: dict[str, Any]) -> None:
        before = self._current_modal_id()
        started = time.monotonic()
        self._timed("reply: open", lambda: self.user.click(message, render.ACTION_REPLY))
        view = self._shown("reply: modal shown", started, self._modal(modals.REPLY_CALLBACK, before))
        if view is None:
            return
        text: str | None = None
        if self.rng.random() < 0.6:
            template = self.rng.choice(REPLY_TEMPLATES)
            old_hash = view["hash"]
            started = time.monotonic()
            self._timed(
                "reply: template",
                lambda: self.user.pick(view["id"], modals.ACTION_PICK_TEMPLATE, template),
            )
            slack = self.user.slack
            shown = self._shown(
                "reply: template shown",
                started,
                lambda: slack.views[view["id"]] if slack.views[view["id"]]["hash"] != old_hash else None,
            )
            if shown is None:
                return
            view = shown
            if self.rng.random() < 0.3:
                text = _editor_text(view) + f"\nP.S. A word from {self.user.name}."
        else:
            text = f"Hello, {self.user.name} here: we are looking into request #{number} and will write soon."
        values = {_editor_block(view): text} if text is not None else {}
        answer = self._timed("reply: send", lambda: self.user.submit(view["id"], values))
        if answer.status == 200 and answer.json().get("response_action") != "errors":
            self.run.reply_sent()
            if number not in self.mine:
                self.mine.append(number)
        elif answer.status == 200:
            self.run.fail(f"{self.user.id} reply to #{number} refused: {answer.json().get('errors')}")

    def do_tag(self) -> None:
        picked = self._pick_ticket()
        if picked is not None:
            self.tag(*picked)

    def tag(self, number: int, message: dict[str, Any]) -> None:
        before = self._current_modal_id()
        started = time.monotonic()
        self._timed("tag: open", lambda: self.user.click(message, render.ACTION_TAG))
        view = self._shown("tag: modal shown", started, self._modal(modals.TAGS_CALLBACK, before))
        if view is None:
            return
        tags = ", ".join(self.rng.sample(["billing", "refund", "login", "bug", "vip", "shipping"], 2))
        self._timed("tag: save", lambda: self.user.submit(view["id"], {modals.NEW_TAGS_BLOCK: tags}))

    def do_resolve(self) -> None:
        if not self.mine:
            return
        picked = self._ticket(self.mine.pop(self.rng.randrange(len(self.mine))))
        if picked is not None:
            self.resolve(*picked)

    def resolve(self, number: int, message: dict[str, Any]) -> None:
        if number in self.mine:
            self.mine.remove(number)
        try:
            find_element(message["blocks"], render.ACTION_RESOLVE)
        except LookupError:
            return  # already resolved by someone else
        self._timed("resolve", lambda: self.user.click(message, render.ACTION_RESOLVE))

    def do_note(self) -> None:
        picked = self._pick_ticket()
        if picked is not None:
            self.note(*picked)

    def note(self, number: int, message: dict[str, Any]) -> None:
        text = f"Internal note from {self.user.name} on #{number}."
        self._timed("note in thread", lambda: self.user.write_in_thread(CHANNEL, message["ts"], text))

    def do_open(self) -> None:
        self._timed("/support open", lambda: self.user.command("open"))

    def do_mine(self) -> None:
        self._timed("/support mine", lambda: self.user.command("mine"))

    def do_ticket(self) -> None:
        numbers = self.board.numbers()
        if numbers:
            number = self.rng.choice(numbers)
            self._timed("/support ticket N", lambda: self.user.command(f"ticket {number}"))

    def do_oncall(self) -> None:
        self._timed("/oncall", lambda: self.user.command("", command="/oncall"))

    def do_stats(self) -> None:
        self._timed("/support stats", lambda: self.user.command("stats"))

    def do_home(self) -> None:
        slack = self.user.slack
        before = (slack.home.get(self.user.id) or {}).get("id")
        started = time.monotonic()
        self._timed("App Home: open", self.user.open_home)
        self._shown(
            "App Home: shown",
            started,
            lambda: (slack.home.get(self.user.id) or {}).get("id") not in (None, before),
        )


# -- a real team -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delay:
    """A human delay: at least `least` seconds, then on average `mean` more (exponential)."""

    least: float
    mean: float

    def draw(self, rng: random.Random) -> float:
        return self.least + rng.expovariate(1 / self.mean)


class RealisticTeam:
    """A real team's day at the desk, driven by the tickets rather than by a clock.

    For every new ticket seen in the channel, one person (the least busy, ties at random)
    plans to handle it: claims it after CLAIM (15 s + 75 s on average: tens of seconds to
    minutes), replies once after FIRST_REPLY (30 s + 90 s after the claim) and, for
    SECOND_REPLY_SHARE of tickets, again after SECOND_REPLY (60 s + 180 s); the reply is a
    template (60%, a third of those edited) or their own words. A TAG_SHARE of tickets is
    tagged and a NOTE_SHARE gets an internal note in its thread, at some time after the
    claim; every ticket is resolved RESOLVE (20 s + 60 s) after its last reply. Besides,
    each person looks something up every LOOK_EVERY seconds on average (`/support open`,
    `mine`, `ticket N`, managers `stats`, App Home); `activity` multiplies that rate with
    the mail's. Follow-up mails get no planned answer of their own: their ticket's replies
    are the answer. Each person does one thing at a time, so a busy person's plans slip.
    All delays are real seconds divided by the plan's speedup. At 200 mails an hour that
    is about 170 tickets, 240 replies and 100 lookups an hour; with the mail's thread posts
    about 440 channel posts an hour, one every 8 s against Slack's one a second.
    """

    CLAIM = Delay(15, 75)
    FIRST_REPLY = Delay(30, 90)
    SECOND_REPLY_SHARE = 0.4
    SECOND_REPLY = Delay(60, 180)
    TAG_SHARE = 0.3
    TAG = Delay(0, 60)
    NOTE_SHARE = 0.2
    NOTE = Delay(0, 120)
    RESOLVE = Delay(20, 60)
    LOOK_EVERY = 360.0
    # What a lookup is (relative weights); stats is for managers only.
    LOOKUPS: ClassVar[dict[str, int]] = {"open": 30, "mine": 30, "home": 25, "ticket": 10, "stats": 5}

    def __init__(self, agents: list[Agent], board: Board, run: LoadRun, rng: random.Random) -> None:
        self.agents = agents
        self.board = board
        self.run = run
        self.rng = rng
        self.scale = 1 / run.plan.speedup
        self._agendas: list[list[tuple[float, int, str, int]]] = [[] for _ in agents]
        self._cond = threading.Condition()
        self._seq = 0
        self.planned = 0
        self.done = 0

    def _later(self, delay: Delay) -> float:
        return delay.draw(self.rng) * self.scale

    def _add(self, who: int, at: float, action: str, number: int) -> None:
        self._seq += 1
        heapq.heappush(self._agendas[who], (at, self._seq, action, number))
        self.planned += 1

    def plan_ticket(self, number: int, now: float) -> None:
        with self._cond:
            least = min(len(a) for a in self._agendas)
            who = self.rng.choice([n for n, a in enumerate(self._agendas) if len(a) == least])
            claim = now + self._later(self.CLAIM)
            self._add(who, claim, "claim", number)
            reply = claim + self._later(self.FIRST_REPLY)
            self._add(who, reply, "reply", number)
            if self.rng.random() < self.SECOND_REPLY_SHARE:
                reply += self._later(self.SECOND_REPLY)
                self._add(who, reply, "reply", number)
            if self.rng.random() < self.TAG_SHARE:
                self._add(who, claim + self._later(self.TAG), "tag", number)
            if self.rng.random() < self.NOTE_SHARE:
                self._add(who, claim + self._later(self.NOTE), "note", number)
            self._add(who, reply + self._later(self.RESOLVE), "resolve", number)
            self._cond.notify_all()

    def watch(self, stop: threading.Event) -> None:
        """Plan each ticket as it appears in the channel."""
        seen = 0
        while not stop.wait(0.25 * min(1.0, self.scale * 4)):
            numbers = self.board.numbers()
            for number in numbers[seen:]:
                self.plan_ticket(number, time.monotonic())
            seen = len(numbers)

    def work(self, who: int, stop: threading.Event) -> None:
        agent = self.agents[who]
        look_every = self.LOOK_EVERY * self.scale / self.run.plan.activity
        kinds = [k for k in self.LOOKUPS if agent.manager or k != "stats"]
        weights = [self.LOOKUPS[k] for k in kinds]
        next_look = time.monotonic() + self.rng.expovariate(1 / look_every)
        agenda = self._agendas[who]
        while not stop.is_set():
            with self._cond:
                now = time.monotonic()
                due = min(next_look, agenda[0][0] if agenda else next_look)
                if due > now:
                    self._cond.wait(min(due - now, 0.5))
                    continue
                task = heapq.heappop(agenda) if agenda and agenda[0][0] <= next_look else None
            if task is None:
                next_look = time.monotonic() + self.rng.expovariate(1 / look_every)
                kind = self.rng.choices(kinds, weights)[0]
                self._act(agent, kind, getattr(agent, f"do_{kind}"))
                continue
            _, _, action, number = task
            picked = agent._ticket(number)
            if picked is None:
                self.run.fail(f"{agent.user.id} {action}: ticket #{number} not in the channel")
                continue
            self._act(agent, action, partial(getattr(agent, action), *picked))
            with self._cond:
                self.done += 1

    def _act(self, agent: Agent, kind: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # a broken step is a finding, not a reason to stop the desk
            self.run.fail(f"{agent.user.id} {kind}: {type(exc).__name__}: {exc}")

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [
            threading.Thread(target=self.watch, args=(stop,), name="team-watch"),
            *(
                threading.Thread(target=self.work, args=(n, stop), name=f"agent-{n}")
                for n in range(len(self.agents))
            ),
        ]


def _editor_input(view: dict[str, Any]) -> dict[str, Any]:
    return next(
        b
        for b in view["blocks"]
        if b.get("type") == "input" and (b.get("element") or {}).get("action_id") == modals.BODY_ACTION
    )


def _editor_block(view: dict[str, Any]) -> str:
    return str(_editor_input(view)["block_id"])


def _editor_text(view: dict[str, Any]) -> str:
    return str(_editor_input(view)["element"].get("initial_value") or "")


# -- the run ---------------------------------------------------------------------------------------


def add_staff(slack: SlackStandIn, plan: LoadPlan) -> None:
    for n, user in enumerate(plan.staff_ids()):
        slack.add_user(user, f"agent{n}", f"Agent {n} Staff", channels=(CHANNEL,))


def load_env(
    plan: LoadPlan, *, slack: SlackStandIn, imap: MailServer, smtp: SmtpCatcher, database_url: str
) -> dict[str, str]:
    return bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=database_url,
        smtp_port=smtp.port,
        SLACK_PACE_SECONDS=f"{plan.pace:.6f}",
        MANAGERS=",".join(plan.manager_ids()),
        TEMPLATES_DIR=str(PROJECT_ROOT / "templates"),
        # Surveys go out an hour after a resolution: in a real-time run they would mix with
        # the replies whose single delivery this checks.
        SURVEYS="false",
        LOG_LEVEL="WARNING",
    )


@contextmanager
def load_bot(
    plan: LoadPlan,
    workdir: Path,
    *,
    slack: SlackStandIn,
    imap: MailServer,
    smtp: SmtpCatcher,
    database_url: str,
) -> Iterator[BotProcess]:
    """`supportbot run` in its own process, as in production, so the load generator's
    threads do not share its interpreter lock; ready when it leads and watches the mailbox."""
    add_staff(slack, plan)
    env = load_env(plan, slack=slack, imap=imap, smtp=smtp, database_url=database_url)
    with BotProcess(env, workdir, name="load-bot") as bot:
        wait_until(lambda: bot.is_leader() and bot.health()["mailbox_connected"], timeout=30, what="the bot")
        time.sleep(0.5)  # let the watcher enter IDLE
        yield bot


def run_load(
    plan: LoadPlan,
    *,
    bot_url: str,
    slack: SlackStandIn,
    imap: Any,
    smtp: SmtpCatcher,
    factory: sessionmaker[Session],
    drain_timeout: float = 300.0,
) -> LoadRun:
    run = LoadRun(plan, plan_mails(plan))
    board = Board(slack)
    rng = random.Random(plan.seed + 1)
    managers = set(plan.manager_ids())
    agents = [
        Agent(
            SlackUser(bot_url, slack, user, f"agent{n}"),
            manager=user in managers,
            board=board,
            run=run,
            rng=random.Random(rng.random()),
        )
        for n, user in enumerate(plan.staff_ids())
    ]
    # Warm the bot's caches (auth.test, the staff list) the way the first click of the day does.
    agents[0].user.command("help")
    stop = threading.Event()
    team = (
        RealisticTeam(agents, board, run, random.Random(rng.random())) if plan.team == "realistic" else None
    )
    threads = (
        team.threads(stop)
        if team is not None
        else [threading.Thread(target=a.work, args=(stop,), name=f"agent-{n}") for n, a in enumerate(agents)]
    )
    for thread in threads:
        thread.start()
    try:
        _deliver_mail(run, imap)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    if team is not None:
        # Tickets that came late are still being worked on when the mail stops; say how much.
        run.team_planned, run.team_done = team.planned, team.done
    last_append = time.monotonic()
    expected_new = sum(1 for m in run.mails if m.parent is None)
    try:
        wait_until(
            lambda: (
                len(board.numbers()) >= expected_new
                and _count(factory, Message.direction == "in") >= len(run.mails)
                and _pending(factory) == 0
                and len(smtp.mails) >= _count(factory, Message.direction == "out")
            ),
            timeout=drain_timeout,
            interval=0.2,
            what="every ticket posted, the outbox drained and every reply mailed",
        )
    except AssertionError as exc:
        run.fail(str(exc))
    run.drain_seconds = time.monotonic() - last_append
    return run


def _deliver_mail(run: LoadRun, imap: Any) -> None:
    with imap.client() as client:
        started = time.monotonic()
        for mail in run.mails:
            delay = started + mail.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            run.append_lag = max(run.append_lag, -delay)
            run.appended_at[mail.index] = time.time()
            client.append("INBOX", mail.raw)
        run.span_seconds = time.monotonic() - started


def _pending(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(
            session.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "pending"))
            or 0
        )


def _count(factory: sessionmaker[Session], where: Any) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Message).where(where)) or 0)


# -- the verdict ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class Spread:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        return cls(
            len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99), max(values)
        )

    def ms(self) -> dict[str, float | int]:
        return {
            "n": self.count,
            "p50_ms": round(self.p50 * 1000),
            "p95_ms": round(self.p95 * 1000),
            "p99_ms": round(self.p99 * 1000),
            "max_ms": round(self.max * 1000),
        }


# The ack is what Slack waits for (3 s, then it retries); the rest is when the person sees it.
ANSWER_KINDS = ("reply: modal shown", "reply: template shown", "tag: modal shown", "App Home: shown")


@dataclass
class LoadReport:
    by_kind: dict[str, Spread]
    acks: Spread
    answers: Spread
    backlog: Spread  # APPEND → the post in Slack (ticket message, or follow-up in its thread)
    ingest: Spread  # APPEND → stored as a ticket or follow-up (the rest of the backlog is the outbox)
    tickets: int
    follow_ups: int
    posts: int  # posts to the channel (threads included), paced together
    min_gap: float
    tightest_window: float  # the shortest span of WINDOW consecutive channel writes, over (WINDOW-1)·pace
    replies_sent: int
    replies_mailed: int
    problems: list[str]
    # Per outbox kind: queued → delivered (new tickets' posts, thread posts, card edits...).
    outbox_waits: dict[str, Spread] = field(default_factory=dict)
    new_posts: Spread = field(default_factory=lambda: Spread.of([]))  # APPEND → post, new tickets only
    # Thread posts waiting together, for the question whether to merge them: how many times
    # a ticket came to have two or more waiting at once, and the most one ticket had.
    thread_overlaps: int = 0
    thread_most_waiting: int = 0

    def as_json(self, **extra: Any) -> str:
        return json.dumps(
            {
                **extra,
                "acks": self.acks.ms(),
                "answers": self.answers.ms(),
                "backlog": self.backlog.ms(),
                "ingest": self.ingest.ms(),
                "by_kind": {k: v.ms() for k, v in sorted(self.by_kind.items())},
                "tickets": self.tickets,
                "follow_ups": self.follow_ups,
                "channel_writes": self.posts,
                "min_gap_ms": round(self.min_gap * 1000, 1),
                "tightest_window_vs_pace": round(self.tightest_window, 3),
                "replies_sent": self.replies_sent,
                "replies_mailed": self.replies_mailed,
                "outbox_waits": {k: v.ms() for k, v in sorted(self.outbox_waits.items())},
                "new_ticket_posts": self.new_posts.ms(),
                "thread_overlaps": self.thread_overlaps,
                "thread_most_waiting": self.thread_most_waiting,
                "problems": self.problems,
            }
        )


# Long enough that one late request (its ticket read on a busy machine) cannot fake a burst.
WINDOW = 20


def check_load(
    run: LoadRun, *, slack: SlackStandIn, smtp: SmtpCatcher, factory: sessionmaker[Session]
) -> LoadReport:
    problems = list(run.failures)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for sample in run.samples:
        by_kind[sample.kind].append(sample.seconds)
    acks = [s.seconds for s in run.samples if s.kind not in ANSWER_KINDS]
    answers = [s.seconds for s in run.samples if s.kind in ANSWER_KINDS]

    # Every mail is exactly one inbound message: a new ticket, or a follow-up on its parent's.
    with factory() as session:
        inbound = session.execute(
            select(Message.message_id, Message.id, Ticket.number, Message.created_at)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.direction == "in")
        ).all()
        tickets = int(session.scalar(select(func.count()).select_from(Ticket)) or 0)
        outbound = (
            session.execute(select(Message.message_id).where(Message.direction == "out")).scalars().all()
        )
    by_message_id: dict[str, list[tuple[int, int]]] = defaultdict(list)
    stored_at: dict[str, float] = {}
    for message_id, row_id, number, created_at in inbound:
        by_message_id[_bare(message_id)].append((row_id, number))
        stored_at[_bare(message_id)] = created_at.timestamp()
    new_mails = [m for m in run.mails if m.parent is None]
    if tickets != len(new_mails):
        problems.append(f"{tickets} tickets for {len(new_mails)} new mails")
    if len(inbound) != len(run.mails):
        problems.append(f"{len(inbound)} inbound messages stored for {len(run.mails)} mails")
    number_of: dict[int, int] = {}
    row_of: dict[int, int] = {}
    for mail in run.mails:
        found = by_message_id.get(_bare(mail.message_id), [])
        if len(found) != 1:
            problems.append(f"mail {mail.index} stored {len(found)} times")
            continue
        row_of[mail.index], number_of[mail.index] = found[0]
    for mail in run.mails:
        if (
            mail.parent is not None
            and mail.index in number_of
            and mail.parent in number_of
            and number_of[mail.index] != number_of[mail.parent]
        ):
            problems.append(f"follow-up {mail.index} landed on #{number_of[mail.index]}, not its ticket")
    numbers_in_arrival = [number_of[m.index] for m in new_mails if m.index in number_of]
    if numbers_in_arrival != sorted(numbers_in_arrival) or len(set(numbers_in_arrival)) != len(new_mails):
        problems.append("ticket numbers do not follow arrival order")

    # In Slack: each ticket posted once, in number (so arrival) order; each follow-up once.
    posts = list(slack.posts[CHANNEL])
    # Slack's one-a-second limit is on posting to a channel; edits of its messages
    # (chat.update) have a lane and a pace of their own.
    channel_writes = sorted(
        c.at for c in slack.calls() if c.method == "chat.postMessage" and c.args.get("channel") == CHANNEL
    )
    posted_numbers: list[int] = []
    posted_at: dict[int, float] = {}
    thread_posts: Counter[int] = Counter()
    thread_posted_at: dict[int, float] = {}
    for post in posts:
        metadata = post.metadata or {}
        payload = metadata.get("event_payload") or {}
        if post.thread_ts is None and metadata.get("event_type") == render.TICKET_EVENT_TYPE:
            posted_numbers.append(int(payload["number"]))
            posted_at.setdefault(int(payload["number"]), float(post.ts))
        elif post.thread_ts and metadata.get("event_type") == render.MESSAGE_EVENT_TYPE:
            thread_posts[int(payload["message_id"])] += 1
            thread_posted_at.setdefault(int(payload["message_id"]), float(post.ts))
    doubled = [n for n, c in Counter(posted_numbers).items() if c > 1]
    if doubled:
        problems.append(f"tickets posted more than once: {doubled[:10]}")
    if set(posted_numbers) != set(number_of[m.index] for m in new_mails if m.index in number_of):
        problems.append(f"{len(set(posted_numbers))} tickets in the channel for {len(new_mails)} new mails")
    out_of_order = [(a, b) for a, b in pairwise(posted_numbers) if b <= a]
    if out_of_order:
        problems.append(f"ticket posts out of arrival order: {out_of_order[:5]}")
    for mail in run.mails:
        if mail.parent is not None and mail.index in row_of and thread_posts[row_of[mail.index]] != 1:
            problems.append(
                f"follow-up {mail.index} shown {thread_posts[row_of[mail.index]]} times in its thread"
            )

    backlog: list[float] = []
    new_posts: list[float] = []
    ingest = [
        stored_at[_bare(m.message_id)] - run.appended_at[m.index]
        for m in run.mails
        if _bare(m.message_id) in stored_at and m.index in run.appended_at
    ]
    for mail in run.mails:
        at = (
            posted_at.get(number_of.get(mail.index, -1))
            if mail.parent is None
            else thread_posted_at.get(row_of.get(mail.index, -1))
        )
        if at is not None and mail.index in run.appended_at:
            backlog.append(at - run.appended_at[mail.index])
            if mail.parent is None:
                new_posts.append(at - run.appended_at[mail.index])

    # Slack's pace: single gaps may shrink by network jitter, a run of writes may not.
    pace = run.plan.pace
    gaps = [b - a for a, b in pairwise(channel_writes)]
    min_gap = min(gaps) if gaps else 0.0
    windows = [
        (channel_writes[i + WINDOW - 1] - channel_writes[i]) / ((WINDOW - 1) * pace)
        for i in range(len(channel_writes) - WINDOW + 1)
    ]
    tightest = min(windows) if windows else float("inf")
    if tightest < 0.8:
        problems.append(
            f"{WINDOW} channel writes within {tightest * (WINDOW - 1) * pace * 1000:.0f} ms: "
            "faster than the pace"
        )

    # Every reply accepted from the modal went out by SMTP exactly once.
    mailed = Counter(_bare(str(message_from_bytes(m.raw)["Message-ID"])) for m in smtp.mails)
    if len(outbound) != run.replies_sent:
        problems.append(f"{len(outbound)} replies stored for {run.replies_sent} sent from the modal")
    for message_id in outbound:
        if mailed[_bare(message_id or "")] != 1:
            problems.append(f"reply {message_id} mailed {mailed[_bare(message_id or '')]} times")
    if sum(mailed.values()) != len(outbound):
        problems.append(f"{sum(mailed.values())} mails caught for {len(outbound)} replies")

    waits: dict[str, list[float]] = defaultdict(list)
    thread_spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    with factory() as session:
        for kind, ticket_id, created_at, delivered_at in session.execute(
            select(
                OutboxItem.kind, OutboxItem.ticket_id, OutboxItem.created_at, OutboxItem.delivered_at
            ).where(OutboxItem.status == "done", OutboxItem.delivered_at.is_not(None))
        ):
            waits[kind].append((delivered_at - created_at).total_seconds())
            if kind == SLACK_THREAD_MESSAGE and ticket_id is not None:
                thread_spans[ticket_id].append((created_at.timestamp(), delivered_at.timestamp()))
    overlaps, most = _waiting_together(thread_spans)

    return LoadReport(
        outbox_waits={k: Spread.of(v) for k, v in waits.items()},
        new_posts=Spread.of(new_posts),
        thread_overlaps=overlaps,
        thread_most_waiting=most,
        by_kind={k: Spread.of(v) for k, v in by_kind.items()},
        acks=Spread.of(acks),
        answers=Spread.of(answers),
        backlog=Spread.of(backlog),
        ingest=Spread.of(ingest),
        tickets=tickets,
        follow_ups=len(run.mails) - len(new_mails),
        posts=len(channel_writes),
        min_gap=min_gap,
        tightest_window=tightest,
        replies_sent=run.replies_sent,
        replies_mailed=sum(mailed.values()),
        problems=problems[:40],
    )


def _waiting_together(spans: dict[int, list[tuple[float, float]]]) -> tuple[int, int]:
    """How many times one ticket came to have two or more thread posts waiting (queued,
    not yet delivered) at once, and the most that ever waited together for one ticket."""
    overlaps = most = 0
    for intervals in spans.values():
        # A delivery at the instant another is queued is not waiting together: ends first.
        events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
        waiting = 0
        for _, step in events:
            waiting += step
            if step == 1 and waiting == 2:
                overlaps += 1
            most = max(most, waiting)
    return overlaps, most


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>")


def run_and_check(
    plan: LoadPlan,
    *,
    slack: SlackStandIn,
    imap: MailServer,
    database_url: str,
    workdir: Path,
    drain_timeout: float = 240.0,
) -> tuple[LoadRun, LoadReport, str]:
    """`plan` run against a bot of its own and checked: the run, the report, the bot's log."""
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    try:
        with (
            SmtpCatcher() as smtp,
            load_bot(plan, workdir, slack=slack, imap=imap, smtp=smtp, database_url=database_url) as bot,
        ):
            run = run_load(
                plan,
                bot_url=f"http://127.0.0.1:{bot.port}",
                slack=slack,
                imap=imap,
                smtp=smtp,
                factory=factory,
                drain_timeout=drain_timeout,
            )
            return run, check_load(run, slack=slack, smtp=smtp, factory=factory), bot.log()
    finally:
        engine.dispose()


def logged_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line]
