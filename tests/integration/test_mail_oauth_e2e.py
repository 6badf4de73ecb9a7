"""The whole OAuth path, end to end: the real bot signs in with the real msal (or google-auth)
at the providers' token endpoints' stand-in (tests/support/token_endpoints.py, over TLS,
trusted through REQUESTS_CA_BUNDLE as an operator's proxy CA would be), and the very tokens
it gets are judged by Dovecot's oauth2 passdb and the XOAUTH2 SMTP server, which introspect
them (RFC 7662) at that same stand-in. Mail in → ticket in Slack; reply from Slack → mail out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.health.connections import Service
from bot.slack import modals
from tests.integration.conftest import need_dovecot
from tests.integration.test_check_connect import check_config_connect, verdicts
from tests.integration.test_faults_servers import ticket_posts, ticket_subjects
from tests.support.connection_health import (
    MANAGERS,
    OUTAGE,
    RECOVERY,
    error_kind,
    minutes_pass,
    once_each,
    outage_told_after_ten_minutes,
    quiet,
)
from tests.support.dovecot_oauth import OAuthDovecot, end_oauth_sessions
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser
from tests.support.smtp_xoauth2 import XOAuthSmtp
from tests.support.token_endpoints import MicrosoftApp, TokenEndpoints, service_account_key

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.timeout(180),
    # The SMTP stand-in takes AUTH without STARTTLS, on loopback only.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

MAILBOX = "support@example.com"
AGENT = "U0ADA"
SECRET = "right-secret"
# Far from today on purpose: the bot's clock is the test's, the tokens' lifetimes are real.
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoints]:
    apps = {"app-id": MicrosoftApp("app-id", SECRET)}
    (tmp_path / "idp").mkdir()
    with TokenEndpoints(tmp_path / "idp", microsoft_apps=apps, app_mailbox=MAILBOX) as server:
        # msal and google-auth build their own requests sessions, which trust this bundle.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
        yield server


@pytest.fixture
def mail_servers(endpoints: TokenEndpoints) -> Iterator[tuple[OAuthDovecot, XOAuthSmtp]]:
    need_dovecot()
    port = endpoints.url.rsplit(":", 1)[1]
    introspection = f"https://127.0.0.1:{port}/introspect"
    with (
        OAuthDovecot(introspection, user=MAILBOX, ca_file=endpoints.ca_file) as dovecot,
        XOAuthSmtp(endpoints) as smtp,
    ):
        yield dovecot, smtp


def microsoft_settings(endpoints: TokenEndpoints, tmp_path: Path, **extra: str) -> dict[str, str]:
    """App-only access (client credentials), as for a shared mailbox."""
    return {
        "MAIL_AUTH": "microsoft",
        "MS_TENANT_ID": endpoints.tenant,
        "MS_CLIENT_ID": "app-id",
        "MS_CLIENT_SECRET": SECRET,
        "MS_AUTHORITY_URL": endpoints.url,
        **extra,
    }


def google_settings(endpoints: TokenEndpoints, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A Workspace service account with domain-wide delegation for the mailbox."""
    info, public_key = service_account_key(endpoints.google_token_uri)
    endpoints.google_accounts[info["client_email"]] = public_key
    endpoints.google_delegation[info["client_email"]] = {MAILBOX}
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(info))
    return {"MAIL_AUTH": "google", "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file), **extra}


PROVIDERS = {"microsoft": microsoft_settings, "google": google_settings}


def oauth_env(
    slack, dovecot: OAuthDovecot, smtp: XOAuthSmtp, database_url: str, **extra: str
) -> dict[str, str]:
    env = bot_env(
        slack_url=slack.base_url,
        imap=dovecot,
        database_url=database_url,
        smtp_port=smtp.port,
        SMTP_USER=MAILBOX,  # and no SMTP_PASSWORD: the token is the credential
        **extra,
    )
    del env["IMAP_PASSWORD"]  # optional with MAIL_AUTH
    return env


def reply_from_slack(bot, slack, number: int, text: str) -> None:
    """An agent clicks Reply on the ticket and sends the modal, through signed requests."""
    ticket = next(m for m in ticket_posts(slack) if m["text"].startswith(f"#{number} "))
    agent = SlackUser(bot.url, slack, AGENT)
    before = set(slack.views)
    assert agent.click({**ticket, "channel": CHANNEL}, "ticket_reply").status == 200
    view_id = wait_until(lambda: list(set(slack.views) - before), what="the reply modal")[0]
    body = next(
        b["block_id"]
        for b in slack.views[view_id]["blocks"]
        if b["type"] == "input" and b["element"]["action_id"] == modals.BODY_ACTION
    )
    answer = agent.submit(view_id, {body: text})
    assert answer.status == 200 and not answer.body.strip(), answer.body


def xoauth2_logins(dovecot: OAuthDovecot) -> int:
    return dovecot.log_path.read_text(errors="replace").count("method=XOAUTH2")


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_mail_in_and_reply_out_on_the_providers_tokens_and_a_revoked_token_is_replaced(
    provider, endpoints, mail_servers, slack, database_url, tmp_path
) -> None:
    dovecot, smtp = mail_servers
    slack.add_user(AGENT, "ada", "Ada Staff", channels=(CHANNEL,))
    env = oauth_env(slack, dovecot, smtp, database_url, **PROVIDERS[provider](endpoints, tmp_path))
    with running_bot(env) as bot:
        dovecot.append(customer_mail(1, subject="Printer on fire"))
        wait_until(lambda: ticket_subjects(slack) == ["Printer on fire"], what="the first ticket")
        # Dovecot let the bot in on the token the library got from the stand-in.
        [issued] = endpoints.issued
        assert issued.provider == provider and issued.account == MAILBOX
        assert xoauth2_logins(dovecot) == 1

        reply_from_slack(bot, slack, 1, "We are on our way.")
        [sent] = smtp.wait_for(1)
        assert sent.rcpt_tos == ("customer1@example.org",)
        assert smtp.attempts == [(MAILBOX, issued.access_token)]  # the same token, from the cache

        # The tenant revokes the token (consent withdrawn and given again, a password reset):
        # it stops working at once and the mailbox ends its sessions.
        endpoints.revoke_access_tokens()
        assert end_oauth_sessions(dovecot) == 1
        dovecot.append(customer_mail(2, subject="Printer still on fire"))
        wait_until(lambda: len(ticket_subjects(slack)) == 2, timeout=60, what="the second ticket")
        assert len(endpoints.issued) == 2, "one fresh token after the refusal"
        fresh = endpoints.issued[1].access_token
        assert endpoints.introspect(fresh)["active"]

        reply_from_slack(bot, slack, 2, "Extinguisher sent.")
        smtp.wait_for(2)
        # IMAP and SMTP share one source: the mail server got the fresh token at once.
        assert smtp.attempts[1:] == [(MAILBOX, fresh)]
        assert smtp.violations == []

    assert ticket_subjects(slack) == ["Printer on fire", "Printer still on fire"], "each mail once"
    assert [m.message["Subject"] for m in smtp.mails] == [
        "Re: Printer on fire [#1]",
        "Re: Printer still on fire [#2]",
    ]
    grants = endpoints.grants(provider)
    assert len(grants) == 2 and len(set(grants)) == 1


def test_short_lived_tokens_renew_the_session_before_they_expire_and_mail_keeps_coming(
    endpoints, mail_servers, slack, database_url, tmp_path
) -> None:
    """Tokens of a few seconds (a tenant's token lifetime policy, squeezed): the watcher ends
    each session before its token expires and logs in again on a fresh one, never refused."""
    dovecot, smtp = mail_servers
    endpoints.expires_in = 6
    slack.add_user(AGENT, "ada", "Ada Staff", channels=(CHANNEL,))
    env = oauth_env(slack, dovecot, smtp, database_url, **microsoft_settings(endpoints, tmp_path))
    with running_bot(env) as bot:
        dovecot.append(customer_mail(1, subject="First"))
        wait_until(lambda: ticket_subjects(slack) == ["First"], what="the first ticket")
        wait_until(lambda: xoauth2_logins(dovecot) >= 3, timeout=30, what="two renewals")
        first_expired = endpoints.issued[0]
        wait_until(lambda: not endpoints.introspect(first_expired.access_token)["active"], what="expiry")
        dovecot.append(customer_mail(2, subject="Second"))
        wait_until(lambda: len(ticket_subjects(slack)) == 2, timeout=30, what="the second ticket")
        reply_from_slack(bot, slack, 2, "Noted.")
        smtp.wait_for(1)

    log = dovecot.log_path.read_text(errors="replace")
    assert "auth failed" not in log, "renewed before expiry: no login refused"
    # Each login a token of its own, each one issued by the stand-in to msal.
    checked = [form["token"] for path, form in endpoints.requests if path == "/introspect"]
    assert len(checked) >= 3 and len(set(checked)) == len(checked)
    assert set(checked) <= {i.access_token for i in endpoints.issued}
    assert ticket_subjects(slack) == ["First", "Second"], "each mail once"
    assert smtp.violations == [] and len(smtp.mails) == 1


# -- connection health: a revoked consent is told once, and its end once -------------------


def test_a_revoked_consent_is_told_once_with_what_to_do_and_its_mail_arrives_once(
    endpoints, mail_servers, slack, database_url, tmp_path
) -> None:
    dovecot, smtp = mail_servers
    clock = FrozenClock(START)
    env = oauth_env(
        slack,
        dovecot,
        smtp,
        database_url,
        MANAGERS=",".join(MANAGERS),
        **microsoft_settings(endpoints, tmp_path),
    )
    with running_bot(env, clock=clock) as bot:
        dovecot.append(customer_mail(1, subject="Before the outage"))
        wait_until(lambda: ticket_subjects(slack) == ["Before the outage"], what="the first ticket")

        # An admin withdraws the app's consent: its tokens stop working, and no new one is given.
        endpoints.microsoft_apps["app-id"].consented = False
        endpoints.revoke_access_tokens()
        assert xoauth2_logins(dovecot) == 1, "one session, renewed only when its token is due"
        assert end_oauth_sessions(dovecot) == 1
        wait_until(lambda: error_kind(bot, Service.MAILBOX) == "login_refused", what="the refusal recorded")
        dovecot.append(customer_mail(2, subject="During the outage"))
        text = outage_told_after_ten_minutes(bot, clock, slack)
        assert "The support mailbox is not working" in text and "the login was refused" in text
        assert "run `supportbot auth microsoft` again" in text and "consent" in text
        # What Microsoft said, translated: who must do what.
        assert "AADSTS65001" in text and "admin consent" in text
        assert SECRET not in text and all(i.access_token not in text for i in endpoints.issued)

        endpoints.microsoft_apps["app-id"].consented = True  # consent granted again
        wait_until(lambda: once_each(slack, RECOVERY), timeout=90, what="the recovery told")
        wait_until(lambda: len(ticket_subjects(slack)) == 2, timeout=60, what="the outage's mail")
        minutes_pass(bot, clock, 5)
        wait_until(lambda: quiet(bot), what="the outbox idle")

    assert once_each(slack, OUTAGE) and once_each(slack, RECOVERY)
    assert ticket_subjects(slack) == ["Before the outage", "During the outage"], "each mail once"


# -- `supportbot check-config --connect` with MAIL_AUTH, as an operator runs it -------------


def test_check_config_connect_logs_in_with_the_providers_token_and_names_a_wrong_secret(
    endpoints, mail_servers, tmp_path
) -> None:
    dovecot, smtp = mail_servers
    dovecot.append(customer_mail(1))
    servers = {
        "IMAP_PORT": str(dovecot.port),
        "IMAP_USER": MAILBOX,
        "SMTP_PORT": str(smtp.port),
        "SMTP_USER": MAILBOX,
        # Not the helper's "secret": the output is redacted of every secret, and the word
        # "secret" in Microsoft's advice would read "***".
        "SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543",
    }
    # REQUESTS_CA_BUNDLE (set by the `endpoints` fixture) reaches the child process.
    result = check_config_connect(tmp_path, **servers, **microsoft_settings(endpoints, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == [
        f"ok      IMAP: logged in to 127.0.0.1:{dovecot.port} as {MAILBOX} with an OAuth token (XOAUTH2); "
        "folder 'INBOX' holds 1 messages",
        f"ok      SMTP: 127.0.0.1:{smtp.port} answered (no encryption), logged in as {MAILBOX} "
        "with an OAuth token (XOAUTH2); no mail was sent",
    ]
    [issued] = endpoints.issued  # one token for both, from msal's client credentials
    assert issued.grant == "client_credentials" and smtp.attempts == [(MAILBOX, issued.access_token)]
    assert smtp.mails == []

    wrong = microsoft_settings(endpoints, tmp_path, MS_CLIENT_SECRET="wrong-secret-value")
    result = check_config_connect(tmp_path, **servers, **wrong)
    assert result.returncode == 1
    imap_line, smtp_line = verdicts(result.stdout)
    # Microsoft's AADSTS7000215, translated into what to do.
    said = "Microsoft refused the client secret (AADSTS7000215): copy the secret's Value (not its ID)"
    assert imap_line.startswith(f"FAILED  IMAP: no OAuth token for the mailbox: {said}")
    assert smtp_line.startswith(f"FAILED  SMTP: no OAuth token for the mail server: {said}")
    assert "wrong-secret-value" not in result.stdout + result.stderr
    assert len(endpoints.issued) == 1
