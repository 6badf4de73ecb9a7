"""Logging in to IMAP and SMTP with an OAuth 2.0 token (SASL XOAUTH2).

Microsoft 365 and Google take a bearer token where a password used to go. The initial
response is `user=<user>^Aauth=Bearer <token>^A^A` (base64 on the wire). A server that
refuses the token answers with a challenge holding a JSON error, which the client must
acknowledge with an empty line before the server says no (Google's XOAUTH2 protocol
page). The token comes from a `TokenSource` (bot/mail/oauth_token.py): a refused
token may have been revoked or cut short early, so each login asks once more for a fresh
one before giving up with one sentence saying what to do.
"""

from __future__ import annotations

import imaplib
import smtplib
from typing import TYPE_CHECKING

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bot.mail.oauth_token import AccessToken, TokenError, TokenSource

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.clock import Clock
    from bot.config import Settings

MECHANISM = "XOAUTH2"


class MailLoginRefused(Exception):
    """No login with a token: refused twice, or no token to be had. One sentence, fit for
    the log and for Slack, saying what to do; it never holds the token."""


def xoauth2_response(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial client response, before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def _token(source: TokenSource, *, fresh: bool, service: str) -> AccessToken:
    try:
        return source.access_token(fresh=fresh)
    except TokenError as exc:
        raise MailLoginRefused(f"no OAuth token for {service}: {exc}") from None


def imap_login(client: IMAPClient, user: str, source: TokenSource) -> AccessToken:
    """AUTHENTICATE XOAUTH2 as `user`; returns the token the session now runs on.

    IMAP (RFC 3501 §6.2.2) allows another AUTHENTICATE after a NO on the same connection,
    so the second try needs no reconnection.
    """
    token = _token(source, fresh=False, service="the mailbox")
    try:
        _authenticate(client, user, token.value)
        return token
    except _Refused:
        pass
    token = _token(source, fresh=True, service="the mailbox")
    try:
        _authenticate(client, user, token.value)
    except _Refused as exc:
        raise MailLoginRefused(
            f"the IMAP server refused a fresh OAuth token for {user} ({_first_line(str(exc), token)}): "
            "check that the app may read this mailbox (Microsoft: IMAP.AccessAsApp and a mailbox "
            "permission for its service principal; Google: the https://mail.google.com/ scope)"
        ) from None
    return token


class _Refused(Exception):
    pass


def _authenticate(client: IMAPClient, user: str, token: str) -> None:
    """AUTHENTICATE XOAUTH2, answering an error challenge with an empty line.

    Not imapclient's `oauth2_login`: it answers every challenge with the token again,
    where Google's XOAUTH2 page asks for an empty response to the error challenge.
    """
    responses = iter([xoauth2_response(user, token)])
    try:
        # imaplib base64-encodes what the callback returns; "" sends an empty line.
        client._imap.authenticate(MECHANISM, lambda challenge: next(responses, ""))
    except imaplib.IMAP4.abort:
        raise  # the connection failed: not a refusal
    except IMAPClientError as exc:  # NO or BAD: the server refused the token
        raise _Refused(str(exc)) from None


class _XOAuth2:
    """smtplib's `authobject`: the initial response first; to a challenge (the server's
    JSON error) an empty line, so the server ends the exchange with its 535."""

    def __init__(self, user: str, token: str) -> None:
        self._response = xoauth2_response(user, token)

    def __call__(self, challenge: bytes | None = None) -> str:
        return self._response if challenge is None else ""


def smtp_login(client: smtplib.SMTP, user: str, source: TokenSource) -> AccessToken:
    """AUTH XOAUTH2 as `user` (after EHLO, and STARTTLS where used); returns the token used.

    RFC 4954 §4 lets a client try AUTH again after a 535, on the same connection.
    """
    client.ehlo_or_helo_if_needed()
    offered = client.esmtp_features.get("auth", "").upper().split()
    if MECHANISM not in offered:
        raise MailLoginRefused(
            f"the SMTP server offers no AUTH {MECHANISM} (it offers {' '.join(offered) or 'no AUTH'}): "
            "check SMTP_HOST, SMTP_PORT and SMTP_SECURITY (Microsoft 365: smtp.office365.com, 587, "
            "starttls; Google: smtp.gmail.com, 465, ssl)"
        )
    token = _token(source, fresh=False, service="the mail server")
    try:
        client.auth(MECHANISM, _XOAuth2(user, token.value))
        return token
    except smtplib.SMTPAuthenticationError:
        pass
    token = _token(source, fresh=True, service="the mail server")
    try:
        client.auth(MECHANISM, _XOAuth2(user, token.value))
    except smtplib.SMTPAuthenticationError as exc:
        error = exc.smtp_error
        answer = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        raise MailLoginRefused(
            f"the SMTP server refused a fresh OAuth token for {user} "
            f"({exc.smtp_code} {_first_line(answer, token)}): check that SMTP AUTH is enabled for "
            "this mailbox (Microsoft: SMTP.Send and authenticated SMTP turned on for it; "
            "Google: the https://mail.google.com/ scope)"
        ) from None
    return token


def _first_line(text: str, token: AccessToken) -> str:
    # Servers quote odd things back; the token must never reach a log line or Slack.
    line = " ".join(text.split())[:200]
    return line.replace(token.value, "***") if token.value else line


def mail_token_source(settings: Settings, factory: sessionmaker[Session], clock: Clock) -> TokenSource | None:
    """The token source IMAP and SMTP log in with; None when they use passwords (no MAIL_AUTH)."""
    if settings.mail_oauth is None:
        return None
    # why: the providers (bot/mail/oauth.py, the OAuth work) load msal or google-auth,
    # which a password setup never needs.
    from bot.mail import oauth

    return oauth.token_source(settings.mail_oauth, factory, clock)
