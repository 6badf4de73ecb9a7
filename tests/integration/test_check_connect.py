"""`supportbot check-config --connect`: logs in to IMAP and SMTP and says, one line per
service, what worked or what failed and what to do. The CLI runs as a child process with
passwords; the same check with tokens (XOAUTH2) runs in-process with the test's
TokenSource, since the providers' sources are configured by the OAuth work."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.mail.connect_check import check_mail_connections, check_smtp
from bot.sandbox.imap_server import PymapServer, free_port
from tests.support.dovecot_oauth import OAuthDovecot
from tests.support.oauth_introspection import OAuthStandIn
from tests.support.oauth_tokens import HttpTokenSource
from tests.support.settings import make_settings
from tests.support.smtp_xoauth2 import XOAuthSmtp
from tests.support.tls import loopback_certificate, server_context

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def smtp_server(oauth: OAuthStandIn) -> Iterator[XOAuthSmtp]:
    with XOAuthSmtp(oauth, password="smtp-secret") as server:
        yield server


def check_config_connect(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "SUPPORT_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": "secret",
            "SUPPORT_CHANNEL": "C0SUPPORT",
            "SUPPORT_ADDRESS": "support@example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            "IMAP_HOST": "127.0.0.1",
            "IMAP_SSL": "false",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_SECURITY": "none",
            **settings,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", "--connect"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_both(
    tmp_path: Path, imap: PymapServer, smtp_server: XOAuthSmtp, *, imap_password: str, smtp_password: str
) -> subprocess.CompletedProcess[str]:
    """`check-config --connect` against the pymap mailbox and the SMTP stand-in, with passwords."""
    return check_config_connect(
        tmp_path,
        IMAP_PORT=str(imap.port),
        IMAP_USER=imap.user,
        IMAP_PASSWORD=imap_password,
        SMTP_PORT=str(smtp_server.port),
        SMTP_USER="support@example.com",
        SMTP_PASSWORD=smtp_password,
    )


def verdicts(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("ok ", "FAILED "))]


def test_check_config_connect_logs_in_to_both_and_sends_nothing(
    tmp_path: Path, imap: PymapServer, smtp_server: XOAuthSmtp
) -> None:
    result = check_both(tmp_path, imap, smtp_server, imap_password=imap.password, smtp_password="smtp-secret")
    assert result.returncode == 0, result.stdout + result.stderr
    imap_line, smtp_line = verdicts(result.stdout)
    assert imap_line == (
        f"ok      IMAP: logged in to 127.0.0.1:{imap.port} as {imap.user} with the password; "
        "folder 'INBOX' holds 0 messages"
    )
    assert smtp_line == (
        f"ok      SMTP: 127.0.0.1:{smtp_server.port} answered (no encryption), logged in as "
        "support@example.com with the password; no mail was sent"
    )
    assert smtp_server.mails == []


def test_check_config_connect_says_what_failed_and_what_to_do(
    tmp_path: Path, imap: PymapServer, smtp_server: XOAuthSmtp
) -> None:
    result = check_both(
        tmp_path, imap, smtp_server, imap_password="wrong-imap-password", smtp_password="wrong-smtp-password"
    )
    assert result.returncode == 1
    imap_line, smtp_line = verdicts(result.stdout)
    assert imap_line.startswith(f"FAILED  IMAP: 127.0.0.1:{imap.port} refused the login as {imap.user} (")
    assert imap_line.endswith(
        "check IMAP_USER and IMAP_PASSWORD (Microsoft 365 and Google want MAIL_AUTH and a token)"
    )
    assert smtp_line == (
        f"FAILED  SMTP: 127.0.0.1:{smtp_server.port} refused us: login as support@example.com "
        "refused (535); check SMTP_USER and SMTP_PASSWORD"
    )
    assert "wrong-imap-password" not in result.stdout + result.stderr
    assert "wrong-smtp-password" not in result.stdout + result.stderr


def test_check_config_connect_names_a_server_it_cannot_reach(tmp_path: Path) -> None:
    imap_port, smtp_port = free_port(), free_port()
    result = check_config_connect(
        tmp_path,
        IMAP_PORT=str(imap_port),
        IMAP_USER="support@example.com",
        IMAP_PASSWORD="x",
        SMTP_PORT=str(smtp_port),
    )
    assert result.returncode == 1
    imap_line, smtp_line = verdicts(result.stdout)
    assert imap_line.startswith(f"FAILED  IMAP: cannot reach 127.0.0.1:{imap_port} (")
    assert imap_line.endswith("check IMAP_HOST, IMAP_PORT and IMAP_SSL")
    assert smtp_line.startswith(f"FAILED  SMTP: cannot reach 127.0.0.1:{smtp_port} (")


@pytest.mark.dovecot
def test_the_connection_check_logs_in_with_tokens(
    database_url: str, oauth: OAuthStandIn, oauth_dovecot: OAuthDovecot, smtp_server: XOAuthSmtp
) -> None:
    settings = make_settings(
        database_url,
        IMAP_PORT=str(oauth_dovecot.port),
        IMAP_USER=oauth_dovecot.user,
        IMAP_SSL="false",
        SMTP_PORT=str(smtp_server.port),
    )
    tokens = HttpTokenSource(f"{oauth.url}/token")
    oauth_dovecot.append(b"Subject: hello\r\n\r\nhi\r\n")
    imap_outcome, smtp_outcome = check_mail_connections(settings, tokens)
    assert imap_outcome.ok and smtp_outcome.ok
    assert imap_outcome.line == (
        f"IMAP: logged in to 127.0.0.1:{oauth_dovecot.port} as {oauth_dovecot.user} with an OAuth token "
        "(XOAUTH2); folder 'INBOX' holds 1 messages"
    )
    assert smtp_outcome.line == (
        f"SMTP: 127.0.0.1:{smtp_server.port} answered (no encryption), logged in as {settings.imap_user} "
        "with an OAuth token (XOAUTH2); no mail was sent"
    )

    oauth.refusing = True  # say, the app lost its mailbox permission
    imap_outcome, smtp_outcome = check_mail_connections(settings, tokens)
    assert not imap_outcome.ok and not smtp_outcome.ok
    assert imap_outcome.line.startswith(
        f"IMAP: the IMAP server refused a fresh OAuth token for {oauth_dovecot.user} ("
    )
    assert "IMAP.AccessAsApp" in imap_outcome.line
    assert smtp_outcome.line.startswith(
        f"SMTP: the SMTP server refused a fresh OAuth token for {settings.imap_user} (535 "
    )
    assert all(token.value not in imap_outcome.line + smtp_outcome.line for token, _ in tokens.fetched)


def test_smtp_logs_in_with_a_token_after_starttls(
    tmp_path: Path, database_url: str, oauth: OAuthStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Microsoft 365's way (smtp.office365.com:587): STARTTLS, EHLO again, then AUTH XOAUTH2."""
    cert, key = loopback_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client verifies the certificate as usual
    with XOAuthSmtp(oauth, tls=server_context(cert, key)) as server:
        settings = make_settings(
            database_url, IMAP_USER=oauth.user, SMTP_PORT=str(server.port), SMTP_SECURITY="starttls"
        )
        tokens = HttpTokenSource(f"{oauth.url}/token")
        outcome = check_smtp(settings, tokens)
    assert outcome.ok, outcome.line
    assert outcome.line == (
        f"SMTP: 127.0.0.1:{server.port} answered (STARTTLS), logged in as {settings.imap_user} "
        "with an OAuth token (XOAUTH2); no mail was sent"
    )
    assert server.attempts == [(settings.imap_user, tokens.fetched[0][0].value)]
