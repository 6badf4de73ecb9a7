"""OAuth 2.0 for the mailbox and the mail server (SASL XOAUTH2): which provider, which app.

MAIL_AUTH=password (the default) keeps IMAP_PASSWORD and SMTP_PASSWORD; microsoft or
google log in with tokens from bot/mail/oauth.py. Every file named here is read at start-up,
so a wrong path or a key of the wrong kind stops the bot with one line naming the setting,
not hours later at the first token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization

from bot.env_reader import ConfigError, EnvReader

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
# App-only (client credentials): Exchange Online's resource with the application
# permissions the admin granted (IMAP.AccessAsApp, SMTP.SendAsApp).
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default",)
# Delegated (device code): msal adds openid, profile and offline_access itself.
MICROSOFT_DELEGATED_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)
GOOGLE_SCOPES = ("https://mail.google.com/",)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"

_KEY_HINT = (
    "a Fernet key that encrypts stored tokens; make one with "
    "`python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
)


@dataclass(frozen=True)
class MicrosoftSettings:
    tenant_id: str
    client_id: str
    flow: Literal["app", "device"]
    authority_url: str = MICROSOFT_AUTHORITY
    client_secret: str | None = field(default=None, repr=False)
    certificate_key: str | None = field(default=None, repr=False)  # PEM private key
    certificate_pem: str | None = field(default=None, repr=False)  # long, and shown nowhere
    certificate_thumbprint: str | None = None  # SHA-1, hex: what the Entra portal shows

    @property
    def authority(self) -> str:
        return f"{self.authority_url.rstrip('/')}/{self.tenant_id}"

    @property
    def scopes(self) -> tuple[str, ...]:
        return MICROSOFT_APP_SCOPES if self.flow == "app" else MICROSOFT_DELEGATED_SCOPES

    def client_credential(self) -> str | dict[str, str] | None:
        """What msal's ConfidentialClientApplication takes: the secret, or the key and certificate.

        Given the certificate (not a thumbprint), msal signs with PS256 and names the
        certificate by its SHA-256 thumbprint, as Entra prefers over SHA-1."""
        if self.certificate_key and self.certificate_pem:
            return {"private_key": self.certificate_key, "public_certificate": self.certificate_pem}
        return self.client_secret


@dataclass(frozen=True)
class GoogleSettings:
    # Exactly one of the two: a service account with domain-wide delegation, or an
    # installed app whose refresh token `supportbot auth google` stores.
    service_account_info: dict[str, Any] | None = field(default=None, repr=False)
    client_config: dict[str, Any] | None = field(default=None, repr=False)
    token_uri: str | None = None  # overrides the files' token_uri (tests)

    @property
    def installed_app(self) -> bool:
        return self.client_config is not None


@dataclass(frozen=True)
class MailOAuthSettings:
    provider: Literal["microsoft", "google"]
    account: str  # the mailbox (IMAP_USER): the subject of delegation, the key of stored tokens
    microsoft: MicrosoftSettings | None = None
    google: GoogleSettings | None = None
    token_key: str | None = field(default=None, repr=False)

    @property
    def stores_tokens(self) -> bool:
        """A refresh token (or msal's cache) lives in the database: device code or installed app."""
        if self.microsoft is not None:
            return self.microsoft.flow == "device"
        return self.google is not None and self.google.installed_app

    def secrets(self) -> list[str]:
        values: list[str | None] = [self.token_key]
        if self.microsoft is not None:
            values += [self.microsoft.client_secret, self.microsoft.certificate_key]
        if self.google is not None:
            if self.google.service_account_info:
                values.append(self.google.service_account_info.get("private_key"))
            if self.google.client_config:
                values.append(_client_section(self.google.client_config).get("client_secret"))
        return [v for v in values if v]


def load_mail_oauth(r: EnvReader) -> MailOAuthSettings | None:
    """None for MAIL_AUTH=password (the default); otherwise the provider's settings, checked."""
    mode = r.text("MAIL_AUTH", "password").lower()
    if mode == "password":
        return None
    if mode not in ("microsoft", "google"):
        raise ConfigError(f"MAIL_AUTH must be password, microsoft or google, got {mode!r}")
    account = r.required("IMAP_USER", "the support mailbox's address (the account the tokens are for)")
    if mode == "microsoft":
        settings = MailOAuthSettings(
            "microsoft", account, microsoft=_microsoft(r), token_key=read_token_key(r)
        )
    else:
        settings = MailOAuthSettings("google", account, google=_google(r), token_key=read_token_key(r))
    if settings.stores_tokens and settings.token_key is None:
        raise ConfigError(f"TOKEN_ENCRYPTION_KEY is not set: {_KEY_HINT}")
    return settings


def read_token_key(r: EnvReader) -> str | None:
    """TOKEN_ENCRYPTION_KEY, checked to be a Fernet key; None when unset. Also seals the
    personal calendar addresses (bot/sealed.py)."""
    key = r.raw("TOKEN_ENCRYPTION_KEY")
    if key is None:
        return None
    try:
        Fernet(key.encode())
    except ValueError:
        raise ConfigError(f"TOKEN_ENCRYPTION_KEY is not a valid key: it must be {_KEY_HINT}") from None
    return key


def _microsoft(r: EnvReader) -> MicrosoftSettings:
    tenant = r.required("MS_TENANT_ID", "the Directory (tenant) ID of your Microsoft Entra app registration")
    client_id = r.required(
        "MS_CLIENT_ID", "the Application (client) ID of your Microsoft Entra app registration"
    )
    flow = r.text("MS_AUTH_FLOW", "app").lower()
    if flow not in ("app", "device"):
        raise ConfigError(
            f"MS_AUTH_FLOW must be app (client credentials) or device (device code), got {flow!r}"
        )
    authority = r.text("MS_AUTHORITY_URL", MICROSOFT_AUTHORITY).rstrip("/")
    if not authority.startswith("https://"):
        raise ConfigError(f"MS_AUTHORITY_URL must be an https:// URL, got {authority!r}")
    secret = r.raw("MS_CLIENT_SECRET")
    cert_file = r.raw("MS_CLIENT_CERTIFICATE_FILE")
    key = cert_pem = thumbprint = None
    if cert_file:
        key, cert_pem, thumbprint = _certificate(cert_file, r.raw("MS_CLIENT_CERTIFICATE_THUMBPRINT"))
    if flow == "app" and not (secret or key):
        raise ConfigError(
            "MS_CLIENT_SECRET is not set: app-only access needs a client secret "
            "(or MS_CLIENT_CERTIFICATE_FILE) from the app registration's Certificates & secrets"
        )
    return MicrosoftSettings(
        tenant_id=tenant,
        client_id=client_id,
        flow=flow,  # type: ignore[arg-type]  # checked above
        authority_url=authority,
        client_secret=secret,
        certificate_key=key,
        certificate_pem=cert_pem,
        certificate_thumbprint=thumbprint,
    )


def _certificate(path: str, thumbprint: str | None) -> tuple[str, str, str]:
    """The PEM private key, the PEM certificate and its SHA-1 thumbprint, from one PEM file."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"MS_CLIENT_CERTIFICATE_FILE cannot be read: {exc.strerror} ({path})") from None
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
        cert = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError):
        raise ConfigError(
            "MS_CLIENT_CERTIFICATE_FILE must be one PEM file holding the private key (unencrypted) "
            "and the certificate uploaded to the app registration"
        ) from None
    derived = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    if thumbprint and thumbprint.replace(":", "").upper() != derived:
        raise ConfigError(
            f"MS_CLIENT_CERTIFICATE_THUMBPRINT does not match the certificate in MS_CLIENT_CERTIFICATE_FILE "
            f"({derived}); leave it unset to use the file's"
        )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), derived


def _google(r: EnvReader) -> GoogleSettings:
    account_file = r.raw("GOOGLE_SERVICE_ACCOUNT_FILE")
    secrets_file = r.raw("GOOGLE_CLIENT_SECRETS_FILE")
    token_uri = r.raw("GOOGLE_TOKEN_URI")
    if account_file and secrets_file:
        raise ConfigError(
            "GOOGLE_SERVICE_ACCOUNT_FILE and GOOGLE_CLIENT_SECRETS_FILE are both set: "
            "set one (a Workspace service account, or a single Gmail account's client secrets)"
        )
    if account_file:
        info = _json_file("GOOGLE_SERVICE_ACCOUNT_FILE", account_file)
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if info.get("type") != "service_account" or missing:
            raise ConfigError(
                "GOOGLE_SERVICE_ACCOUNT_FILE is not a service account key: download a JSON key "
                "from the service account's Keys tab"
            )
        return GoogleSettings(service_account_info=info, token_uri=token_uri)
    if secrets_file:
        config = _json_file("GOOGLE_CLIENT_SECRETS_FILE", secrets_file)
        section = _client_section(config)
        if not section.get("client_id") or not section.get("client_secret"):
            raise ConfigError(
                "GOOGLE_CLIENT_SECRETS_FILE is not an OAuth client's secrets: download the JSON of a "
                "Desktop app client from Google Cloud's Credentials page"
            )
        return GoogleSettings(client_config=config, token_uri=token_uri)
    raise ConfigError(
        "GOOGLE_SERVICE_ACCOUNT_FILE is not set: name a service account key with domain-wide delegation "
        "(Workspace), or set GOOGLE_CLIENT_SECRETS_FILE for a single Gmail account"
    )


def _client_section(config: dict[str, Any]) -> dict[str, Any]:
    section = config.get("installed") or config.get("web") or {}
    return section if isinstance(section, dict) else {}


def _json_file(name: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror} ({path})") from None
    except ValueError:
        raise ConfigError(f"{name} is not JSON ({path})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} is not a JSON object ({path})")
    return data
