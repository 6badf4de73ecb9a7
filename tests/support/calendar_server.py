"""A calendar server on 127.0.0.1: one body per path, a strong ETag, 304 when the client's
If-None-Match matches, and a status to force (a failing server). Every request is kept."""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class CalendarServer:
    bodies: dict[str, bytes] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    url: str = ""
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location (a 302)
    port: int = 0

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha256(self.bodies[path]).hexdigest()[:16] + '"'


@contextmanager
def calendar_server(
    address: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
) -> Iterator[CalendarServer]:
    """`address` and `port`: a second server on 127.0.0.2 at the first one's port stands for
    another machine the same name could resolve to."""
    state = CalendarServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append(
                {
                    "path": self.path,
                    "if-none-match": self.headers.get("If-None-Match") or "",
                    "host": self.headers.get("Host") or "",
                }
            )
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.bodies.get(self.path)
            if state.status != 200 or body is None:
                self.send_response(state.status if state.status != 200 else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag = state.etag(self.path)
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((address, port), Handler)
    state.port = int(httpd.server_address[1])
    state.url = f"http://{address}:{state.port}"
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        state.url = f"https://{address}:{state.port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
