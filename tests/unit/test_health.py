"""Connection health: one outage notice per outage and one recovery notice, whatever the
retries, restarts and ticks in between; the sentence says what failed and what to do."""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from imapclient.exceptions import IMAPClientAbortError, LoginError
from sqlalchemy import select

from bot.health.connections import (
    Failure,
    FailureKind,
    OutageNotice,
    RecoveryNotice,
    Service,
    check_outages,
    classify,
    record_failure,
    record_success,
)
from bot.health.status import record_leader, status_report
from bot.outbox.queue import enqueue, files_lane, slack_lane
from bot.slack.health_notices import advice, queue_health_notices
from bot.slack.status import status_blocks
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import OutboxItem
from tests.support.settings import CHANNEL, make_settings

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
THREE = timedelta(minutes=3)
REFUSED = Failure(FailureKind.LOGIN_REFUSED, "[AUTHENTICATIONFAILED] Invalid credentials")
MANAGERS = "UMANAGER1,UMANAGER2"


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"), FailureKind.LOGIN_REFUSED),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), FailureKind.LOGIN_REFUSED),
        (ConnectionRefusedError(111, "Connection refused"), FailureKind.UNREACHABLE),
        (TimeoutError("timed out"), FailureKind.TIMEOUT),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), FailureKind.TLS),
        (smtplib.SMTPNotSupportedError("the server does not offer STARTTLS"), FailureKind.TLS),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), FailureKind.DROPPED),
        (EOFError("socket error: EOF"), FailureKind.DROPPED),
        (IMAPClientAbortError("socket error: EOF"), FailureKind.DROPPED),
        (ValueError("something else"), FailureKind.OTHER),
    ],
)
def test_failures_are_classified_by_what_to_do_about_them(error: BaseException, kind: FailureKind) -> None:
    assert classify(error).kind == kind


def test_a_failure_sentence_is_short_and_never_holds_a_secret() -> None:
    error = smtplib.SMTPAuthenticationError(535, b"5.7.8 AGh1bnRlcjI= (hunter2) refused " + b"x" * 2000)
    failure = classify(error, ["hunter2", "AGh1bnRlcjI="])
    assert "hunter2" not in failure.detail and "AGh1bnRlcjI=" not in failure.detail
    assert failure.detail.startswith("535 5.7.8 *** (***) refused") and len(failure.detail) <= 300
    assert classify(LoginError("b'[AUTHENTICATIONFAILED] No'")).detail == "[AUTHENTICATIONFAILED] No"


def test_one_outage_notice_after_the_threshold_and_one_recovery(session_factory) -> None:
    def fail(at: datetime) -> list:
        with session_factory.begin() as session:
            return record_failure(session, Service.MAILBOX, REFUSED, at, threshold=THREE)

    assert fail(minutes(0)) == []
    assert fail(minutes(1)) == []
    assert fail(minutes(2.9)) == [], "under three minutes: a blip, nobody is told"
    [notice] = fail(minutes(3))
    assert notice == OutageNotice(Service.MAILBOX, 1, minutes(0), REFUSED)
    assert [fail(minutes(n)) for n in range(4, 11)] == [[]] * 7, "one notice per outage"
    with session_factory.begin() as session:
        assert check_outages(session, minutes(11), threshold=THREE, reported_since=T0) == []
        [back] = record_success(session, Service.MAILBOX, minutes(12))
    assert back == RecoveryNotice(Service.MAILBOX, 1, minutes(0), minutes(12))
    with session_factory.begin() as session:
        assert record_success(session, Service.MAILBOX, minutes(13)) == []


def test_a_blip_is_not_announced_and_each_outage_has_its_own_number(session_factory) -> None:
    with session_factory.begin() as session:
        assert record_failure(session, Service.OUTGOING_MAIL, REFUSED, minutes(0), threshold=THREE) == []
        assert record_success(session, Service.OUTGOING_MAIL, minutes(1)) == [], (
            "never announced: no recovery"
        )
        record_failure(session, Service.OUTGOING_MAIL, REFUSED, minutes(5), threshold=THREE)
        [notice] = record_failure(session, Service.OUTGOING_MAIL, REFUSED, minutes(9), threshold=THREE)
    assert notice.outage == 2 and notice.since == minutes(5)


def test_the_state_survives_a_restart_so_an_announced_outage_is_not_announced_again(
    session_factory, database_url
) -> None:
    with session_factory.begin() as session:
        record_failure(session, Service.MAILBOX, REFUSED, minutes(0), threshold=THREE)
        assert record_failure(session, Service.MAILBOX, REFUSED, minutes(4), threshold=THREE)
    # Another process (a restart, another replica) over the same database.
    engine = make_engine(database_url)
    other = make_sessionmaker(engine)
    try:
        with other.begin() as session:
            assert record_failure(session, Service.MAILBOX, REFUSED, minutes(30), threshold=THREE) == []
            # Even after a long gap: an outage already announced goes on until it ends.
            assert record_failure(session, Service.MAILBOX, REFUSED, minutes(90), threshold=THREE) == []
            assert check_outages(session, minutes(91), threshold=THREE, reported_since=minutes(89)) == []
            [back] = record_success(session, Service.MAILBOX, minutes(92))
        assert back.since == minutes(0)
    finally:
        engine.dispose()


