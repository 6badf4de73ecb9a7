"""The bot's HTTP server: Slack's endpoint plus our own small pages, one WSGI app.

waitress serves it (a production WSGI server in pure Python, threads, no C build).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session, sessionmaker
from waitress.server import create_server

from bot.storage.seen_signatures import SIGNATURE_WINDOW, SignatureBook

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def json_response(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Router:
    """Exact-path and prefix routes; the Slack endpoint is just one of them."""

    def __init__(self) -> None:
        self.exact: dict[str, WSGIApp] = {}
        self.prefixes: list[tuple[str, WSGIApp]] = []

    def add(self, path: str, app: WSGIApp) -> None:
        self.exact[path] = app

    def add_prefix(self, prefix: str, app: WSGIApp) -> None:
        self.prefixes.append((prefix, app))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        app = self.exact.get(path)
        if app is None:
            app = next((a for prefix, a in self.prefixes if path.startswith(prefix)), None)
        if app is None:
            return json_response(start_response, "404 Not Found", {"error": "not found"})
        return app(environ, start_response)


class SlackGate:
    """What stands before Bolt at /slack/events: only signed, fresh, first-seen requests with
    a body Bolt can read get through.

    Bolt checks the signature and that the timestamp is within five minutes, which still
    lets a captured request be sent again within those minutes: a second claim, a second
    email from a replayed reply. Slack never sends one signed request twice (its retries
    carry a new timestamp, hence a new signature), so a repeat is never Slack's: the gate
    remembers every accepted signature in the database, shared by all replicas, and
    refuses a repeat with a 401. Bad signatures are refused before anything is stored, so
    forged requests cannot fill that table.
    """

    def __init__(self, app: WSGIApp, signing_secret: str, factory: sessionmaker[Session]) -> None:
        self.app = app
        self.secret = signing_secret.encode()
        self.factory = factory
        self.signatures = SignatureBook(factory)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        # Bolt reads the body again; hand it a fresh stream holding what we read.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
        timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
        if not signed_by_slack(self.secret, body, timestamp, signature, time.time()):
            return json_response(start_response, "401 Unauthorized", {"error": "invalid request"})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or not _parses_as_slack_body(text, str(environ.get("CONTENT_TYPE") or "")):
            # Slack sends UTF-8 JSON objects only; Bolt would answer anything else with a 500.
            return json_response(start_response, "400 Bad Request", {"error": "not a Slack request body"})
        try:
            # Wall-clock time, as Bolt judges freshness: the bot's clock may be moved (sandbox).
            fresh = self.signatures.first_time_seen(signature, datetime.now(UTC))
        except Exception:
            log.exception("cannot record a Slack request signature; refusing the request")
            return json_response(start_response, "503 Service Unavailable", {"error": "try again"})
        if not fresh:
            log.warning("refused a replayed Slack request (signature already accepted)")
            return json_response(start_response, "401 Unauthorized", {"error": "invalid request"})
        try:
            return self.app(environ, start_response)
        except Exception:
            # Bolt's own error handling can fail on payload shapes Slack never sends (a view
            # without `type`): a bad request, not a reason for a 500 that invites retries.
            log.exception("Bolt could not handle a signed Slack request")
            return json_response(start_response, "400 Bad Request", {"error": "not a Slack request body"})


def signed_by_slack(secret: bytes, body: bytes, timestamp: str, signature: str, now: float) -> bool:
    """Slack's check: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, timestamp within the window.

    Done on the raw bytes (slack_sdk's verifier raises on a body that is not UTF-8 and on a
    timestamp that is not a number, which would make forgeries into 500s).
    """
    if not timestamp.isdigit() or abs(now - int(timestamp)) > SIGNATURE_WINDOW.total_seconds():
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape"))


def _parses_as_slack_body(text: str, content_type: str) -> bool:
    """Whether Bolt can read `text` as a request (it parses JSON, or a form whose `payload`
    field is JSON, and expects an object either way)."""
    try:
        if content_type == "application/json" or text.startswith("{"):
            return isinstance(json.loads(text), dict)
        if "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            return payload is None or isinstance(json.loads(payload), dict)
    except ValueError:
        return False
    return True


class HttpServer:
    def __init__(self, app: WSGIApp, host: str, port: int) -> None:
        # Slack retries a request that gets no answer in 3 s; enough threads that a slow
        # database moment does not queue requests behind each other.
        self.server = create_server(app, host=host, port=port, threads=32, ident="supportbot")
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.effective_port)  # type: ignore[union-attr]

    @property
    def host(self) -> str:
        return str(self.server.effective_host)  # type: ignore[union-attr]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.run, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.close()
        if self._thread is not None:
            self._thread.join(5)
