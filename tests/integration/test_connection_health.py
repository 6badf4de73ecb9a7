"""Connection health in Slack, against real servers over real sockets: a mailbox down for
ten minutes, a mail server refusing the login, a restart in the middle of an outage, and
`/support status` through a signed slash command.

The bot's clock is frozen and moved on by the test, a minute at a time with the scheduler's
health tick run by hand at each step, as the leader's scheduler runs it every half minute.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FrozenClock
from bot.health.connections import Service
from bot.sandbox.imap_server import PymapServer, free_port
from tests.integration.test_faults_servers import deliver_to_maildir, queue_reply, ticket_subjects
from tests.integration.test_secrets import RefusingSmtp
from tests.support.connection_health import (
    MANAGERS,
    OUTAGE,
    RECOVERY,
    error_kind,
    failing,
    health_row,
    minutes_pass,
    notices,
    once_each,
    outage_told_after_ten_minutes,
    quiet,
)
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser
from tests.support.socket_mode import SocketModeStandIn, SocketUser

pytestmark = pytest.mark.timeout(240)

START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def env_for(slack, imap, database_url: str, **overrides: str) -> dict[str, str]:
    return bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=database_url,
        MANAGERS=",".join(MANAGERS),
        **overrides,
    )


def test_a_mailbox_down_for_ten_minutes_is_told_once_and_its_mail_arrives_once(any_imap, slack, database_url):
    imap = any_imap
    clock = FrozenClock(START)
    with running_bot(env_for(slack, imap, database_url), clock=clock) as bot:
        imap.append(customer_mail(0, subject="Before the outage"))
        wait_until(lambda: ticket_subjects(slack) == ["Before the outage"], what="the first ticket")

        imap.stop()
        # First the IDLE drops, then each reconnection is refused.
        wait_until(lambda: error_kind(bot, Service.MAILBOX) == "unreachable", what="the refusals recorded")
        deliver_to_maildir(imap, [customer_mail(n, subject=f"During the outage {n}") for n in (1, 2)])
        text = outage_told_after_ten_minutes(bot, clock, slack)
        assert "The support mailbox is not working" in text and "cannot be reached" in text
        assert f"`IMAP_HOST` and `IMAP_PORT` (now {imap.host}:{imap.port})" in text

        imap.start()
        wait_until(lambda: once_each(slack, RECOVERY), timeout=90, what="the recovery told")
        wait_until(lambda: len(ticket_subjects(slack)) == 3, timeout=60, what="the outage's mail")
        assert "after 10 min" in notices(slack, RECOVERY)[CHANNEL][0]
        minutes_pass(bot, clock, 5)
        wait_until(lambda: quiet(bot), what="the outbox idle")

    assert once_each(slack, OUTAGE) and once_each(slack, RECOVERY)
    subjects = ticket_subjects(slack)
    assert subjects[0] == "Before the outage"
    assert sorted(subjects[1:]) == ["During the outage 1", "During the outage 2"], "each mail once"


def test_a_mail_server_refusing_the_login_is_told_once_without_the_password(imap, slack, database_url):
    clock = FrozenClock(START)
    with RefusingSmtp() as smtp:
        env = env_for(
            slack,
            imap,
            database_url,
            SMTP_PORT=str(smtp.port),
            SMTP_USER="bot",
            SMTP_PASSWORD="hunter2-secret",
        )
        with running_bot(env, clock=clock) as bot:
            imap.append(customer_mail(1, subject="A question"))
            wait_until(lambda: ticket_subjects(slack) == ["A question"], what="the ticket")
            queue_reply(bot, 1, "Here is the answer")
            wait_until(lambda: failing(bot, Service.OUTGOING_MAIL), what="the refused login recorded")
            minutes_pass(bot, clock, 4)
            wait_until(lambda: once_each(slack, OUTAGE), what="the outage told")
            tries = len(smtp.logins)
            minutes_pass(bot, clock, 10)  # the reply is retried, and refused, again and again
            wait_until(lambda: len(smtp.logins) >= tries + 2, what="more refused logins")
            wait_until(lambda: quiet(bot) or failing(bot, Service.OUTGOING_MAIL), what="settled")
            told = notices(slack, OUTAGE)
    assert once_each(slack, OUTAGE)
    text = told[CHANNEL][0]
    assert "Outgoing mail is not working" in text and "the login was refused" in text
    assert "`SMTP_USER` and `SMTP_PASSWORD`" in text
    everything = " ".join(str(m) for m in [*slack.messages(CHANNEL), *slack.dms(MANAGERS[0])])
    assert "hunter2-secret" not in everything


def test_a_restart_during_an_outage_tells_no_one_twice(tmp_path, slack, database_url):
    clock = FrozenClock(START)
    port = free_port()  # nothing listens there yet: every connection is refused
    server = PymapServer(tmp_path / "imap", port=port)
    env = env_for(slack, server, database_url)
    with running_bot(env, clock=clock) as bot:
        wait_until(lambda: failing(bot, Service.MAILBOX), what="the failure recorded")
        minutes_pass(bot, clock, 4)
        wait_until(lambda: once_each(slack, OUTAGE), what="the outage told")
    clock.advance(timedelta(minutes=2))
    with running_bot(env, clock=clock) as bot:
        restarted = clock.now()
        wait_until(
            lambda: health_row(bot, Service.MAILBOX).last_failure_at == restarted,  # type: ignore[union-attr]
            what="the new process's watcher reporting",
        )
        minutes_pass(bot, clock, 10)
        wait_until(lambda: quiet(bot), what="the outbox idle")
        assert once_each(slack, OUTAGE), "the outage was told before the restart"
        with server:
            wait_until(lambda: once_each(slack, RECOVERY), timeout=90, what="the recovery told")
    assert once_each(slack, OUTAGE) and once_each(slack, RECOVERY)


def test_support_status_shows_each_part_to_the_team_and_nothing_to_outsiders(imap, slack, database_url):
    clock = FrozenClock(START)
    closed = free_port()  # the mail server is down
    slack.add_user("UAGENT1", "anna", channels=(CHANNEL,))
    slack.add_user("UOUTSIDE", "otto")
    with running_bot(env_for(slack, imap, database_url, SMTP_PORT=str(closed)), clock=clock) as bot:
        imap.append(customer_mail(1, subject="Status please"))
        wait_until(lambda: ticket_subjects(slack) == ["Status please"], what="the ticket")
        queue_reply(bot, 1, "On its way")
        wait_until(lambda: failing(bot, Service.OUTGOING_MAIL), what="the SMTP failure recorded")
        bot.jobs.health_tick()  # as the leader's scheduler does at election: it names the leader
        started = time.monotonic()
        answer = SlackUser(bot.url, slack, "UAGENT1").command("status")
        took = time.monotonic() - started
        refused = SlackUser(bot.url, slack, "UOUTSIDE").command("status")
    assert answer.status == 200 and took < 3.0, "Slack gives up after 3 s"
    shown = " ".join(str(block) for block in answer.json()["blocks"])
    assert "*Mailbox*" in shown and "*Working*: connected" in shown and "Last mail seen" in shown
    assert "*Outgoing mail*" in shown and "*Failing*" in shown and "cannot be reached" in shown
    assert f"`SMTP_HOST` and `SMTP_PORT` (now 127.0.0.1:{closed})" in shown
    assert "Outgoing mail queue: 1 waiting" in shown and "Slack posts and DMs" in shown
    assert "(this one) leads" in shown and "· HTTP" in shown and "supportbot " in shown
    assert "Only support staff" in refused.json()["text"]


def test_support_status_over_socket_mode_answers_within_a_second_however_slow_slack_is(
    imap, slack, database_url
):
    slack.add_user("UAGENT1", "anna", channels=(CHANNEL,))
    env = env_for(
        slack, imap, database_url, SLACK_APP_TOKEN="xapp-1-A0SUPPORTBOT-1-test", SLACK_SIGNING_SECRET=""
    )
    with SocketModeStandIn(slack) as socket, running_bot(env, clock=FrozenClock(START)) as bot:
        socket.wait_connected()
        wait_until(lambda: (row := health_row(bot, Service.MAILBOX)) and row.last_success_at, what="IMAP")
        user = SocketUser(socket, "UAGENT1")
        user.command("status")  # the staff list is read once; then only the database is
        slack.latency = 0.3
        answer = user.command("status")
        took = socket.acks()[-1].seconds
    assert took < 1.0, f"/support status acknowledged after {took:.2f}s"
    shown = " ".join(str(block) for block in answer.json()["blocks"])
    assert "· Socket Mode ·" in shown and "*Working*: connected" in shown
