"""MAIL_AUTH and its settings: each mistake stops start-up with one line naming the setting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from bot.config import load_settings
from bot.env_reader import ConfigError, EnvReader
from bot.mail.oauth_errors import google_error, microsoft_error
from bot.mail.oauth_settings import load_mail_oauth
from tests.support.token_endpoints import app_certificate, service_account_key
from tests.unit.test_config import BASE

KEY = Fernet.generate_key().decode()
MS = {"MAIL_AUTH": "microsoft", "IMAP_USER": "help@example.com", "MS_TENANT_ID": "t", "MS_CLIENT_ID": "c"}


def load(env: dict[str, str]):
    return load_mail_oauth(EnvReader(env))


def certificate_pem(tmp_path: Path) -> tuple[Path, str]:
    path, certificate = app_certificate(tmp_path)
    thumbprint = hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return path, thumbprint


def test_password_is_the_default_and_keeps_imap_password_required() -> None:
    assert load({}) is None
    with pytest.raises(ConfigError, match=r"^IMAP_PASSWORD"):
        load_settings({**BASE, "IMAP_PASSWORD": ""})


def test_with_oauth_imap_password_is_optional_and_secrets_are_hidden() -> None:
    env = {**BASE, **MS, "MS_CLIENT_SECRET": "ms-secret-value", "TOKEN_ENCRYPTION_KEY": KEY}
    env.pop("IMAP_PASSWORD")
    settings = load_settings(env)
    assert settings.mail_oauth is not None and settings.mail_oauth.microsoft is not None
    assert settings.mail_oauth.microsoft.scopes == ("https://outlook.office365.com/.default",)
    assert {"ms-secret-value", KEY} <= set(settings.secrets())
    assert "ms-secret-value" not in repr(settings) and KEY not in repr(settings)


def google_env(tmp_path: Path) -> dict[str, str]:
    info, _ = service_account_key("https://oauth2.googleapis.com/token")
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(info))
    return {"MAIL_AUTH": "google", "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file)}


@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_with_mail_auth_smtp_user_needs_no_password_and_imap_password_is_optional(
    provider: str, tmp_path: Path
) -> None:
    oauth = {**MS, "MS_CLIENT_SECRET": "ms-secret-value"} if provider == "microsoft" else google_env(tmp_path)
    without = {k: v for k, v in BASE.items() if k != "IMAP_PASSWORD"}
    settings = load_settings({**without, **oauth, "SMTP_USER": "help@example.com"})
    assert settings.mail_oauth is not None and settings.mail_oauth.provider == provider
    assert settings.smtp_user == "help@example.com" and not settings.smtp_password
    assert settings.imap_password == ""
    # Given anyway (left over from the password setup), it is accepted, and still hidden.
    settings = load_settings({**BASE, **oauth, "SMTP_USER": "help@example.com", "SMTP_PASSWORD": "old-pw"})
    assert settings.imap_password == "imap-password-value"
    assert {"imap-password-value", "old-pw"} <= set(settings.secrets())


def test_with_passwords_smtp_user_still_needs_its_password() -> None:
    with pytest.raises(ConfigError, match=r"^SMTP_PASSWORD is not set but SMTP_USER is"):
        load_settings({**BASE, "SMTP_USER": "help@example.com"})
    with pytest.raises(ConfigError, match=r"^IMAP_PASSWORD"):
        load_settings({k: v for k, v in BASE.items() if k != "IMAP_PASSWORD"})


def test_device_flow_asks_for_delegated_scopes_and_needs_the_key() -> None:
    settings = load({**MS, "MS_AUTH_FLOW": "device", "TOKEN_ENCRYPTION_KEY": KEY})
    assert settings is not None and settings.stores_tokens and settings.microsoft is not None
    assert settings.microsoft.scopes == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
    )
    with pytest.raises(ConfigError, match=r"^TOKEN_ENCRYPTION_KEY is not set: .*Fernet.generate_key"):
        load({**MS, "MS_AUTH_FLOW": "device"})


def test_certificate_thumbprint_is_derived_and_checked(tmp_path: Path) -> None:
    path, thumbprint = certificate_pem(tmp_path)
    settings = load({**MS, "MS_CLIENT_CERTIFICATE_FILE": str(path)})
    assert settings is not None and settings.microsoft is not None
    assert settings.microsoft.certificate_thumbprint == thumbprint
    credential = settings.microsoft.client_credential()
    assert isinstance(credential, dict) and "PRIVATE KEY" in credential["private_key"]
    assert "BEGIN CERTIFICATE" in credential["public_certificate"]
    # The thumbprint as the portal shows it (with colons, lower case) is accepted.
    shown = ":".join(thumbprint[i : i + 2] for i in range(0, 40, 2)).lower()
    assert load({**MS, "MS_CLIENT_CERTIFICATE_FILE": str(path), "MS_CLIENT_CERTIFICATE_THUMBPRINT": shown})
    with pytest.raises(ConfigError, match=r"^MS_CLIENT_CERTIFICATE_THUMBPRINT"):
        load({**MS, "MS_CLIENT_CERTIFICATE_FILE": str(path), "MS_CLIENT_CERTIFICATE_THUMBPRINT": "AB" * 20})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MAIL_AUTH": "oauth"}, "MAIL_AUTH"),
        ({**MS, "MS_TENANT_ID": ""}, "MS_TENANT_ID"),
        ({**MS, "MS_CLIENT_ID": ""}, "MS_CLIENT_ID"),
        (MS, "MS_CLIENT_SECRET"),
        ({**MS, "MS_CLIENT_SECRET": "s", "MS_AUTH_FLOW": "browser"}, "MS_AUTH_FLOW"),
        ({**MS, "MS_CLIENT_SECRET": "s", "MS_AUTHORITY_URL": "http://login.example"}, "MS_AUTHORITY_URL"),
        ({**MS, "MS_CLIENT_CERTIFICATE_FILE": "/nonexistent/app.pem"}, "MS_CLIENT_CERTIFICATE_FILE"),
        ({**MS, "MS_CLIENT_SECRET": "s", "TOKEN_ENCRYPTION_KEY": "not-a-key"}, "TOKEN_ENCRYPTION_KEY"),
        ({"MAIL_AUTH": "google", "IMAP_USER": "a@b"}, "GOOGLE_SERVICE_ACCOUNT_FILE"),
        (
            {"MAIL_AUTH": "google", "IMAP_USER": "a@b", "GOOGLE_SERVICE_ACCOUNT_FILE": "/nonexistent.json"},
            "GOOGLE_",
        ),
        ({"MAIL_AUTH": "microsoft"}, "IMAP_USER"),
    ],
)
def test_each_mistake_names_its_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(env)
    assert str(info.value).startswith(named)
    assert "\n" not in str(info.value)


def test_google_files_are_checked_for_their_kind(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"installed": {"client_id": "x", "client_secret": "y"}}))
    google = {"MAIL_AUTH": "google", "IMAP_USER": "a@b"}
    with pytest.raises(ConfigError, match=r"^GOOGLE_SERVICE_ACCOUNT_FILE is not a service account key"):
        load({**google, "GOOGLE_SERVICE_ACCOUNT_FILE": str(wrong)})
    with pytest.raises(ConfigError, match=r"^TOKEN_ENCRYPTION_KEY"):
        load({**google, "GOOGLE_CLIENT_SECRETS_FILE": str(wrong)})
    settings = load({**google, "GOOGLE_CLIENT_SECRETS_FILE": str(wrong), "TOKEN_ENCRYPTION_KEY": KEY})
    assert settings is not None and settings.stores_tokens and "y" in settings.secrets()
    with pytest.raises(ConfigError, match=r"^GOOGLE_SERVICE_ACCOUNT_FILE and GOOGLE_CLIENT_SECRETS_FILE"):
        load({**google, "GOOGLE_CLIENT_SECRETS_FILE": str(wrong), "GOOGLE_SERVICE_ACCOUNT_FILE": str(wrong)})


@pytest.mark.parametrize(
    ("result", "says"),
    [
        ({"error": "invalid_client", "error_codes": [7000215]}, "MS_CLIENT_SECRET"),
        ({"error": "invalid_client", "error_description": "AADSTS7000222: expired"}, "has expired"),
        ({"error": "unauthorized_client", "error_codes": [700016]}, "MS_CLIENT_ID"),
        ({"error": "invalid_grant", "error_codes": [65001]}, "admin consent"),
        ({"error": "invalid_grant", "error_codes": [700024]}, "clock is wrong"),
        ({"error": "invalid_grant", "error_codes": [1]}, "supportbot auth microsoft"),
    ],
)
def test_microsoft_codes_become_instructions(result: dict, says: str) -> None:
    assert says in microsoft_error(result)


@pytest.mark.parametrize(
    ("data", "installed", "says"),
    [
        (
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
            True,
            "auth google",
        ),
        (
            {"error": "unauthorized_client", "error_description": "Client is unauthorized"},
            False,
            "Domain-wide",
        ),
        (
            {"error": "invalid_grant", "error_description": "Invalid JWT: ... Check your iat and exp"},
            False,
            "clock",
        ),
        ({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, False, "new key"),
    ],
)
def test_google_errors_become_instructions(data: dict, installed: bool, says: str) -> None:
    assert says in google_error(data, installed_app=installed)


_TEXT = st.text(max_size=400)
_ANSWER = st.dictionaries(
    st.sampled_from(["error", "error_description", "error_codes", "timestamp"]),
    st.one_of(_TEXT, st.lists(st.one_of(st.integers(), _TEXT), max_size=4), st.none()),
)


@given(_ANSWER, st.booleans())
def test_any_refusal_becomes_one_line(answer: dict, installed: bool) -> None:
    # Whatever a token endpoint (or a proxy in front of it) answers: one line, never an exception.
    for sentence in (microsoft_error(answer), google_error(answer, installed_app=installed)):
        assert sentence and "\n" not in sentence and "\r" not in sentence and len(sentence) < 800