def test_a_failure_nobody_watched_since_starts_a_new_outage(session_factory) -> None:
    # The bot stopped a minute into a failure and started again hours later: the outage is
    # counted from what it sees now, not announced at once as hours old.
    with session_factory.begin() as session:
        record_failure(session, Service.MAILBOX, REFUSED, minutes(0), threshold=THREE)
        assert record_failure(session, Service.MAILBOX, REFUSED, minutes(240), threshold=THREE) == []
        [notice] = record_failure(session, Service.MAILBOX, REFUSED, minutes(243), threshold=THREE)
    assert notice.since == minutes(240) and notice.outage == 2


def test_the_tick_announces_an_outage_between_reports_but_not_one_a_previous_process_left(
    session_factory,
) -> None:
    with session_factory.begin() as session:
        record_failure(session, Service.MAILBOX, REFUSED, minutes(0), threshold=THREE)
        # A leader that started after the last report does not trust it: its watcher decides.
        assert check_outages(session, minutes(5), threshold=THREE, reported_since=minutes(1)) == []
        assert check_outages(session, minutes(2), threshold=THREE, reported_since=T0) == []
        [notice] = check_outages(session, minutes(5), threshold=THREE, reported_since=T0)
        assert check_outages(session, minutes(6), threshold=THREE, reported_since=T0) == []
        assert record_failure(session, Service.MAILBOX, REFUSED, minutes(6), threshold=THREE) == []
    assert notice.since == minutes(0)


def test_notices_go_to_the_channel_and_each_manager_once(session_factory) -> None:
    settings = make_settings("sqlite://", MANAGERS=MANAGERS)
    notice = OutageNotice(Service.MAILBOX, 7, minutes(0), REFUSED)
    with session_factory.begin() as session:
        assert queue_health_notices(session, settings, [notice], minutes(4)) == 3
        assert queue_health_notices(session, settings, [notice], minutes(5)) == 0, "keyed by outage"
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
    assert [r.payload["channel"] for r in rows] == [CHANNEL, "UMANAGER1", "UMANAGER2"]
    text = rows[0].payload["text"]
    assert "support mailbox is not working" in text and "the login was refused" in text
    assert "`IMAP_USER` and `IMAP_PASSWORD`" in text and "Invalid credentials" in text
    assert "imap-secret" not in text


def test_the_advice_names_the_settings_to_check() -> None:
    settings = make_settings("sqlite://", SMTP_SECURITY="starttls", IMAP_HOST="mail.example.com")
    assert "`IMAP_HOST` and `IMAP_PORT` (now mail.example.com:993)" in advice(
        settings, Service.MAILBOX, FailureKind.UNREACHABLE
    )
    assert "firewall" in advice(settings, Service.OUTGOING_MAIL, FailureKind.TIMEOUT)
    assert "`IMAP_SSL` (now true" in advice(settings, Service.MAILBOX, FailureKind.TLS)
    assert "`SMTP_SECURITY` (now starttls" in advice(settings, Service.OUTGOING_MAIL, FailureKind.TLS)
    assert "`SMTP_USER` and `SMTP_PASSWORD`" in advice(settings, Service.OUTGOING_MAIL, "login_refused")
    assert "log" in advice(settings, Service.MAILBOX, "a kind a newer version wrote")
    basic_off = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
    assert "`MAIL_AUTH`" in advice(settings, Service.OUTGOING_MAIL, "login_refused", basic_off)
    assert "`MAIL_AUTH`" in advice(settings, Service.OUTGOING_MAIL, "login_refused", "550 5.7.30 Basic auth")


def test_the_status_report_counts_each_lane_kind_and_names_the_leader(session_factory) -> None:
    settings = make_settings("sqlite://")
    with session_factory.begin() as session:
        for n, lane in enumerate(
            [slack_lane(CHANNEL), slack_lane("UMANAGER1"), files_lane(slack_lane(CHANNEL))]
        ):
            enqueue(session, kind="slack.post", lane=lane, now=minutes(n))
        dead = enqueue(session, kind="smtp.send", lane="smtp", now=minutes(1))
        assert dead is not None
        dead.status = "dead"
        record_failure(session, Service.OUTGOING_MAIL, REFUSED, minutes(2), threshold=THREE)
        record_success(session, Service.MAILBOX, minutes(1))
        record_leader(session, "host-a:12", minutes(0), minutes(2))
    with session_factory() as session:
        report = status_report(session, minutes(3))
        stale = status_report(session, minutes(10)).leader
    lanes = {lane.kind: (lane.waiting, lane.failed, lane.oldest_waiting) for lane in report.lanes}
    assert lanes == {"slack": (2, 0, minutes(0)), "files": (1, 0, minutes(2)), "smtp": (0, 1, None)}
    assert report.mailbox.failing_since is None and report.mailbox.last_success_at == minutes(1)
    assert report.outgoing_mail.failing_since == minutes(2)
    assert report.leader is not None and report.leader.replica == "host-a:12" and not report.leader.stale
    assert stale is not None and stale.stale
    text, blocks = status_blocks(report, settings, minutes(3), version="1.2.3")
    shown = "\n".join(str(b) for b in blocks)
    assert "outgoing_mail failing" in text
    assert "*Failing*" in shown and "`SMTP_USER` and `SMTP_PASSWORD`" in shown and "*Working*" in shown
    assert "Attachment uploads: 1 waiting" in shown and ":x: 1 failed" in shown
    assert "`host-a:12` leads" in shown and "supportbot 1.2.3 · HTTP" in shown
