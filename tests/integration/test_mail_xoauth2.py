"""OAuth 2.0 logins (SASL XOAUTH2) against real servers: Dovecot with an `oauth2` passdb,
and an aiosmtpd server taking XOAUTH2, both asking the same local authorisation server
(tests/support/oauth_introspection.py) whether a token is active. Tokens come from a
small real TokenSource over HTTP (tests/support/oauth_tokens.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.config import Settings
from bot.mail.sender import smtp_handlers
from bot.mail.watcher import MailboxSettings, MailboxWatcher
from bot.outbox.queue import SMTP_SEND
from bot.outbox.worker import Backoff, OutboxWorker
from bot.slack.mail_notices import reply_notice
from bot.storage.models import Message, OutboxItem
from bot.tickets.ingest import ingest_email
from bot.tickets.replies import send_reply
from tests.support.dovecot_oauth import ExpiredSessionCutter, OAuthDovecot
from tests.support.harness import wait_until
from tests.support.mail import customer_mail, message_id_of
from tests.support.oauth_introspection import OAuthStandIn
from tests.support.oauth_tokens import HttpTokenSource
from tests.support.settings import CHANNEL, SUPPORT_ADDRESS, make_settings
from tests.support.smtp_xoauth2 import XOAuthSmtp

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# The SMTP stand-in takes AUTH without STARTTLS, on loopback only.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def tokens(oauth: OAuthStandIn) -> HttpTokenSource:
    return HttpTokenSource(f"{oauth.url}/token", keep_until_left=1.0)


def watcher_for(
    server: OAuthDovecot, factory: sessionmaker[Session], tokens: HttpTokenSource, *, margin: float = 300.0
) -> MailboxWatcher:
    settings = MailboxSettings(
        host=server.host,
        port=server.port,
        user=server.user,
        password="",  # never used: the token is
        ssl=False,
        folder="INBOX",
        channel=CHANNEL,
        own_addresses=(SUPPORT_ADDRESS,),
        token_source=tokens,
        token_margin_seconds=margin,
    )
    return MailboxWatcher(settings, factory, FrozenClock(NOW), max_backoff=0.5)


@pytest.fixture
def watching(
    oauth_dovecot: OAuthDovecot, session_factory: sessionmaker[Session], tokens: HttpTokenSource
) -> Iterator[MailboxWatcher]:
    watcher = watcher_for(oauth_dovecot, session_factory, tokens)
    yield watcher
    watcher.stop()


def stored_ids(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Message.message_id).where(Message.direction == "in")))


def xoauth2_logins(server: OAuthDovecot) -> int:
    return server.log_path.read_text().count("method=XOAUTH2")


# -- IMAP: Dovecot's oauth2 passdb ------------------------------------------------------


@pytest.mark.dovecot
def test_watcher_logs_in_with_a_token_and_ingests_mail(
    oauth: OAuthStandIn,
    oauth_dovecot: OAuthDovecot,
    watching: MailboxWatcher,
    session_factory: sessionmaker[Session],
    tokens: HttpTokenSource,
) -> None:
    raw = customer_mail(1)
    oauth_dovecot.append(raw)
    watching.start()
    wait_until(lambda: stored_ids(session_factory), what="the mail stored")
    assert stored_ids(session_factory) == [message_id_of(raw).strip("<>")]
    assert xoauth2_logins(oauth_dovecot) == 1
    token = tokens.fetched[0][0].value
    assert [c.token for c in oauth.accepted()] == [token]


@pytest.mark.dovecot
def test_a_refused_token_is_replaced_by_a_fresh_one_once(
    oauth: OAuthStandIn,
    oauth_dovecot: OAuthDovecot,
    watching: MailboxWatcher,
    session_factory: sessionmaker[Session],
    tokens: HttpTokenSource,
) -> None:
    tokens.spoil("expired-token")  # the cached token expired or was revoked since
    watching.start()
    assert watching.connected.wait(20)
    assert [(c.token, c.active) for c in oauth.checks] == [
        ("expired-token", False),
        (tokens.fetched[-1][0].value, True),
    ]
    assert [fresh for _, fresh in tokens.fetched] == [True]

    # Consent revoked while the bot runs: the next login's cached token is refused.
    oauth.revoke_all()
    oauth_dovecot.restart()  # drops the session, as a server restart or network cut does
    raw = customer_mail(2)
    oauth_dovecot.append(raw)
    wait_until(lambda: len(stored_ids(session_factory)) == 1, timeout=30, what="the mail after re-login")
    assert [fresh for _, fresh in tokens.fetched] == [True, True]
    assert oauth.accepted()[-1].token == tokens.fetched[-1][0].value


@pytest.mark.dovecot
def test_no_token_to_be_had_is_said_once_and_retried_until_it_works(
    oauth_dovecot: OAuthDovecot,
    watching: MailboxWatcher,
    session_factory: sessionmaker[Session],
    tokens: HttpTokenSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sentence = "the app's consent was revoked: an admin must grant it again"
    tokens.refuse = sentence
    caplog.set_level(logging.WARNING, logger="bot.mail.watcher")
    watching.start()
    wait_until(lambda: tokens.asked >= 4, what="a few retries")
    assert tokens.fetched == []
    assert caplog.text.count(sentence) == 1  # said once, not at every retry
    tokens.refuse = None
    oauth_dovecot.append(customer_mail(3))
    wait_until(lambda: len(stored_ids(session_factory)) == 1, timeout=20, what="the mail once a token comes")


@pytest.mark.dovecot
def test_an_idle_session_is_renewed_before_its_token_expires(
    oauth: OAuthStandIn, oauth_dovecot: OAuthDovecot, session_factory: sessionmaker[Session]
) -> None:
    # Seconds where Microsoft and Google give an hour: tokens of 4 s, refreshed by the
    # source when less than 2 s are left, sessions renewed 1.5 s before expiry.
    oauth.lifetime = 4.0
    tokens = HttpTokenSource(f"{oauth.url}/token", keep_until_left=2.0)
    watcher = watcher_for(oauth_dovecot, session_factory, tokens, margin=1.5)
    raws = [customer_mail(n) for n in range(10, 16)]
    try:
        with ExpiredSessionCutter(oauth_dovecot, oauth) as cutter:
            watcher.start()
            assert watcher.connected.wait(20)
            for n, raw in enumerate(raws):
                oauth_dovecot.append(raw)
                # Spread over several token lifetimes, so mail arrives around the renewals.
                wait_until(
                    lambda n=n: len(stored_ids(session_factory)) == n + 1, timeout=20, what=f"mail {n}"
                )
                wait_until(lambda n=n: len(oauth.accepted()) >= n // 2 + 1, timeout=20, what="a renewal")
    finally:
        watcher.stop()
    assert cutter.cut == []  # no session outlived its token: each was renewed in time
    ids = stored_ids(session_factory)
    assert sorted(ids) == sorted({*ids}) and len(ids) == len(raws)  # each mail once
    logins = oauth.accepted()
    assert len(logins) >= 3
    # Each renewal logged in with a new token, fetched because the old one was ending.
    assert len({c.token for c in logins}) == len(logins)
    assert all(c.active for c in oauth.checks)  # never a login with an expired token


# -- SMTP: aiosmtpd taking XOAUTH2 ------------------------------------------------------


@pytest.fixture
def smtp_server(oauth: OAuthStandIn) -> Iterator[XOAuthSmtp]:
    with XOAuthSmtp(oauth) as server:
        yield server


def queue_reply(factory: sessionmaker[Session], settings_: Settings, n: int) -> Message:
    with factory.begin() as session:
        mail = customer_mail(n)
        result = ingest_email(
            session, mail, mailbox="box", channel=CHANNEL, now=NOW, own_addresses=(SUPPORT_ADDRESS,)
        )
        return send_reply(
            session,
            ticket_id=result.ticket_id,
            agent_id="UAGENT1",
            agent_name="Anna",
            text="Thanks, we are on it.",
            now=NOW,
            settings=settings_,
        )


def smtp_worker(
    database_url: str,
    factory: sessionmaker[Session],
    server: XOAuthSmtp,
    tokens: HttpTokenSource,
    clock: FrozenClock | None = None,
) -> OutboxWorker:
    settings = make_settings(
        database_url,
        SMTP_PORT=str(server.port),
        SMTP_USER="support@example.com",
        SMTP_PASSWORD="never-sent-with-a-token",
    )
    clock = clock or FrozenClock(NOW)
    return OutboxWorker(
        factory,
        smtp_handlers(settings, factory, clock, write_notice=reply_notice, timeout=5, token_source=tokens),
        lane_prefix="smtp",
        clock=clock,
        backoff=Backoff(base=1.0, cap=60.0),
    )


def test_a_reply_goes_out_over_smtp_logged_in_with_a_token(
    database_url: str,
    session_factory: sessionmaker[Session],
    smtp_server: XOAuthSmtp,
    tokens: HttpTokenSource,
) -> None:
    worker = smtp_worker(database_url, session_factory, smtp_server, tokens)
    queue_reply(session_factory, make_settings(database_url), 40)
    worker.drain()
    assert len(smtp_server.mails) == 1
    assert smtp_server.attempts == [("support@example.com", tokens.fetched[0][0].value)]


def test_a_refused_smtp_token_gets_one_fresh_one_then_a_clear_reason(
    database_url: str,
    session_factory: sessionmaker[Session],
    oauth: OAuthStandIn,
    smtp_server: XOAuthSmtp,
    tokens: HttpTokenSource,
) -> None:
    worker = smtp_worker(database_url, session_factory, smtp_server, tokens)
    tokens.spoil("revoked-token")
    queue_reply(session_factory, make_settings(database_url), 41)
    worker.drain()
    # The empty line answered the error challenge (else the stand-in says 501), then
    # the fresh token went through on the same connection.
    assert [token for _, token in smtp_server.attempts] == ["revoked-token", tokens.fetched[0][0].value]
    assert [fresh for _, fresh in tokens.fetched] == [True]
    assert len(smtp_server.mails) == 1
    assert smtp_server.violations == []

    # Now every token is refused (say, SMTP AUTH turned off for the mailbox): one fresh
    # try, then the reply waits with a reason that says what to check.
    oauth.refusing = True
    tokens.spoil("revoked-again")
    queue_reply(session_factory, make_settings(database_url), 42)
    worker.run_once()
    assert len(smtp_server.attempts) == 4 and len(smtp_server.mails) == 1
    assert smtp_server.violations == []
    with session_factory() as session:
        item = session.scalars(
            select(OutboxItem).where(OutboxItem.kind == SMTP_SEND).order_by(OutboxItem.id.desc())
        ).first()
        assert item is not None and item.status == "pending"
        assert "refused a fresh OAuth token for support@example.com" in (item.last_error or "")
        assert "SMTP AUTH" in (item.last_error or "")
        assert "revoked-again" not in (item.last_error or "")


def test_no_token_for_smtp_keeps_the_reply_queued_with_the_providers_sentence(
    database_url: str,
    session_factory: sessionmaker[Session],
    smtp_server: XOAuthSmtp,
    tokens: HttpTokenSource,
) -> None:
    clock = FrozenClock(NOW)
    worker = smtp_worker(database_url, session_factory, smtp_server, tokens, clock)
    tokens.refuse = "the app's client secret has expired: create a new one and set MAIL_OAUTH_CLIENT_SECRET"
    queue_reply(session_factory, make_settings(database_url), 43)
    worker.run_once()
    assert smtp_server.attempts == [] and smtp_server.mails == []
    with session_factory() as session:
        item = session.scalars(select(OutboxItem).where(OutboxItem.kind == SMTP_SEND)).one()
        assert item.status == "pending"
        assert item.last_error == f"no OAuth token for the mail server: {tokens.refuse}"

    tokens.refuse = None  # fixed: the reply goes out on its next try
    clock.advance(timedelta(minutes=5))
    worker.drain()
    assert len(smtp_server.mails) == 1
