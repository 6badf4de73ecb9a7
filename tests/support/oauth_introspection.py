"""An OAuth 2.0 authorisation server on loopback: hands out bearer tokens and answers
token introspection (RFC 7662), so Dovecot's `oauth2` passdb and the SMTP stand-in judge
XOAUTH2 logins by the same book.

- `POST /token` (any body): a new token for `user`, `{"access_token", "token_type",
  "expires_in"}` as RFC 6749 §5.1 words it; `lifetime` seconds long.
- `POST /introspect` with `token=…` (Dovecot's `introspection_mode = post`):
  `{"active": true, "username", "exp", "scope"}` for a token that is issued, unrevoked
  and unexpired; `{"active": false}` otherwise (RFC 7662 §2.2: an expired or revoked token
  is simply inactive).

Every introspection is recorded (`checks`), so a test can see which token each login used
and when.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from bot.sandbox.imap_server import free_port


@dataclass(frozen=True)
class Issued:
    token: str
    user: str
    expires: float  # time.time()


@dataclass(frozen=True)
class Check:
    token: str
    at: float  # time.time()
    active: bool


class OAuthStandIn:
    def __init__(self, user: str = "support@example.com", *, lifetime: float = 3600.0) -> None:
        self.user = user
        self.lifetime = lifetime
        self.host = "127.0.0.1"
        self.port = free_port()
        self.issued: list[Issued] = []
        self.checks: list[Check] = []
        self.revoked: set[str] = set()
        self.refusing = False  # every token inactive, new ones too (the app lost its permission)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- what tests do -------------------------------------------------------------

    def issue(self) -> Issued:
        issued = Issued(secrets.token_urlsafe(24), self.user, time.time() + self.lifetime)
        with self._lock:
            self.issued.append(issued)
        return issued

    def revoke(self, token: str) -> None:
        """As when an admin withdraws consent or resets the app's secret: the token is
        refused from now on, though it has not expired."""
        with self._lock:
            self.revoked.add(token)

    def revoke_all(self) -> None:
        with self._lock:
            self.revoked.update(i.token for i in self.issued)

    def introspect(self, token: str) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            issued = next((i for i in self.issued if i.token == token), None)
            usable = issued is not None and issued.expires > now and token not in self.revoked
            active = usable and not self.refusing
            self.checks.append(Check(token, now, active))
        if not active or issued is None:
            return {"active": False}
        return {"active": True, "username": issued.user, "exp": int(issued.expires), "scope": "mail"}

    def accepted(self) -> list[Check]:
        with self._lock:
            return [c for c in self.checks if c.active]

    def expiry_of(self, token: str) -> float:
        with self._lock:
            return next(i.expires for i in self.issued if i.token == token)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> OAuthStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # Dovecot's HTTP client keeps connections open

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("ascii", "replace")
                if self.path.startswith("/token"):
                    issued = standin.issue()
                    answer: dict[str, Any] = {
                        "access_token": issued.token,
                        "token_type": "Bearer",
                        "expires_in": int(standin.lifetime),
                    }
                elif self.path.startswith("/introspect"):
                    token = (parse_qs(body).get("token") or [""])[0]
                    answer = standin.introspect(token)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="oauth-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuthStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
