"""`supportbot auth microsoft|google`: a person signs the mailbox in once; the bot keeps the result.

Microsoft: msal's device-code flow (the person opens a page on any device and types a
code); msal's token cache, refresh token included, is stored encrypted. Google: the
installed-app flow of google-auth-oauthlib (a browser, redirected to a local port);
the refresh token is stored encrypted. Both are used by bot/mail/oauth.py from then on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import msal
import requests
from google_auth_oauthlib.flow import InstalledAppFlow
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.mail.oauth import public_app, token_source, token_store
from bot.mail.oauth_errors import microsoft_error
from bot.mail.oauth_settings import GOOGLE_SCOPES, MailOAuthSettings
from bot.mail.oauth_token import TokenError


def sign_in_microsoft(
    settings: MailOAuthSettings,
    factory: sessionmaker[Session],
    clock: Clock,
    say: Callable[[str], None],
    *,
    http: requests.Session | None = None,
) -> str:
    """Run the device-code flow and store the sign-in; returns what to tell the person."""
    ms = settings.microsoft
    if ms is None:
        raise TokenError("MAIL_AUTH is not microsoft: set MAIL_AUTH=microsoft and the MS_* settings first")
    if ms.flow == "app":
        # App-only access has nothing to sign in: check that a token can be had.
        source = token_source(settings, factory, clock, http=http)
        assert source is not None
        source.access_token()
        return "MS_AUTH_FLOW=app needs no sign-in: the app got a token for Exchange Online"
    cache = msal.SerializableTokenCache()
    app = public_app(ms, cache, http)
    try:
        flow = app.initiate_device_flow(scopes=list(ms.scopes))
    except (requests.RequestException, ValueError) as exc:
        raise TokenError(
            f"Cannot reach Microsoft's sign-in service ({type(exc).__name__}): "
            "check MS_AUTHORITY_URL and the network"
        ) from None
    if "user_code" not in flow:
        raise TokenError(microsoft_error(flow))
    say(str(flow.get("message") or f"Open {flow['verification_uri']} and enter the code {flow['user_code']}"))
    say(f"Sign in as the support mailbox, {settings.account}. Waiting…")
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise TokenError(microsoft_error(result))
    token_store(settings, factory, clock).save(cache.serialize())
    who = str((result.get("id_token_claims") or {}).get("preferred_username") or "")
    note = f"Signed in as {who or 'the mailbox'}; the sign-in is stored encrypted in the database."
    if who and who.lower() != settings.account.lower():
        note += f" Note: IMAP_USER is {settings.account}; the bot can only open mailboxes {who} may open."
    return note


def sign_in_google(
    settings: MailOAuthSettings,
    factory: sessionmaker[Session],
    clock: Clock,
    say: Callable[[str], None],
    *,
    port: int = 0,
    open_browser: bool = True,
) -> str:
    """Run the installed-app flow and store the refresh token; returns what to tell the person."""
    google = settings.google
    if google is None:
        raise TokenError("MAIL_AUTH is not google: set MAIL_AUTH=google and GOOGLE_CLIENT_SECRETS_FILE first")
    if google.client_config is None:
        source = token_source(settings, factory, clock)
        assert source is not None
        source.access_token()
        return "A service account needs no sign-in: it got a token for the mailbox by domain-wide delegation"
    config: dict[str, Any] = copy.deepcopy(google.client_config)
    if google.token_uri:
        for section in ("installed", "web"):
            if section in config:
                config[section]["token_uri"] = google.token_uri
    flow = InstalledAppFlow.from_client_config(config, scopes=list(GOOGLE_SCOPES))
    prompt = (
        f"Open this address in a browser and sign in as {settings.account} "
        "(on another machine: forward this port over SSH first):\n{url}"
    )
    try:
        credentials = flow.run_local_server(
            host="localhost",
            port=port,
            open_browser=open_browser,
            authorization_prompt_message=prompt,
            success_message="Signed in: the support bot has its token. You may close this window.",
            # A refresh token is returned only with offline access, and again only on consent.
            access_type="offline",
            prompt="consent",
        )
    except Exception as exc:  # oauthlib's and requests' errors differ by step; all mean "not signed in"
        raise TokenError(
            f"Google sign-in failed ({type(exc).__name__}: {exc}): run `supportbot auth google` again"
        ) from None
    if not credentials.refresh_token:
        raise TokenError(
            "Google returned no refresh token: remove the app's access at "
            "myaccount.google.com/permissions, then run `supportbot auth google` again"
        )
    token_store(settings, factory, clock).save(credentials.refresh_token)
    return "Signed in to Google; the refresh token is stored encrypted in the database."
