"""Where the time of email-to-Slack goes: a timestamp at each step of every mail.

Runs the bot as bench_ingest_latency (or bench_page_latency, with `page`) does, with the
watcher's, the outbox workers' and the triage worker's steps wrapped to record when they
start and end, and prints, per step, the median and 95th percentile of its time since the
mail's APPEND began. Wrapping costs a few microseconds per step; it is for finding where
the time goes, not for the figures (those are the benchmarks').

    .venv/bin/python -m benchmarks.profile_ingest [count] [pymap|dovecot] [ingest|page]
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from imapclient import IMAPClient
from slack_sdk import WebClient

import bot.mail.watcher as watcher_module
import bot.outbox.worker as worker_module
import bot.tickets.triage_worker as triage_module
from benchmarks._setup import (
    FLOOR_GAP_SECONDS,
    ON_CALL,
    fresh_sqlite,
    mail_server,
    percentile,
    publish_rota,
    tuesday_night_in_rome,
    urgency_rules,
    wait_for_idle,
)
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import transaction
from bot.storage.sqlite_writes import WriteQueue
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail

_events: list[tuple[float, str, str]] = []
_lock = threading.Lock()


def mark(label: str) -> None:
    with _lock:
        _events.append((time.monotonic(), threading.current_thread().name, label))


def wrap(
    owner: Any,
    name: str,
    label: str,
    *,
    start: bool = False,
    describe: Callable[..., str] | None = None,
    start_describe: Callable[..., str] | None = None,
) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        if start:
            mark(f"{label}{start_describe(*args, **kwargs) if start_describe else ''} start")
        result = original(*args, **kwargs)
        mark(f"{label}{describe(result, *args) if describe else ''}")
        return result

    setattr(owner, name, traced)


def install() -> None:
    spoke = watcher_module._server_spoke

    def server_spoke(client: IMAPClient, timeout: float) -> bool:
        said = spoke(client, timeout)
        if said:
            mark("IDLE: server spoke")
        return said

    watcher_module._server_spoke = server_spoke  # type: ignore[assignment]
    wrap(watcher_module.MailboxWatcher, "_idle", "IDLE done")
    wrap(watcher_module.MailboxWatcher, "sync", "sync", start=True, describe=lambda n, *a: f" end ({n} new)")
    wrap(watcher_module, "load_checkpoint", "checkpoint read")
    wrap(IMAPClient, "search", "UID SEARCH", describe=lambda r, *a: f" ({len(r)})")
    wrap(IMAPClient, "fetch", "FETCH")
    wrap(IMAPClient, "idle", "IDLE sent")
    wrap(watcher_module, "prepare_mail", "parsed")
    wrap(watcher_module, "store_mails", "rows written", start=True)
    wrap(watcher_module, "notify_workers", "committed, workers notified")
    wrap(worker_module.OutboxWorker, "run_once", "outbox pass", start=True)
    wrap(worker_module.OutboxWorker, "_lane_picks", "lanes read", describe=lambda r, *a: f" ({len(r)})")
    wrap(worker_module.OutboxWorker, "_attempt", "attempt", start=True)
    wrap(triage_module.TriageWorker, "run_once", "triage", start=True, describe=lambda r, *a: f" ({len(r)})")
    wrap(WriteQueue, "acquire", "write lock", start=True, describe=lambda got, *a: "" if got else " (none)")
    wrap(WriteQueue, "release", "write lock released")
    wrap(
        WebClient,
        "api_call",
        "Slack",
        start=True,
        start_describe=lambda self, method, *a, **k: f" {method}",
        describe=lambda r, self, method, *a, **k: f" {method} answered",
    )


def report(appends: list[float], arrivals: list[float]) -> None:
    """Per step (label and thread), its first occurrence after each APPEND: median and p95."""
    per_step: dict[tuple[str, str], list[float]] = defaultdict(list)
    counts: dict[tuple[str, str], list[int]] = defaultdict(list)
    bounds = [*appends[1:], float("inf")]
    for started, ends in zip(appends, bounds, strict=True):
        seen: dict[tuple[str, str], int] = defaultdict(int)
        window = [e for e in _events if started <= e[0] < ends]
        # Before the IDLE wake-up the workers only poll (every 0.5 s): what follows it is the mail's.
        woke = next((at for at, _, label in window if label == "IDLE: server spoke"), started)
        for at, thread, label in window:
            if at >= woke:
                key = (label, thread)
                if seen[key] == 0:
                    per_step[key].append(at - started)
                seen[key] += 1
        for key, n in seen.items():
            counts[key].append(n)
    rows = sorted(per_step.items(), key=lambda kv: percentile(kv[1], 50))
    print(f"  {'step':44} {'thread':16} {'p50':>7} {'p95':>7} {'per mail':>8} {'mails':>5}")
    for (label, thread), values in rows:
        per_mail = sum(counts[(label, thread)]) / len(appends)
        print(
            f"  {label:44} {thread[:16]:16} {percentile(values, 50) * 1000:7.0f}"
            f" {percentile(values, 95) * 1000:7.0f} {per_mail:8.1f} {len(values):5}"
        )
    lat = [a - s for s, a in zip(appends, arrivals, strict=True)]
    p50, p95 = percentile(lat, 50) * 1000, percentile(lat, 95) * 1000
    print(f"  {'at the Slack stand-in':44} {'':16} {p50:7.0f} {p95:7.0f}")


def main(count: int, server: str, what: str) -> None:
    install()
    with (
        fresh_sqlite() as (url, tmp),
        mail_server(server, tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
        overrides = {"SLACK_PACE_SECONDS": "1.0"}
        clock = None
        if what == "page":
            slack.add_user(ON_CALL, "ada", "Ada", channels=(CHANNEL,))
            overrides["URGENCY_RULES_FILE"] = str(urgency_rules(tmp))
            clock = tuesday_night_in_rome()
        env = bot_env(slack_url=slack.base_url, imap=imap, database_url=url, **overrides)
        appends: list[float] = []
        arrivals: list[float] = []
        with running_bot(env, clock=clock) as bot:
            if what == "page":
                with transaction(bot.factory) as session:
                    publish_rota(session, bot, clock)  # type: ignore[arg-type]
            wait_for_idle(bot)

            def arrived() -> list[float]:
                if what == "ingest":
                    return [c.at for c in slack.calls("chat.postMessage") if c.args.get("channel") == CHANNEL]
                return [
                    c.at
                    for c in slack.calls("chat.postMessage")
                    if "Urgent ticket" in str(c.args.get("text"))
                ]

            _events.clear()
            for n in range(count):
                before = len(arrived())
                started = time.monotonic()
                appends.append(started)
                subject = f"Outage in region {n}" if what == "page" else f"Latency {n}"
                imap.append(customer_mail(n, subject=subject))
                at = wait_until(lambda b=before: len(arrived()) > b and arrived()[b], timeout=30, what="post")
                arrivals.append(at)
                time.sleep(max(0.0, at + FLOOR_GAP_SECONDS - time.monotonic()))
            time.sleep(1.0)  # the last mail's after-effects
    print(f"{what}: {count} mails, {server}; ms since APPEND began (first occurrence per mail)")
    report(appends, arrivals)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20,
        sys.argv[2] if len(sys.argv) > 2 else "pymap",
        sys.argv[3] if len(sys.argv) > 3 else "ingest",
    )
