"""Access tokens for IMAP and SMTP from the providers' own libraries: msal and google-auth.

Each source keeps its token in memory and asks the provider again only when the token is
within REFRESH_MARGIN of expiring (by the bot's clock), or when the server refused it
(`fresh=True`). One lock per source: IMAP and SMTP threads asking at once make one request.
Tokens are never logged; only when they expire.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import requests
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import credentials as google_credentials
from google.oauth2 import service_account
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.mail.oauth_errors import google_error, microsoft_error
from bot.mail.oauth_settings import GOOGLE_SCOPES, GOOGLE_TOKEN_URI, MailOAuthSettings, MicrosoftSettings
from bot.mail.oauth_store import TokenStore
from bot.mail.oauth_token import AccessToken, TokenError, TokenSource

log = logging.getLogger(__name__)

# Renewed this long before it expires: an IMAP login or an SMTP session begun with the
# token must not find it expired a moment later.
REFRESH_MARGIN = timedelta(minutes=5)

# msal's own session waits forever without one; the IMAP and SMTP threads wait on this lock.
# (google-auth's requests transport has its own: 120 s.)
HTTP_TIMEOUT_SECONDS = 30

_NETWORK_ERRORS = (requests.RequestException, OSError)


class _Refreshing:
    """The memory cache and the lock; subclasses say how a new token is obtained."""

    provider = ""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None

    def access_token(self, *, fresh: bool = False) -> AccessToken:
        with self._lock:
            current = self._token
            if not fresh and current is not None and not self._stale(current):
                return current
            try:
                token = self._obtain(fresh=fresh, stale=current)
            except _NETWORK_ERRORS as exc:
                raise TokenError(
                    f"Cannot reach the {self.provider} sign-in service ({type(exc).__name__}): "
                    "check this machine's network and proxy"
                ) from None
            self._token = token
            log.info("mail OAuth: new %s access token, valid until %s", self.provider, token.expires_at)
            return token

    def _stale(self, token: AccessToken) -> bool:
        return token.expires_at is None or token.expires_at - REFRESH_MARGIN <= self._clock.now()

    def _expires(self, seconds: Any) -> datetime | None:
        try:
            return self._clock.now() + timedelta(seconds=int(seconds))
        except (TypeError, ValueError):
            return None

    def _obtain(self, *, fresh: bool, stale: AccessToken | None) -> AccessToken:
        raise NotImplementedError


class MicrosoftAppTokens(_Refreshing):
    """App-only access (client credentials): a shared mailbox, or any the app was given."""

    provider = "Microsoft"

    def __init__(self, ms: MicrosoftSettings, clock: Clock, http: requests.Session | None) -> None:
        super().__init__(clock)
        self._ms = ms
        self._http = http
        self._app: msal.ConfidentialClientApplication | None = None

    def _obtain(self, *, fresh: bool, stale: AccessToken | None) -> AccessToken:
        if self._app is None:
            with _discovery_refused():
                self._app = msal.ConfidentialClientApplication(
                    self._ms.client_id,
                    client_credential=self._ms.client_credential(),
                    authority=self._ms.authority,
                    instance_discovery=_instance_discovery(self._ms),
                    http_client=self._http,
                    timeout=HTTP_TIMEOUT_SECONDS,
                )
        # msal serves its own cache by the system clock; we decided (by ours) that this
        # token is due, so drop msal's copy and ask the endpoint.
        cache = self._app.token_cache
        for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)
        result = self._app.acquire_token_for_client(scopes=list(self._ms.scopes))
        return _microsoft_token(result, self._expires)


class MicrosoftDelegatedTokens(_Refreshing):
    """A user's mailbox by the device-code sign-in `supportbot auth microsoft` stored.

    msal's serialised cache (the refresh token, and the last access token) lives encrypted
    in the database, read again whenever the memory copy is due: another replica may have
    refreshed it already.
    """

    provider = "Microsoft"

    def __init__(
        self, ms: MicrosoftSettings, store: TokenStore, clock: Clock, http: requests.Session | None
    ) -> None:
        super().__init__(clock)
        self._ms = ms
        self._store = store
        self._http = http
        self._cache = msal.SerializableTokenCache()
        self._app: msal.PublicClientApplication | None = None

    def _obtain(self, *, fresh: bool, stale: AccessToken | None) -> AccessToken:
        stored = self._store.load()
        if stored is None:
            raise TokenError(
                "No Microsoft sign-in is stored for the mailbox: run `supportbot auth microsoft` once"
            )
        self._cache.deserialize(stored)
        if self._app is None:
            with _discovery_refused():
                self._app = public_app(self._ms, self._cache, self._http)
        accounts = self._app.get_accounts()
        if not accounts:
            raise TokenError(
                "The stored Microsoft sign-in holds no account: run `supportbot auth microsoft` again"
            )
        result = None
        if not fresh:
            result = self._app.acquire_token_silent_with_error(list(self._ms.scopes), accounts[0])
            if result and "access_token" in result:
                token = _microsoft_token(result, self._expires)
                # The stored token is new to us (another replica refreshed it) and not due yet.
                if (stale is None or token.value != stale.value) and not self._stale(token):
                    return token
        result = self._app.acquire_token_silent_with_error(
            list(self._ms.scopes), accounts[0], force_refresh=True
        )
        if result is None:
            raise TokenError(
                "The stored Microsoft sign-in has no refresh token: run `supportbot auth microsoft` again"
            )
        token = _microsoft_token(result, self._expires)
        if self._cache.has_state_changed:
            self._store.save(self._cache.serialize())
            self._cache.has_state_changed = False
        return token


class GoogleServiceAccountTokens(_Refreshing):
    """A Workspace mailbox through a service account with domain-wide delegation."""

    provider = "Google"

    def __init__(
        self,
        info: Mapping[str, Any],
        subject: str,
        token_uri: str | None,
        clock: Clock,
        http: requests.Session | None,
    ) -> None:
        super().__init__(clock)
        info = dict(info)
        if token_uri:
            info["token_uri"] = token_uri
        self._credentials = service_account.Credentials.from_service_account_info(
            info, scopes=list(GOOGLE_SCOPES), subject=subject
        )
        self._http = http

    def _obtain(self, *, fresh: bool, stale: AccessToken | None) -> AccessToken:
        return _google_refresh(self._credentials, self._http, self._expires_from, installed_app=False)

    def _expires_from(self, expiry: datetime | None) -> datetime | None:
        return _google_expiry(expiry, self._clock)


class GoogleInstalledAppTokens(_Refreshing):
    """A single Gmail account by the refresh token `supportbot auth google` stored."""

    provider = "Google"

    def __init__(
        self,
        client_config: Mapping[str, Any],
        token_uri: str | None,
        store: TokenStore,
        clock: Clock,
        http: requests.Session | None,
    ) -> None:
        super().__init__(clock)
        section = client_config.get("installed") or client_config.get("web") or {}
        self._client_id = section["client_id"]
        self._client_secret = section["client_secret"]
        self._token_uri = token_uri or section.get("token_uri") or GOOGLE_TOKEN_URI
        self._store = store
        self._http = http

    def _obtain(self, *, fresh: bool, stale: AccessToken | None) -> AccessToken:
        refresh_token = self._store.load()
        if refresh_token is None:
            raise TokenError("No Google sign-in is stored for the mailbox: run `supportbot auth google` once")
        credentials = google_credentials.Credentials(
            token=None,
            refresh_token=refresh_token,
            token_uri=self._token_uri,
            client_id=self._client_id,
            client_secret=self._client_secret,
            scopes=list(GOOGLE_SCOPES),
        )
        token = _google_refresh(
            credentials, self._http, lambda expiry: _google_expiry(expiry, self._clock), installed_app=True
        )
        if credentials.refresh_token and credentials.refresh_token != refresh_token:
            self._store.save(credentials.refresh_token)  # Google sent a new one: the old may stop working
        return token


def token_source(
    settings: MailOAuthSettings | None,
    factory: sessionmaker[Session],
    clock: Clock,
    *,
    http: requests.Session | None = None,
) -> TokenSource | None:
    """The token source MAIL_AUTH asks for; None with passwords. `http`: the session the
    libraries talk through (the tests' trusts their local certificate)."""
    if settings is None:
        return None
    if settings.microsoft is not None:
        ms = settings.microsoft
        if ms.flow == "app":
            return MicrosoftAppTokens(ms, clock, http)
        return MicrosoftDelegatedTokens(ms, _store(settings, factory, clock), clock, http)
    google = settings.google
    assert google is not None  # load_mail_oauth sets one provider
    if google.service_account_info is not None:
        return GoogleServiceAccountTokens(
            google.service_account_info, settings.account, google.token_uri, clock, http
        )
    assert google.client_config is not None
    return GoogleInstalledAppTokens(
        google.client_config, google.token_uri, _store(settings, factory, clock), clock, http
    )


def token_store(settings: MailOAuthSettings, factory: sessionmaker[Session], clock: Clock) -> TokenStore:
    return _store(settings, factory, clock)


def _store(settings: MailOAuthSettings, factory: sessionmaker[Session], clock: Clock) -> TokenStore:
    assert settings.token_key is not None  # load_mail_oauth requires it when tokens are stored
    return TokenStore(factory, settings.token_key, settings.provider, settings.account.lower(), clock)


def public_app(
    ms: MicrosoftSettings, cache: msal.TokenCache, http: requests.Session | None
) -> msal.PublicClientApplication:
    """The delegated (device code) client: the CLI signs in with it, the bot refreshes with it."""
    return msal.PublicClientApplication(
        ms.client_id,
        authority=ms.authority,
        token_cache=cache,
        instance_discovery=_instance_discovery(ms),
        http_client=http,
        timeout=HTTP_TIMEOUT_SECONDS,
    )


@contextmanager
def _discovery_refused() -> Iterator[None]:
    """msal reads the tenant's OpenID configuration when built, and says ValueError when refused."""
    try:
        yield
    except ValueError:
        raise TokenError(
            "Microsoft does not know the tenant in MS_TENANT_ID (AADSTS90002): copy the Directory "
            "(tenant) ID from the app registration's Overview page, and check MS_AUTHORITY_URL if set"
        ) from None


def _instance_discovery(ms: MicrosoftSettings) -> bool:
    # Instance discovery asks login.microsoftonline.com whether the authority's host is a
    # known cloud; an authority elsewhere (a sovereign cloud's own, or a test's) skips it.
    return ms.authority_url.rstrip("/") == "https://login.microsoftonline.com"


def _microsoft_token(
    result: Mapping[str, Any] | None, expires: Callable[[Any], datetime | None]
) -> AccessToken:
    if not result or "access_token" not in result:
        raise TokenError(microsoft_error(result or {}))
    return AccessToken(value=str(result["access_token"]), expires_at=expires(result.get("expires_in")))


def _google_refresh(
    credentials: Any,
    http: requests.Session | None,
    expires: Callable[[datetime | None], datetime | None],
    *,
    installed_app: bool,
) -> AccessToken:
    try:
        credentials.refresh(GoogleRequest(session=http))
    except google_exceptions.RefreshError as exc:
        data = exc.args[1] if len(exc.args) > 1 else (exc.args[0] if exc.args else None)
        raise TokenError(google_error(data, installed_app=installed_app)) from None
    except google_exceptions.TransportError as exc:
        raise TokenError(
            f"Cannot reach Google's sign-in service ({_first_line(exc)}): "
            "check this machine's network and proxy"
        ) from None
    return AccessToken(value=str(credentials.token), expires_at=expires(credentials.expiry))


def _google_expiry(expiry: datetime | None, clock: Clock) -> datetime | None:
    """google-auth states expiry as naive UTC by the system clock; we count by the bot's."""
    if expiry is None:
        return None
    aware = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
    remaining = aware - datetime.now(UTC)
    return clock.now() + remaining


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
