"""/metrics after a scripted night: the figures Prometheus reads match what happened.

The whole bot runs against the stand-ins (IMAP, SMTP, Slack); the page is scraped over
HTTP and read with prometheus_client's own parser, as Prometheus would.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bot.clock import OffsetClock
from bot.outbox.queue import SLACK_PAGE, SLACK_TICKET_POST, SMTP_SEND
from bot.sandbox.imap_server import PymapServer, free_port
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack.paging import ACTION_ACK, step_effects
from bot.storage.db import transaction
from bot.storage.models import OutboxItem, Page, Ticket
from bot.tickets.replies import send_reply
from rota import paging
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.night_rota import ADA, BOB, MAY, NIGHT, rota_with_ada_on_call, urgent_ticket
from tests.support.slack_requests import SlackUser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TOKEN = "metrics-token-0123456789"
MAILS = 5


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; a sample missing from the page fails the test."""
    return samples[(name, tuple(sorted(labels.items())))]


def summed(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[tuple[SlackStandIn, PymapServer, SmtpCatcher]]:
    smtp = SmtpCatcher(free_port()).start()
    try:
        with SlackStandIn(channels=(CHANNEL,)) as slack, PymapServer(tmp_path / "imap") as imap:
            for user, name in ((ADA, "ada"), (BOB, "bob"), (MAY, "may")):
                slack.add_user(user, name, name.title(), channels=(CHANNEL,))
            yield slack, imap, smtp
    finally:
        smtp.stop()


def test_metrics_after_a_night_of_mail_a_reply_a_page_and_a_slack_outage(stand_ins, database_url):
    slack, imap, smtp = stand_ins
    clock = OffsetClock()
    clock.jump_to(NIGHT)  # after hours, Ada on call: real time flows from there
    env = bot_env(
        slack_url=slack.base_url, imap=imap, database_url=database_url, smtp_port=smtp.port, MANAGERS=MAY
    )
    with running_bot(env, clock=clock) as bot:
        rota_with_ada_on_call(bot.factory, bot.settings)
        metrics_url = f"{bot.url}/metrics"

        # Mail arrives while Slack answers 500 for a few seconds: posts wait and are retried.
        slack.fail_next(status=500, times=100_000)
        imap.append_many([customer_mail(n, subject=f"Printer jam {n}") for n in range(MAILS)])
        wait_until(
            lambda: len([c for c in slack.calls() if c.status == 500]) >= 2,
            what="failed posts during the outage",
        )
        time.sleep(2)
        slack.clear_faults()
        wait_until(
            lambda: _posted_tickets(bot) == MAILS, timeout=60, what="every ticket posted after the outage"
        )

        # An agent replies to the first ticket: the mail goes out by SMTP.
        with transaction(bot.factory) as session:
            first = session.scalar(select(Ticket.id).order_by(Ticket.id))
            assert first is not None
            send_reply(
                session, ticket_id=first, agent_id=ADA, agent_name="Ada", text="On it.",
                now=clock.now(), settings=bot.settings,
            )  # fmt: skip
        wait_until(lambda: len(smtp.mails) == 1, what="the reply mailed")

        # An urgent ticket pages Ada, who acknowledges from the page DM.
        ticket_id = urgent_ticket(bot.factory, n=99, at=clock.now())
        with transaction(bot.factory) as session:
            step = paging.start_page(session, ticket_id=ticket_id, now=clock.now(), settings=bot.settings)
            assert step is not None
            step_effects(session, bot.settings, step, clock.now())
        dm = wait_until(
            lambda: [m for m in slack.dms(ADA) if "Urgent ticket" in m.get("text", "")], what="the page DM"
        )[-1]
        answer = SlackUser(bot.url, slack, ADA).click({**dm, "channel": slack.dm_channels[ADA]}, ACTION_ACK)
        assert answer.status == 200
        wait_until(lambda: _acknowledged(bot), what="the page acknowledged")
        wait_until(lambda: _outbox_idle(bot), timeout=30, what="the outbox drained")

        samples = scrape(metrics_url)
        with bot.factory() as session:
            posts = session.scalar(
                select(func.count()).where(OutboxItem.kind == SLACK_TICKET_POST, OutboxItem.status == "done")
            )
            tried_posts = session.scalar(
                select(func.sum(OutboxItem.attempts)).where(OutboxItem.kind == SLACK_TICKET_POST)
            )
            page_dms = session.scalar(select(func.count()).where(OutboxItem.kind == SLACK_PAGE))

    assert value(samples, "supportbot_mails_ingested_total", outcome="new_ticket") == MAILS
    assert ("supportbot_mails_ingested_total", (("outcome", "follow_up"),)) not in samples
    # Every ticket post was delivered once; the failed tries during the outage were retried.
    assert value(samples, "supportbot_outbox_deliveries_total", kind=SLACK_TICKET_POST) == posts == MAILS + 1
    retried = value(samples, "supportbot_outbox_retries_total", kind=SLACK_TICKET_POST)
    assert retried >= 1
    assert retried == tried_posts - posts
    assert value(samples, "supportbot_outbox_deliveries_total", kind=SMTP_SEND) == 1
    assert value(samples, "supportbot_outbox_deliveries_total", kind=SLACK_PAGE) == page_dms == 1
    assert summed(samples, "supportbot_outbox_failed_total") == 0
    assert value(samples, "supportbot_mail_to_slack_delay_seconds_count") == MAILS + 1
    # The outage held the first posts back for at least the two seconds Slack was down.
    assert value(samples, "supportbot_mail_to_slack_delay_seconds_bucket", le="1.0") < MAILS
    assert value(samples, "supportbot_leader") == 1
    assert value(samples, "supportbot_imap_connected") == 1
    assert value(samples, "supportbot_smtp_connected") == 1
    assert value(samples, "supportbot_pages_sent_total") == 1
    assert value(samples, "supportbot_page_acknowledge_seconds_count") == 1
    assert value(samples, "supportbot_listener_ack_seconds_count", listener=ACTION_ACK) == 1
    assert value(samples, "supportbot_surveys_sent_total") == 0
    assert summed(samples, "supportbot_outbox_backlog") == 0
    assert summed(samples, "supportbot_outbox_failed_items") == 0
    # No unbounded labels: every lane label is a configured channel's lane, "dm" or "smtp".
    lanes = {dict(labels).get("lane") for (name, labels) in samples if name.startswith("supportbot_outbox_b")}
    assert lanes <= {None, f"slack:{CHANNEL}", f"slack:{CHANNEL}:updates", "dm", "smtp"}


def test_a_backlog_is_counted_per_lane_with_direct_messages_together(stand_ins, database_url):
    slack, imap, smtp = stand_ins
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, smtp_port=smtp.port)
    slack.set_down(True)
    with running_bot(env) as bot:
        imap.append_many([customer_mail(n) for n in range(3)])
        wait_until(lambda: _pending(bot) >= 3, what="posts waiting")
        samples = scrape(f"{bot.url}/metrics")
    assert value(samples, "supportbot_outbox_backlog", lane=f"slack:{CHANNEL}") == 3


