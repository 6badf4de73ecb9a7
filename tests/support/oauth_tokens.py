"""A small real `TokenSource` for the XOAUTH2 tests: it fetches tokens over HTTP from the
stand-in's token endpoint (tests/support/oauth_introspection.py) and keeps one until a
minute before it expires, as the providers' sources do. The providers themselves
(msal, google-auth) are tested with their own work; here only the protocol matters."""

from __future__ import annotations

import json
import threading
import urllib.request
from datetime import UTC, datetime, timedelta

from bot.mail.oauth_token import AccessToken, TokenError


class HttpTokenSource:
    def __init__(self, token_url: str, *, keep_until_left: float = 60.0) -> None:
        self.token_url = token_url
        self.keep_until_left = timedelta(seconds=keep_until_left)
        self.fetched: list[tuple[AccessToken, bool]] = []  # (token, asked fresh)
        self.refuse: str | None = None  # a TokenError's sentence to raise instead
        self.asked = 0  # calls, refused ones included
        self._current: AccessToken | None = None
        self._lock = threading.Lock()

    def access_token(self, *, fresh: bool = False) -> AccessToken:
        with self._lock:
            self.asked += 1
            if self.refuse is not None:
                raise TokenError(self.refuse)
            current = self._current
            now = datetime.now(UTC)
            if (
                not fresh
                and current is not None
                and (current.expires_at is None or current.expires_at - now > self.keep_until_left)
            ):
                return current
            request = urllib.request.Request(self.token_url, data=b"grant_type=client_credentials")
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = json.load(answer)
            token = AccessToken(
                value=body["access_token"], expires_at=now + timedelta(seconds=float(body["expires_in"]))
            )
            self._current = token
            self.fetched.append((token, fresh))
            return token

    def spoil(self, value: str = "not-a-token") -> None:
        """Keep a token the server will refuse, as a cached token revoked meanwhile."""
        with self._lock:
            self._current = AccessToken(value=value, expires_at=datetime.now(UTC) + timedelta(hours=1))
