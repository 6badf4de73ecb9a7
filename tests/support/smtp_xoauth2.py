"""An SMTP server (aiosmtpd) that insists on AUTH before MAIL and takes XOAUTH2 tokens,
judged by the OAuth stand-in's introspection, as Microsoft 365 and Gmail do.

XOAUTH2 as Google and Microsoft document it: the client's initial response is
`user=…^Aauth=Bearer …^A^A`; a refused token gets a 334 challenge holding a JSON error,
which the client must answer with an empty line, and then 535. A client that answers the
error challenge with anything else gets 501, so a test sees it. PLAIN and LOGIN take
`password`, for the password setup.
"""

from __future__ import annotations

import json
import ssl
from base64 import b64decode
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

from bot.sandbox.smtp_catcher import SmtpCatcher, _Handler


class Introspector(Protocol):
    """Who judges a token: the OAuth stand-in (tests/support/oauth_introspection.py), or the
    providers' token endpoints (tests/support/token_endpoints.py), by RFC 7662."""

    def introspect(self, token: str) -> dict[str, Any]: ...


_ERROR = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})


class _XOAuthHandler(_Handler):
    def __init__(self, catcher: XOAuthSmtp) -> None:
        super().__init__(catcher)
        self.server_side = catcher

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                blob = b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            blob = answer
        user, token = _parse(blob.decode("utf-8", "replace"))
        self.server_side.attempts.append((user, token))
        verdict = self.server_side.oauth.introspect(token)
        if verdict.get("active") and str(verdict.get("username", "")).lower() == user.lower():
            return AuthResult(success=True, auth_data=user)
        reply = await server.challenge_auth(_ERROR)
        if reply is MISSING:
            return AuthResult(success=False, handled=True)
        if reply != b"":
            self.server_side.violations.append("answered the error challenge with more than an empty line")
            await server.push("501 5.5.2 Expected an empty response to the error challenge")
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")


def _parse(response: str) -> tuple[str, str]:
    user = token = ""
    for part in response.split("\x01"):
        if part.startswith("user="):
            user = part[len("user=") :]
        elif part.startswith("auth=Bearer "):
            token = part[len("auth=Bearer ") :]
    return user, token


class XOAuthSmtp(SmtpCatcher):
    def __init__(
        self,
        oauth: Introspector,
        *,
        password: str = "smtp-secret",
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """With `tls`, STARTTLS is offered and required before AUTH, as at Microsoft 365's port 587."""
        super().__init__(port)
        self.oauth = oauth
        self.password = password
        self.tls = tls
        self.attempts: list[tuple[str, str]] = []  # (user, token) of each XOAUTH2 try
        self.violations: list[str] = []  # what a client did against the XOAUTH2 docs

    def _check_password(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)

    def start(self) -> XOAuthSmtp:
        self._controller = Controller(
            _XOAuthHandler(self),
            hostname=self.host,
            port=self.port,
            auth_required=True,
            # Without `tls`: loopback only, AUTH in clear.
            auth_require_tls=self.tls is not None,
            tls_context=self.tls,
            require_starttls=self.tls is not None,
            authenticator=self._check_password,
        )
        self._controller.start()
        return self
