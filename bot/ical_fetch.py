"""Reading a calendar from a URL someone gave us: http(s) only, bounded in size and time,
conditional (ETag / If-None-Match, Last-Modified / If-Modified-Since), and never to this
machine's own network unless allowed, since anyone on staff may give a URL.

A calendar URL usually carries its secret (PagerDuty's, Google's "secret address"): it is
never logged, and is shown back as `mask_url` gives it.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_BYTES = 5 * 1024 * 1024
TIMEOUT_SECONDS = 15.0


class FetchFailed(Exception):
    """Why a calendar could not be read, in words safe to show and log (no URL)."""


@dataclass(frozen=True)
class Fetched:
    body: bytes | None  # None: not modified since the validators given
    etag: str | None
    last_modified: str | None


def normalise_url(text: str) -> str:
    """The URL to fetch: webcal:// (what calendar apps are given) read as https://."""
    url = text.strip().strip("<>")
    if url.lower().startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchFailed("a calendar address starts with https:// (or webcal://)")
    return url


def mask_url(url: str) -> str:
    """Scheme and host only: the path and query are where calendar URLs keep their secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


def fetch_calendar(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    allow_private: bool = False,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_BYTES,
) -> Fetched:
    url = normalise_url(url)
    _check_host(url, allow_private)
    headers = {"User-Agent": "supportbot-calendar/1", "Accept": "text/calendar, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    opener = urllib.request.build_opener(_CheckedRedirects(allow_private))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchFailed(f"the calendar is larger than {max_bytes // (1024 * 1024)} MB")
            return Fetched(body, response.headers.get("ETag"), response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(
                None, exc.headers.get("ETag") or etag, exc.headers.get("Last-Modified") or last_modified
            )
        raise FetchFailed(f"the calendar server answered {exc.code}") from None
    except urllib.error.URLError as exc:
        raise FetchFailed(f"the calendar server could not be reached ({type(exc.reason).__name__})") from None
    except TimeoutError:
        raise FetchFailed(f"the calendar server did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise FetchFailed(f"reading the calendar failed ({type(exc).__name__})") from None


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        # A public address may redirect to an internal one: check every hop.
        _check_host(normalise_url(newurl), self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_host(url: str, allow_private: bool) -> None:
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise FetchFailed("the calendar's host name does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise FetchFailed("the calendar's address is on a private network")
