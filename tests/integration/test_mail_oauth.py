"""Mail OAuth tokens from the real msal and google-auth, over sockets, against local token endpoints.

tests/support/token_endpoints.py stands in for login.microsoftonline.com and Google's
token endpoint; the libraries do their own discovery, assertions, polling and caching.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.env_reader import EnvReader
from bot.mail.oauth import token_source
from bot.mail.oauth_settings import load_mail_oauth
from bot.mail.oauth_token import TokenError, TokenSource
from bot.storage.models_oauth import OAuthToken
from tests.support.token_endpoints import MicrosoftApp, TokenEndpoints, app_certificate, service_account_key
from tests.unit.test_config import BASE

MAILBOX = "support@contoso.example"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[TokenEndpoints]:
    apps = {"app-id": MicrosoftApp("app-id", "right-secret"), "device-id": MicrosoftApp("device-id")}
    with TokenEndpoints(tmp_path, microsoft_apps=apps, device_user=MAILBOX) as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 12, 2, 10, 0, tzinfo=UTC))


def microsoft_env(endpoints: TokenEndpoints, **extra: str) -> dict[str, str]:
    return {
        "MAIL_AUTH": "microsoft",
        "IMAP_USER": MAILBOX,
        "MS_TENANT_ID": endpoints.tenant,
        "MS_CLIENT_ID": "app-id",
        "MS_CLIENT_SECRET": "right-secret",
        "MS_AUTHORITY_URL": endpoints.url,
        **extra,
    }


def source(env: dict[str, str], endpoints: TokenEndpoints, clock: FrozenClock, factory=None) -> TokenSource:
    settings = load_mail_oauth(EnvReader(env))
    assert settings is not None
    made = token_source(settings, factory, clock, http=endpoints.session())  # type: ignore[arg-type]
    assert made is not None
    return made


def test_app_only_token_is_reused_then_refreshed_five_minutes_before_expiry(endpoints, clock) -> None:
    tokens = source(microsoft_env(endpoints), endpoints, clock)
    first = tokens.access_token()
    assert endpoints.valid(first.value)
    assert first.expires_at == clock.now() + timedelta(hours=1)
    assert tokens.access_token() is first
    assert endpoints.grants("microsoft") == ["client_credentials"]

    clock.advance(timedelta(minutes=54))  # six minutes left: still good
    assert tokens.access_token() is first
    clock.advance(timedelta(minutes=1, seconds=1))  # under five minutes left: renewed
    second = tokens.access_token()
    assert second.value != first.value and endpoints.valid(second.value)
    assert endpoints.grants("microsoft") == ["client_credentials", "client_credentials"]
    # The scope asked for is Exchange Online's application permissions.
    scopes = {form.get("scope") for path, form in endpoints.requests if path.endswith("/token")}
    assert any("https://outlook.office365.com/.default" in (s or "") for s in scopes)


def test_a_refused_token_is_replaced_when_asked_fresh(endpoints, clock) -> None:
    tokens = source(microsoft_env(endpoints), endpoints, clock)
    first = tokens.access_token()
    assert tokens.access_token(fresh=True).value != first.value
    assert len(endpoints.grants("microsoft")) == 2


def test_callers_at_once_make_one_request(endpoints, clock) -> None:
    tokens = source(microsoft_env(endpoints), endpoints, clock)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(tokens.access_token().value)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got) == 8
    assert endpoints.grants("microsoft") == ["client_credentials"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"MS_CLIENT_SECRET": "wrong-secret"}, "AADSTS7000215"),
        ({"MS_CLIENT_ID": "unknown-app"}, "AADSTS700016"),
    ],
)
def test_microsoft_refusals_say_what_to_do(endpoints, clock, change, expected) -> None:
    tokens = source(microsoft_env(endpoints, **change), endpoints, clock)
    with pytest.raises(TokenError) as info:
        tokens.access_token()
    text = str(info.value)
    assert expected in text
    assert ("MS_CLIENT_SECRET" if expected == "AADSTS7000215" else "MS_CLIENT_ID") in text
    assert "wrong-secret" not in text and "\n" not in text


def test_missing_admin_consent_says_to_grant_it(endpoints, clock) -> None:
    endpoints.microsoft_apps["app-id"].consented = False
    with pytest.raises(TokenError, match="admin consent"):
        source(microsoft_env(endpoints), endpoints, clock).access_token()


# -- Google: service account with domain-wide delegation ---------------------------------


def google_service_env(
    endpoints: TokenEndpoints, tmp_path: Path, *, delegated: bool = True
) -> dict[str, str]:
    info, public_key = service_account_key(endpoints.google_token_uri)
    endpoints.google_accounts[info["client_email"]] = public_key
    if delegated:
        endpoints.google_delegation[info["client_email"]] = {MAILBOX}
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(info))
    return {"MAIL_AUTH": "google", "IMAP_USER": MAILBOX, "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file)}


def test_google_service_account_signs_for_the_mailbox_and_refreshes(endpoints, clock, tmp_path) -> None:
    tokens = source(google_service_env(endpoints, tmp_path), endpoints, clock)
    first = tokens.access_token()
    # The stand-in verified the assertion's signature, and the token opens the delegated mailbox.
    assert endpoints.introspect(first.value) == {
        "active": True,
        "email": MAILBOX,
        "username": MAILBOX,
        "sub": MAILBOX,
    }
    assert tokens.access_token() is first
    clock.advance(timedelta(minutes=56))
    assert tokens.access_token().value != first.value
    assert endpoints.grants("google") == ["urn:ietf:params:oauth:grant-type:jwt-bearer"] * 2


def test_google_without_delegation_says_where_to_grant_it(endpoints, clock, tmp_path) -> None:
    tokens = source(google_service_env(endpoints, tmp_path, delegated=False), endpoints, clock)
    with pytest.raises(
        TokenError, match=r"Domain-wide delegation.*https://mail.google.com/|unauthorized_client"
    ):
        tokens.access_token()


def test_clock_skew_is_named(endpoints, clock, tmp_path) -> None:
    endpoints.clock_offset = -20 * 60  # this machine is twenty minutes fast: its JWT is from the future
    tokens = source(google_service_env(endpoints, tmp_path), endpoints, clock)
    with pytest.raises(TokenError, match="clock is wrong"):
        tokens.access_token()


# -- `supportbot auth`: device code (Microsoft), installed app (Google) --------------------


def cli_env(endpoints: TokenEndpoints, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "SUPPORT_", "MS_"))
    }
    env.update({**BASE, "DATABASE_URL": database_url, "TOKEN_ENCRYPTION_KEY": KEY, **extra})
    env["IMAP_USER"] = MAILBOX
    env.pop("IMAP_PASSWORD")
    env["REQUESTS_CA_BUNDLE"] = str(endpoints.ca_file)  # the CLI's own requests trust the stand-in
    return env


def stored_blob(factory: sessionmaker[Session], provider: str) -> bytes:
    with factory() as session:
        return session.scalars(select(OAuthToken.blob).where(OAuthToken.provider == provider)).one()


def test_device_code_sign_in_then_two_replicas_share_the_stored_token(
    endpoints, clock, database_url, session_factory, tmp_path
) -> None:
    env = microsoft_env(endpoints, MS_CLIENT_ID="device-id", MS_AUTH_FLOW="device", TOKEN_ENCRYPTION_KEY=KEY)
    env.pop("MS_CLIENT_SECRET")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "auth", "microsoft"],
        env=cli_env(endpoints, database_url, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "https://microsoft.com/devicelogin" in result.stdout and "ABCD-EFGH" in result.stdout
    assert f"Signed in as {MAILBOX}" in result.stdout
    # The stand-in said "authorization_pending" twice before the person approved.
    assert endpoints.grants("microsoft") == ["urn:ietf:params:oauth:grant-type:device_code"]
    polls = [f for p, f in endpoints.requests if f.get("grant_type", "").endswith("device_code")]
    assert len(polls) == 3
    delegated = {f.get("scope") for p, f in endpoints.requests if p.endswith("/devicecode")}
    assert all("IMAP.AccessAsUser.All" in s and "SMTP.Send" in s and "offline_access" in s for s in delegated)

    # Encrypted at rest: neither the access token nor the refresh token is in the row.
    blob = stored_blob(session_factory, "microsoft")
    signed_in_token = endpoints.issued[0].access_token
    assert signed_in_token.encode() not in blob and b"refresh" not in blob and b"M." not in blob

    replica_a = source(env, endpoints, clock, session_factory)
    replica_b = source(env, endpoints, clock, session_factory)
    assert replica_a.access_token().value == signed_in_token  # from the stored cache: no request
    assert replica_b.access_token().value == signed_in_token
    assert len(endpoints.grants("microsoft")) == 1
    # What a mail server's introspection is told, over HTTP as Dovecot asks.
    http = endpoints.session()
    answer = http.get(f"{endpoints.url}/introspect", headers={"Authorization": f"Bearer {signed_in_token}"})
    assert answer.status_code == 200 and answer.json()["email"] == MAILBOX
    assert http.post(f"{endpoints.url}/introspect", data={"token": "forged"}).json() == {"active": False}

    clock.advance(timedelta(minutes=56))
    renewed = replica_a.access_token()  # refresh token grant, stored again for the others
    assert renewed.value != signed_in_token
    assert replica_b.access_token().value == renewed.value  # read from the database, not refreshed again
    assert endpoints.grants("microsoft")[1:] == ["refresh_token"]
    assert renewed.value.encode() not in stored_blob(session_factory, "microsoft")

    endpoints.revoke_all_refresh_tokens()  # consent revoked in Entra
    with pytest.raises(TokenError) as info:
        replica_a.access_token(fresh=True)
    assert "AADSTS65001" in str(info.value) and "supportbot auth microsoft" in str(info.value)


def test_stored_sign_in_is_required_for_device_flow(endpoints, clock, session_factory) -> None:
    env = microsoft_env(endpoints, MS_CLIENT_ID="device-id", MS_AUTH_FLOW="device", TOKEN_ENCRYPTION_KEY=KEY)
    with pytest.raises(TokenError, match="run `supportbot auth microsoft` once"):
        source(env, endpoints, clock, session_factory).access_token()


def test_google_installed_app_sign_in_then_revoked(
    endpoints, clock, database_url, session_factory, tmp_path
) -> None:
    endpoints.google_clients["desktop.apps.googleusercontent.com"] = "desktop-secret"
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "desktop.apps.googleusercontent.com",
                    "client_secret": "desktop-secret",
                    "auth_uri": f"{endpoints.url}/google/auth",
                    "token_uri": endpoints.google_token_uri,
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    env = {
        "MAIL_AUTH": "google",
        "IMAP_USER": MAILBOX,
        "GOOGLE_CLIENT_SECRETS_FILE": str(secrets_file),
        "TOKEN_ENCRYPTION_KEY": KEY,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "auth", "google", "--no-browser"],
        env=cli_env(endpoints, database_url, **env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        address = ""
        for line in child.stdout:  # the prompt, then the address to open
            if line.startswith(f"{endpoints.url}/google/auth"):
                address = line.strip()
                break
        assert "access_type=offline" in address and "mail.google.com" in address
        # The person's browser: Google consents and sends it back to the CLI's local port.
        answer = endpoints.session().get(address, timeout=30)
        assert answer.status_code == 200
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "refresh token is stored encrypted" in out
    assert b"1//" not in stored_blob(session_factory, "google")

    tokens = source(env, endpoints, clock, session_factory)
    first = tokens.access_token()
    assert endpoints.valid(first.value)
    assert endpoints.grants("google") == ["authorization_code", "refresh_token"]

    endpoints.revoke_all_refresh_tokens()
    with pytest.raises(TokenError) as info:
        tokens.access_token(fresh=True)
    assert "invalid_grant" in str(info.value) and "supportbot auth google" in str(info.value)


def test_certificate_credential_and_clock_skew(endpoints, clock, tmp_path) -> None:
    pem, certificate = app_certificate(tmp_path)
    endpoints.microsoft_apps["app-id"].certificate = certificate
    env = microsoft_env(endpoints, MS_CLIENT_CERTIFICATE_FILE=str(pem))
    env.pop("MS_CLIENT_SECRET")
    tokens = source(env, endpoints, clock)
    assert endpoints.valid(tokens.access_token().value)  # the stand-in checked the signed assertion
    assertion = endpoints.requests[-1][1]
    assert "client_secret" not in assertion and assertion["client_assertion"].count(".") == 2

    endpoints.clock_offset = 30 * 60  # this machine is half an hour slow: its assertion has expired
    with pytest.raises(TokenError) as info:
        tokens.access_token(fresh=True)
    assert "AADSTS700024" in str(info.value) and "clock is wrong" in str(info.value)


def test_no_token_reaches_the_log(endpoints, clock, caplog, tmp_path) -> None:
    caplog.set_level(logging.DEBUG)  # msal, google-auth, urllib3 and ours, at their most talkative
    microsoft = source(microsoft_env(endpoints), endpoints, clock)
    google = source(google_service_env(endpoints, tmp_path), endpoints, clock)
    values = [
        microsoft.access_token().value,
        google.access_token().value,
        microsoft.access_token(fresh=True).value,
    ]
    assert "mail OAuth: new Microsoft access token" in caplog.text
    for value in values:
        assert value not in caplog.text
    assert "right-secret" not in caplog.text


def test_unknown_tenant_and_unreachable_service_say_what_to_check(endpoints, clock) -> None:
    with pytest.raises(TokenError, match="MS_TENANT_ID"):
        source(microsoft_env(endpoints, MS_TENANT_ID="no-such-tenant"), endpoints, clock).access_token()
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"https://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(TokenError, match="Cannot reach the Microsoft sign-in service"):
        source(microsoft_env(endpoints, MS_AUTHORITY_URL=nowhere), endpoints, clock).access_token()
    env = {"GOOGLE_TOKEN_URI": f"{nowhere}/token"}
    google = source({**google_service_env(endpoints, Path(endpoints.directory)), **env}, endpoints, clock)
    with pytest.raises(TokenError, match="Cannot reach Google's sign-in service"):
        google.access_token()


def test_auth_for_app_only_checks_the_credentials(endpoints, database_url, tmp_path) -> None:
    def auth(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", "auth", "microsoft"],
            env=cli_env(endpoints, database_url, **microsoft_env(endpoints, **env)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    good = auth()
    assert good.returncode == 0, good.stderr
    assert "needs no sign-in" in good.stdout
    wrong = auth(MS_CLIENT_SECRET="wrong-secret")
    assert wrong.returncode == 2
    assert wrong.stderr.count("\n") == 1 and "AADSTS7000215" in wrong.stderr
    assert "wrong-secret" not in wrong.stdout + wrong.stderr
