"""Email in → Slack out, through real sockets: an IMAP server, the Slack stand-in and
the whole bot, as an operator would run it."""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select, update

from bot.clock import OffsetClock
from bot.mail import watcher
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import MailboxCheckpoint, Message, OutboxItem, Ticket
from bot.tickets import ingest_rows
from tests.support.block_kit import texts_of_type
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail, message_id_of

pytestmark = pytest.mark.timeout(120)


def ticket_posts(slack, channel: str = CHANNEL) -> list[dict]:
    return [
        m
        for m in slack.messages(channel)
        if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket"
    ]


def ticket_ids(slack) -> list[int]:
    return [m["metadata"]["event_payload"]["ticket_id"] for m in ticket_posts(slack)]


def mrkdwn_texts(blocks) -> list[str]:
    return texts_of_type(blocks, "mrkdwn")


def ticket_post_calls(slack, channel: str = CHANNEL) -> list:
    """The ticket posts as sent (not other posts, such as the morning summary in business hours)."""
    return [
        c
        for c in slack.calls("chat.postMessage")
        if c.args.get("channel") == channel
        and c.status == 200
        and "supportbot_ticket" in json.dumps(c.args.get("metadata") or "")
    ]


def test_new_mail_becomes_exactly_one_ticket_post(any_imap, slack, database_url, tmp_path):
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url)
    with running_bot(env):
        any_imap.append(customer_mail(1, subject="Cannot log in", sender_name="Ada Lovelace"))
        wait_until(lambda: ticket_posts(slack), what="the ticket post")
        time.sleep(1.0)  # room for a wrong second post to show up
    posts = ticket_posts(slack)
    assert len(posts) == 1
    post = posts[0]
    assert "Cannot log in" in post["text"]
    assert "Ada Lovelace" in json.dumps(post["blocks"])
    ticket_id = post["metadata"]["event_payload"]["ticket_id"]
    actions = next(b for b in post["blocks"] if b["type"] == "actions")
    buttons = [e for e in actions["elements"] if e["type"] == "button"]
    assert {e["action_id"]: e["value"] for e in buttons} == {
        "ticket_claim": str(ticket_id),
        "ticket_reply": str(ticket_id),
        "ticket_tag": str(ticket_id),
        "ticket_resolve": str(ticket_id),
    }
    factory = make_sessionmaker(make_engine(database_url))
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.slack_ts == post["ts"]
        message = session.scalars(select(Message).where(Message.ticket_id == ticket_id)).one()
        assert message.direction == "in"
        assert b"Subject: Cannot log in" in message.raw, "the raw source is kept"


def test_follow_up_lands_in_the_thread_and_reopens_the_ticket(any_imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url)
    first = customer_mail(1, subject="Invoice is wrong")
    factory = make_sessionmaker(make_engine(database_url))
    with running_bot(env):
        any_imap.append(first)
        post = wait_until(lambda: ticket_posts(slack), what="the ticket post")[0]
        ticket_id = post["metadata"]["event_payload"]["ticket_id"]
        with factory.begin() as session:
            session.execute(update(Ticket).where(Ticket.id == ticket_id).values(status="resolved"))

        # A reply from the customer's mail client: threaded by In-Reply-To.
        any_imap.append(
            customer_mail(
                2,
                sender="customer1@example.org",
                in_reply_to=message_id_of(first),
                subject="Re: Invoice is wrong",
                body="Still wrong, see attached.\n",
            )
        )
        wait_until(lambda: len(slack.thread(CHANNEL, post["ts"])) >= 2, what="the thread reply")
        # A message that only carries the ticket token (new Message-ID, no headers to thread by).
        number = post["metadata"]["event_payload"]["number"]
        any_imap.append(
            customer_mail(3, sender="customer1@example.org", subject=f"About [#{number}]", body="Any news?\n")
        )
        wait_until(lambda: len(slack.thread(CHANNEL, post["ts"])) >= 3, what="the token follow-up")
        time.sleep(0.5)
    assert len(ticket_posts(slack)) == 1, "follow-ups must not open tickets"
    replies = slack.thread(CHANNEL, post["ts"])[1:]
    assert "Still wrong" in json.dumps(replies[0]["blocks"])
    assert "Any news?" in json.dumps(replies[1]["blocks"])
    with factory() as session:
        assert session.get(Ticket, ticket_id).status == "open"
        assert session.scalar(select(func.count()).select_from(Message)) == 3


def test_mail_read_elsewhere_is_still_ingested_and_left_unread(any_imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url)
    seen_uid = any_imap.append(customer_mail(1, subject="Opened in webmail"), flags=[b"\\Seen"])
    unseen_uid = any_imap.append(customer_mail(2, subject="Not opened yet"))
    with running_bot(env):
        wait_until(lambda: len(ticket_posts(slack)) == 2, what="both tickets")
    texts = [p["text"] for p in ticket_posts(slack)]
    assert "Opened in webmail" in texts[0] and "Not opened yet" in texts[1]
    with IMAPClient(any_imap.host, port=any_imap.port, ssl=False) as client:
        client.login(any_imap.user, any_imap.password)
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([seen_uid, unseen_uid])
    assert b"\\Seen" in flags[seen_uid]
    assert b"\\Seen" not in flags[unseen_uid], "the bot must not mark mail as read"


