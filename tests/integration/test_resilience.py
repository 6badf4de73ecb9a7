"""Crashes, restarts and replicas: nothing lost, nothing doubled, in the database or in Slack."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import func, select

from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Message, Ticket
from tests.support.databases import backend
from tests.support.harness import CHANNEL, BotProcess, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def ticket_post_ids(slack) -> list[int]:
    return [
        m["metadata"]["event_payload"]["ticket_id"]
        for m in slack.messages(CHANNEL)
        if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket"
    ]


def assert_exactly_once(database_url: str, slack, expected: int) -> None:
    factory = make_sessionmaker(make_engine(database_url))
    with factory() as session:
        messages = session.scalar(select(func.count()).select_from(Message))
        keys = session.scalar(select(func.count(func.distinct(Message.dedupe_key))))
        tickets = session.scalars(select(Ticket.id).order_by(Ticket.id)).all()
    assert messages == keys == expected, "every mail stored once"
    assert len(tickets) == expected
    posted = ticket_post_ids(slack)
    assert len(posted) == len(set(posted)), "a ticket was posted twice"
    assert sorted(posted) == list(tickets), "every ticket posted"
    assert posted == sorted(posted), "posted in arrival order"


def test_sigkill_at_random_points_while_mail_arrives(imap, slack, database_url, tmp_path):
    total = 200
    rng = random.Random(20261122)
    mails = [customer_mail(n, subject=f"Crash round mail {n}") for n in range(total)]
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, BURST_THRESHOLD="100000")

    def deliver_mail() -> None:
        for start in range(0, total, 10):
            imap.append_many(mails[start : start + 10])
            time.sleep(0.05)

    sender = threading.Thread(target=deliver_mail, daemon=True)
    sender.start()
    kills = 0
    for round_no in range(6):
        bot = BotProcess(env, tmp_path, name=f"round{round_no}")
        bot.start()
        time.sleep(rng.uniform(0.3, 2.0))
        bot.kill()
        kills += 1
    sender.join(60)
    with BotProcess(env, tmp_path, name="final"):
        wait_until(lambda: len(ticket_post_ids(slack)) >= total, timeout=120, what="all posts")
        time.sleep(1.0)
    assert kills == 6
    assert_exactly_once(database_url, slack, total)


@pytest.mark.skipif(backend() != "postgresql", reason="replicas share a PostgreSQL database")
def test_two_replicas_never_double_ingest_and_take_over(imap, slack, database_url, tmp_path):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, BURST_THRESHOLD="100000")
    first = BotProcess(env, tmp_path, name="replica-a")
    second = BotProcess(env, tmp_path, name="replica-b")
    first.start()
    second.start()
    try:
        wait_until(lambda: first.is_leader() != second.is_leader(), what="exactly one leader")
        imap.append_many([customer_mail(n, subject=f"Replica mail {n}") for n in range(40)])
        wait_until(lambda: len(ticket_post_ids(slack)) >= 20, what="posts from the leader")
        leader, follower = (first, second) if first.is_leader() else (second, first)
        leader.kill()
        started = time.monotonic()
        wait_until(follower.is_leader, timeout=15, what="the follower to take over")
        takeover = time.monotonic() - started
        imap.append_many([customer_mail(n, subject=f"Replica mail {n}") for n in range(40, 60)])
        wait_until(lambda: len(ticket_post_ids(slack)) >= 60, timeout=60, what="all posts")
        time.sleep(1.0)
    finally:
        first.kill()
        second.kill()
    assert takeover < 10
    assert_exactly_once(database_url, slack, 60)


def test_uidvalidity_change_neither_loses_nor_doubles(any_imap, slack, database_url):
    if not hasattr(any_imap, "reset_uidvalidity"):
        pytest.skip("this IMAP server cannot change UIDVALIDITY")
    env = bot_env(
        slack_url=slack.base_url, imap=any_imap, database_url=database_url, BURST_THRESHOLD="100000"
    )
    old = [customer_mail(n, subject=f"Before {n}") for n in range(3)]
    any_imap.append_many(old)
    with running_bot(env):
        wait_until(lambda: len(ticket_post_ids(slack)) == 3, what="the first three")
    # The server renumbers the mailbox: same mails, new UIDs, plus one new mail.
    any_imap.reset_uidvalidity()
    any_imap.append(customer_mail(3, subject="After the renumbering"))
    with running_bot(env):
        wait_until(lambda: len(ticket_post_ids(slack)) == 4, what="the new mail")
        time.sleep(1.0)
    assert_exactly_once(database_url, slack, 4)


def test_sigterm_stops_the_bot_cleanly(imap, slack, database_url, tmp_path):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    bot = BotProcess(env, tmp_path, name="sigterm")
    bot.start()
    wait_until(bot.is_leader, what="leadership")
    started = time.monotonic()
    assert bot.terminate() == 0, bot.log()[-4000:]
    assert time.monotonic() - started < 15, bot.log()[-4000:]
    assert "supportbot stopping" in bot.log()
