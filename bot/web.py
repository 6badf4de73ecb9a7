"""The bot's HTTP server: Slack's endpoint plus our own small pages, one WSGI app.

waitress serves it (a production WSGI server in pure Python, threads, no C build).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from waitress.server import create_server

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
