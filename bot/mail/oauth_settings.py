"""OAuth 2.0 for the mailbox and the mail server (SASL XOAUTH2): which provider, which app.

MAIL_AUTH=password (the default) keeps IMAP_PASSWORD and SMTP_PASSWORD; microsoft or
google log in with tokens from bot/mail/oauth.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.env_reader import EnvReader


@dataclass(frozen=True)
class MailOAuthSettings:
    provider: str

    def secrets(self) -> list[str]:
        return []


def load_mail_oauth(r: EnvReader) -> MailOAuthSettings | None:
    """None unless MAIL_AUTH names a provider (filled in by the OAuth work)."""
    return None