def test_mrkdwn_in_email_is_shown_not_acted_on(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    hostile = "<!channel> <!here> <@U0BOSS> <http://evil.example|click> & more"
    with running_bot(env):
        imap.append(customer_mail(1, subject=hostile, sender_name="<!everyone>", body=f"{hostile}\n"))
        wait_until(lambda: ticket_posts(slack), what="the ticket post")
    call = ticket_post_calls(slack)[0]
    # Slack acts on markup in mrkdwn text (and the fallback text); plain_text is shown as is.
    interpreted = [call.args.get("text", ""), *mrkdwn_texts(call.args.get("blocks"))]
    sent = "\n".join(interpreted)
    for token in ("<!channel>", "<!here>", "<!everyone>", "<@U0BOSS>", "<http://evil"):
        assert token not in sent, f"{token} reached Slack unescaped"
    assert "&lt;!channel&gt;" in sent and "&amp; more" in sent
    plain = [t for t in texts_of_type(call.args.get("blocks"), "plain_text")]
    assert any("<!channel>" in t for t in plain), "the header shows the subject as written"


def test_unreadable_email_is_kept_flagged_and_announced(any_imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url)
    garbage = b"\x00\x01\x02 not an email at all \xff\xfe"
    with running_bot(env):
        garbage_uid = any_imap.append(garbage)
        any_imap.append(customer_mail(2, subject="A normal one after it"))
        wait_until(lambda: len(ticket_posts(slack)) == 2, what="both tickets")
    first, second = ticket_posts(slack)
    assert "could not be read" in json.dumps(first["blocks"])
    assert "A normal one after it" in second["text"]
    # The raw source is kept byte for byte as the server serves it, which is not always
    # what was appended: an IMAP literal cannot carry NUL, so Dovecot sends 0x80 in its
    # place (pymap sends the NUL anyway).
    with any_imap.client() as client:
        client.select_folder("INBOX", readonly=True)
        served = client.fetch([garbage_uid], ["BODY.PEEK[]"])[garbage_uid][b"BODY[]"]
    assert b" not an email at all \xff\xfe" in served
    factory = make_sessionmaker(make_engine(database_url))
    with factory() as session:
        ticket = session.get(Ticket, first["metadata"]["event_payload"]["ticket_id"])
        assert ticket.malformed
        message = session.scalars(select(Message).where(Message.ticket_id == ticket.id)).one()
        assert message.raw == served and message.parse_error


def test_backlog_is_announced_once_then_posted_oldest_first(any_imap, slack, database_url):
    any_imap.append_many([customer_mail(n, subject=f"Weekend mail {n:02d}") for n in range(25)])
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url, BURST_THRESHOLD="20")
    with running_bot(env):
        wait_until(lambda: len(ticket_posts(slack)) == 25, what="25 tickets", timeout=60)
    posts = slack.messages(CHANNEL)
    assert "25 new emails" in posts[0]["text"]
    assert [p["text"].split(" —")[0] for p in posts[1:]] == [
        f"#{n + 1} Weekend mail {n:02d}" for n in range(25)
    ]


def test_rate_limits_and_an_outage_delay_but_never_drop_or_reorder(imap, slack, database_url):
    """A 429 storm, then a five-minute Slack outage (in the bot's time: the clock is moved
    on while Slack is down, so the test does not sleep for five minutes)."""
    clock = OffsetClock()
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, BURST_THRESHOLD="1000")
    slack.fail_next("chat.postMessage", status=429, retry_after=1, times=4)
    with running_bot(env, clock=clock):
        imap.append_many([customer_mail(n, subject=f"Storm {n}") for n in range(3)])
        wait_until(lambda: len(ticket_posts(slack)) == 3, what="posts after the 429s", timeout=30)
        limited = [c for c in slack.calls("chat.postMessage") if c.status == 429]
        assert len(limited) == 4
        # Retry-After was honoured: no try came sooner than a second after a 429.
        tries = slack.calls("chat.postMessage")
        for before, after in itertools.pairwise(tries):
            if before.status == 429:
                assert after.at - before.at >= 0.9

        slack.set_down(True)
        imap.append_many([customer_mail(n, subject=f"Outage {n}") for n in range(3, 8)])
        for _ in range(10):  # five minutes of bot time, in 30 s steps
            time.sleep(0.3)
            clock.jump_to(clock.now() + timedelta(seconds=30))
        assert len(ticket_posts(slack)) == 3
        failed = [c for c in slack.calls("chat.postMessage") if c.status >= 500]
        assert failed, "the bot kept trying during the outage"
        slack.set_down(False)
        clock.jump_to(clock.now() + timedelta(seconds=61))  # past the longest backoff
        wait_until(lambda: len(ticket_posts(slack)) == 8, what="all posts after the outage", timeout=30)
    subjects = [p["text"].split(" —")[0].split(" ", 1)[1] for p in ticket_posts(slack)]
    assert subjects == [f"Storm {n}" for n in range(3)] + [f"Outage {n}" for n in range(3, 8)]


