"""What the mail connections need of OAuth: a current access token, and when it expires.

The providers (bot/mail/oauth.py: msal for Microsoft 365, google-auth for Google) implement
`TokenSource`; IMAP and SMTP (bot/mail/xoauth2.py) only ask it for a token, so each side is
tested without the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class AccessToken:
    value: str = ""
    # UTC, by the real clock (the watcher renews sessions by it); None: the provider did not say
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # never print the token itself
        return f"AccessToken(expires_at={self.expires_at!r})"


class TokenError(Exception):
    """No token could be had: the message is one sentence saying what to do (consent revoked,
    wrong secret, clock skew), fit for the log and for the notice in Slack."""


class TokenSource(Protocol):
    def access_token(self, *, fresh: bool = False) -> AccessToken:
        """A token valid for a while yet (refreshed before it expires); `fresh`: the server
        refused the last one, so do not serve it from a cache. Raises TokenError."""
        ...