def test_with_a_token_metrics_are_served_on_their_own_port_to_the_bearer_only(stand_ins, database_url):
    slack, imap, smtp = stand_ins
    env = bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=database_url,
        smtp_port=smtp.port,
        METRICS_PORT="0",
        METRICS_TOKEN=TOKEN,
    )
    with running_bot(env) as bot:
        assert bot.metrics_http is not None
        url = f"http://127.0.0.1:{bot.metrics_http.port}/metrics"
        for header in (None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
            request = urllib.request.Request(url)
            if header is not None:
                request.add_header("Authorization", header)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 401
            assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
        assert value(scrape(url, TOKEN), "supportbot_leader") == 1
        # Not on the main port, where Slack and the public pages are served.
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{bot.url}/metrics", timeout=10)
        assert missing.value.code == 404


def _posted_tickets(bot) -> int:
    with bot.factory() as session:
        return int(session.scalar(select(func.count()).where(Ticket.slack_ts.is_not(None))) or 0)


def _acknowledged(bot) -> bool:
    with bot.factory() as session:
        return session.scalar(select(func.count()).where(Page.acknowledged_at.is_not(None))) == 1


def _pending(bot) -> int:
    with bot.factory() as session:
        return int(session.scalar(select(func.count()).where(OutboxItem.status == "pending")) or 0)


def _outbox_idle(bot) -> bool:
    return _pending(bot) == 0
