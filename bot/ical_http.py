"""`GET /ical/<token>.ics`: the rota's calendar feeds over HTTP, for calendar apps.

The token in the path is the only thing guarding a feed, so it must never reach a
log line: this app logs no paths, and waitress's own messages that name the path
(a client that hung up, an exception escaping the app) have feed paths masked.
"""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.web import WSGIApp, json_response
from rota.feeds import feed_for_token

log = logging.getLogger(__name__)

PREFIX = "/ical/"
_FEED_PATH = re.compile(r"/ical/([^/]*)\.ics")
_ANY_FEED_PATH = re.compile(r"/ical/[^\s'\"]*")
_CACHE_CONTROL = "private, max-age=300"


class MaskFeedPaths(logging.Filter):
    """Replaces whatever follows /ical/ in a record with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if PREFIX in message:
            record.msg, record.args = _ANY_FEED_PATH.sub(PREFIX + "***", message), None
        return True


def _mask_waitress_logs() -> None:
    waitress_log = logging.getLogger("waitress")
    if not any(isinstance(f, MaskFeedPaths) for f in waitress_log.filters):
        waitress_log.addFilter(MaskFeedPaths())


def ical_app(factory: sessionmaker[Session], clock: Clock, settings: Settings) -> WSGIApp:
    """The WSGI app for the `/ical/` prefix of the bot's router."""
    _mask_waitress_logs()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in {"GET", "HEAD"}:
            data = b'{"error": "method not allowed"}'
            start_response(
                "405 Method Not Allowed",
                [
                    ("Allow", "GET, HEAD"),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(data))),
                ],
            )
            return [data]
        match = _FEED_PATH.fullmatch(environ.get("PATH_INFO", ""))
        token = match.group(1) if match else ""
        try:
            with factory() as session:
                body = feed_for_token(
                    session, token, tz=settings.timezone, now=clock.now(), base_url=settings.base_url
                )
        except Exception as exc:
            # The traceback may quote the token (a database error prints its parameters).
            text = "".join(traceback.format_exception(exc))
            log.error(
                "serving a calendar feed failed:\n%s", text.replace(token, "***") if len(token) >= 8 else text
            )
            return json_response(start_response, "500 Internal Server Error", {"error": "internal error"})
        if body is None:
            # The same answer as for any unknown path, so a wrong token reveals nothing.
            return json_response(start_response, "404 Not Found", {"error": "not found"})

        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = [("ETag", etag), ("Cache-Control", _CACHE_CONTROL)]
        if _etag_matches(environ.get("HTTP_IF_NONE_MATCH", ""), etag):
            start_response("304 Not Modified", headers)
            return []
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/calendar; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Content-Disposition", 'inline; filename="oncall.ics"'),
                ("X-Content-Type-Options", "nosniff"),
                *headers,
            ],
        )
        return [] if method == "HEAD" else [body]

    return app


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored."""
    candidates = [c.strip() for c in if_none_match.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates if c)
