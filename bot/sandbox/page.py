"""`/sandbox`: one HTML page, a small script, JSON endpoints under `/sandbox/api/`, and
the bytes of files shared in the Slack stand-in under `/sandbox/files/<id>`.

The page holds no logic worth the name: it polls `state` and sends what the person
did; `SandboxDesk` turns each into the signed Slack request. Everything the page
shows came from email or from the bot, so the script builds the page with DOM text
nodes only, and the Content-Security-Policy below forbids inline script outright.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from bot.sandbox.desk import MAX_ATTACHMENT_BYTES, DeskError, SandboxDesk
from bot.web import json_response

log = logging.getLogger(__name__)

_STATIC = {
    "sandbox.js": "text/javascript; charset=utf-8",
    "sandbox.css": "text/css; charset=utf-8",
}
_MAX_BODY = 256 * 1024
# The email form carries its files in base64: a third larger than the files themselves.
_MAX_EMAIL_BODY = MAX_ATTACHMENT_BYTES * 4 // 3 + _MAX_BODY
# Downloads: the bytes came from a customer, so the browser must neither guess their type
# nor run them (a file opened on its own is its own sandboxed document).
_FILE_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; sandbox"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
_HEADERS = [
    (
        "Content-Security-Policy",
        # Sent emails' HTML parts are shown in a sandboxed iframe (no scripts, own origin):
        # they need inline styles, nothing else.
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-src 'self' about:; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


def _static(name: str) -> bytes:
    return resources.files("bot.sandbox").joinpath("static", name).read_bytes()


class SandboxPage:
    def __init__(self, desk: SandboxDesk) -> None:
        self.desk = desk
        self.actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "act": desk.act,
            "submit": desk.submit,
            "close": desk.close,
            "command": desk.command,
            "write": desk.write,
            "home": desk.open_home,
            "email": desk.send_email,
            "clock": desk.jump_clock,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "HEAD":
            method = "GET"  # waitress leaves the body out
        if path in ("/sandbox", "/sandbox/") and method == "GET":
            return self._file(start_response, "sandbox.html", "text/html; charset=utf-8")
        if path.startswith("/sandbox/static/") and method == "GET":
            name = path.removeprefix("/sandbox/static/")
            if name in _STATIC:
                return self._file(start_response, name, _STATIC[name])
        if path.startswith("/sandbox/files/") and method == "GET":
            return self._shared_file(start_response, path.removeprefix("/sandbox/files/"))
        if path == "/sandbox/api/state" and method == "GET":
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            user = (query.get("user") or [""])[0]
            return self._answer(start_response, lambda: self.desk.state(user))
        if path.startswith("/sandbox/api/") and method == "POST":
            name = path.removeprefix("/sandbox/api/")
            action = self.actions.get(name)
            if action is not None:
                limit = _MAX_EMAIL_BODY if name == "email" else _MAX_BODY
                return self._post(environ, start_response, action, limit)
        return json_response(start_response, "404 Not Found", {"error": "not found"})

    def _file(self, start_response: Callable[..., Any], name: str, content_type: str) -> list[bytes]:
        data = _static(name)
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(data))), *_HEADERS]
        )
        return [data]

    def _shared_file(self, start_response: Callable[..., Any], file_id: str) -> list[bytes]:
        found = self.desk.file(file_id)
        if found is None:
            return json_response(start_response, "404 Not Found", {"error": "no such file"})
        # Only a picture recognised by its bytes is shown as one; anything else is a download.
        content_type = found.image_type or "application/octet-stream"
        disposition = "inline" if found.image_type else "attachment"
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(found.data))),
                ("Content-Disposition", f"{disposition}; {_filename_params(found.name)}"),
                *_FILE_HEADERS,
            ],
        )
        return [found.data]

    def _post(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        action: Callable[[dict[str, Any]], dict[str, Any]],
        limit: int = _MAX_BODY,
    ) -> list[bytes]:
        # Only JSON: a page on another site cannot send it to us without a CORS preflight,
        # which we never grant, so it cannot act as a sandbox user behind the visitor's back.
        if not (environ.get("CONTENT_TYPE") or "").startswith("application/json"):
            return json_response(start_response, "415 Unsupported Media Type", {"error": "send JSON"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return json_response(start_response, "413 Payload Too Large", {"error": "too large"})
        try:
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            return json_response(start_response, "400 Bad Request", {"error": "not JSON"})
        if not isinstance(request, dict):
            return json_response(start_response, "400 Bad Request", {"error": "send a JSON object"})
        return self._answer(start_response, lambda: action(request))

    def _answer(self, start_response: Callable[..., Any], call: Callable[[], dict[str, Any]]) -> list[bytes]:
        try:
            body = call()
        except (DeskError, LookupError) as exc:
            return json_response(start_response, "400 Bad Request", {"error": str(exc)})
        except Exception as exc:
            log.exception("sandbox request failed")
            return json_response(start_response, "500 Internal Server Error", {"error": type(exc).__name__})
        return json_response(start_response, "200 OK", body)


def _filename_params(name: str) -> str:
    """`filename` for old clients (plain ASCII, nothing that could end the header's quoting)
    and `filename*` (RFC 6266) with the name as it was, percent-encoded."""
    fallback = "".join(ch if ch.isascii() and (ch.isalnum() or ch in " ._-()") else "_" for ch in name)
    return f"filename=\"{fallback.strip() or 'file'}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
