"""`supportbot check-config --connect`: log in to the mailbox and the mail server as the
bot would, and say in one line per service what worked or what failed and what to do.

IMAP: connect, log in (password or XOAUTH2), open the folder read-only (EXAMINE), log out.
SMTP: connect, EHLO, STARTTLS or TLS as SMTP_SECURITY says, AUTH, QUIT: no mail is sent.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from bot.config import Settings
from bot.mail.oauth_token import TokenSource
from bot.mail.sender import connect_smtp
from bot.mail.xoauth2 import MailLoginRefused, imap_login


@dataclass(frozen=True)
class Outcome:
    ok: bool
    line: str


def check_mail_connections(
    settings: Settings, token_source: TokenSource | None, *, timeout: float = 20.0
) -> list[Outcome]:
    return [
        check_imap(settings, token_source, timeout=timeout),
        check_smtp(settings, token_source, timeout=timeout),
    ]


def check_imap(settings: Settings, token_source: TokenSource | None, *, timeout: float = 20.0) -> Outcome:
    s = settings
    where = f"{s.imap_host}:{s.imap_port}"
    method = "an OAuth token (XOAUTH2)" if token_source is not None else "the password"
    try:
        client = IMAPClient(s.imap_host, port=s.imap_port, ssl=s.imap_ssl, timeout=timeout)
    except (OSError, IMAPClientError) as exc:
        return Outcome(
            False,
            f"IMAP: cannot reach {where} ({_describe(exc)}): check IMAP_HOST, IMAP_PORT and IMAP_SSL",
        )
    try:
        try:
            if token_source is not None:
                imap_login(client, s.imap_user, token_source)
            else:
                client.login(s.imap_user, s.imap_password)
        except MailLoginRefused as exc:
            return Outcome(False, f"IMAP: {_clean(str(exc), s)}")
        except LoginError as exc:
            return Outcome(
                False,
                f"IMAP: {where} refused the login as {s.imap_user} ({_clean(str(exc), s)}): check "
                "IMAP_USER and IMAP_PASSWORD (Microsoft 365 and Google want MAIL_AUTH and a token)",
            )
        try:
            status = client.select_folder(s.imap_folder, readonly=True)
        except IMAPClientError as exc:
            return Outcome(
                False,
                f"IMAP: logged in to {where} as {s.imap_user}, but cannot open the folder "
                f"{s.imap_folder!r} ({_clean(str(exc), s)}): check IMAP_FOLDER",
            )
        count = int(status.get(b"EXISTS", 0))
        return Outcome(
            True,
            f"IMAP: logged in to {where} as {s.imap_user} with {method}; "
            f"folder {s.imap_folder!r} holds {count} messages",
        )
    except (OSError, IMAPClientError) as exc:
        return Outcome(False, f"IMAP: {where} broke off the connection ({_describe(exc)}); try again")
    finally:
        try:
            client.logout()
        except Exception:
            client.shutdown()


def check_smtp(settings: Settings, token_source: TokenSource | None, *, timeout: float = 20.0) -> Outcome:
    s = settings
    where = f"{s.smtp_host}:{s.smtp_port}"
    security = {"ssl": "TLS", "starttls": "STARTTLS", "none": "no encryption"}[s.smtp_security]
    if token_source is not None:
        login = f"logged in as {s.smtp_user or s.imap_user} with an OAuth token (XOAUTH2)"
    elif s.smtp_user:
        login = f"logged in as {s.smtp_user} with the password"
    else:
        login = "no login (SMTP_USER is unset)"
    try:
        client = connect_smtp(settings, timeout=timeout, token_source=token_source)
    except MailLoginRefused as exc:
        return Outcome(False, f"SMTP: {_clean(str(exc), s)}")
    except smtplib.SMTPAuthenticationError as exc:
        # connect_smtp's sentence names the settings to check; the server's code goes beside
        # the refusal, before that advice.
        said = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        said = " ".join(said.split())
        if "; check " in said:
            said = said.replace("; check ", f" ({exc.smtp_code}); check ", 1)
        else:
            said = f"{exc.smtp_code} {said}"
        return Outcome(False, f"SMTP: {where} refused us: {_clean(said, s)}")
    except smtplib.SMTPException as exc:  # an OSError too: caught first
        return Outcome(False, f"SMTP: {where} refused us: {_clean(_describe(exc), s)}")
    except ssl.SSLError as exc:
        return Outcome(
            False,
            f"SMTP: the TLS handshake with {where} failed ({_describe(exc)}): check SMTP_SECURITY "
            "(465 is usually ssl, 587 starttls)",
        )
    except OSError as exc:
        return Outcome(
            False,
            f"SMTP: cannot reach {where} ({_describe(exc)}): check SMTP_HOST, SMTP_PORT and SMTP_SECURITY",
        )
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
    return Outcome(True, f"SMTP: {where} answered ({security}), {login}; no mail was sent")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {' '.join(text.split())}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return " ".join(str(exc).split()) or type(exc).__name__


def _clean(text: str, settings: Settings) -> str:
    # A server may quote back what it was sent; no password reaches the terminal.
    for secret in (settings.imap_password, settings.smtp_password):
        if secret:
            text = text.replace(secret, "***")
    return text