def test_a_crash_between_posting_and_recording_does_not_post_twice(imap, slack, database_url):
    """The previous process posted the ticket, then died before writing down the ts."""
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    factory = make_sessionmaker(make_engine(database_url))
    slack.set_down(True)  # the first run never reaches Slack, leaving the post pending
    with running_bot(env):
        imap.append(customer_mail(1, subject="Posted before the crash"))
        wait_until(lambda: _pending_post(factory), what="a pending ticket post")
    slack.set_down(False)
    item = _pending_post(factory)
    # What the dead process did: its post reached Slack, its bookkeeping did not.
    slack.post_as_user(
        CHANNEL,
        "U0BOT",
        "#1 Posted before the crash",
        metadata={
            "event_type": "supportbot_ticket",
            "event_payload": {"ticket_id": item.ticket_id, "number": 1, "outbox_id": item.id},
        },
    )
    with running_bot(env):
        wait_until(lambda: _done(factory, item.id), what="the row to be settled")
    assert len(ticket_posts(slack)) == 1
    assert not [c for c in slack.calls("chat.postMessage") if c.status == 200]
    with factory() as session:
        ticket = session.get(Ticket, item.ticket_id)
        assert ticket.slack_ts == ticket_posts(slack)[0]["ts"]


def _pending_post(factory) -> OutboxItem | None:
    with factory() as session:
        item = session.scalars(
            select(OutboxItem).where(OutboxItem.kind == "slack.ticket_post", OutboxItem.attempts > 0)
        ).first()
        if item is not None:
            session.expunge(item)
        return item


def _done(factory, item_id: int) -> bool:
    with factory() as session:
        return session.get(OutboxItem, item_id).status == "done"


def test_a_mail_that_cannot_be_stored_holds_up_nothing(any_imap, slack, database_url, monkeypatch):
    """One mail of a backlog batch makes the database refuse the batch: it is set aside
    (kept raw, flagged, announced), the others become tickets once, and the checkpoint
    moves past all of them."""
    message_row = ingest_rows.message_row

    def refuse_poison(batch, message):
        parsed = message.mail.parsed
        if parsed is not None and parsed.subject == "Poison":
            raise ValueError("refused")
        return message_row(batch, message)

    monkeypatch.setattr(ingest_rows, "message_row", refuse_poison)
    subjects = [f"Batch mail {n}" for n in range(6)]
    subjects[3] = "Poison"
    uids = any_imap.append_many([customer_mail(n, subject=s) for n, s in enumerate(subjects)])
    env = bot_env(slack_url=slack.base_url, imap=any_imap, database_url=database_url, BURST_THRESHOLD="1000")
    with running_bot(env):
        wait_until(lambda: len(ticket_posts(slack)) == 6, what="six tickets")
        time.sleep(0.5)
    posts = ticket_posts(slack)
    assert len(posts) == 6
    assert "could not be read" in json.dumps(posts[3]["blocks"])
    assert [p["text"].split(" —")[0] for i, p in enumerate(posts) if i != 3] == [
        f"#{n + 1} Batch mail {n}" for n in range(6) if n != 3
    ]
    factory = make_sessionmaker(make_engine(database_url))
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 6
        assert session.scalar(select(func.count()).select_from(Ticket).where(Ticket.malformed)) == 1
        assert session.scalars(select(MailboxCheckpoint.last_uid)).one() == max(uids)


class _SizedMailbox:
    """Just enough of IMAPClient for planning FETCH batches."""

    def __init__(self, sizes: dict[int, int]) -> None:
        self.sizes = sizes

    def fetch(self, uids, items):
        assert items == ["RFC822.SIZE"]
        return {uid: {b"RFC822.SIZE": self.sizes[uid]} for uid in uids}


def test_backlogs_are_fetched_in_batches_bounded_in_count_and_bytes(monkeypatch):
    monkeypatch.setattr(watcher, "_FETCH_BATCH_BYTES", 1000)
    few = list(range(1, 11))
    assert watcher._fetch_batches(_SizedMailbox({}), few) == [few], "no size lookup for a few mails"
    sizes = {uid: 10 for uid in range(1, 1201)}
    sizes[7] = 5000  # larger than a batch on its own
    batches = watcher._fetch_batches(_SizedMailbox(sizes), list(sizes))
    assert [uid for batch in batches for uid in batch] == list(sizes)
    assert [7] in batches
    assert all(
        len(b) <= watcher._FETCH_BATCH and sum(sizes[u] for u in b) <= 1000 for b in batches if b != [7]
    )
