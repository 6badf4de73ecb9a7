"""Reading a calendar from a URL someone gave us: http(s) only, bounded in size and time,
conditional (ETag / If-None-Match, Last-Modified / If-Modified-Since), and never to this
machine's own network unless allowed, since anyone on staff may give a URL.

A calendar URL usually carries its secret (PagerDuty's, Google's "secret address"): it is
never logged, and is shown back as `mask_url` gives it.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

MAX_BYTES = 5 * 1024 * 1024
TIMEOUT_SECONDS = 15.0
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Sequence[str]]


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


def resolve_host(host: str) -> list[str]:
    """The host's addresses, as the system resolver gives them (a literal address as itself)."""
    return list(
        dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    )


def _is_public(address: IPAddress) -> bool:
    # ::ffff:127.0.0.1 is 127.0.0.1 to the network: judge the IPv4 address it carries.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_global
    return address.is_global


def fetch_calendar(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    allow_private: bool = False,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_BYTES,
    resolve: Resolver = resolve_host,
    address_ok: Callable[[IPAddress], bool] = _is_public,
    tls: ssl.SSLContext | None = None,
) -> Fetched:
    """GET the calendar, following up to MAX_REDIRECTS redirects.

    Each hop's host is resolved once (`resolve`), every address it gives is checked, and
    the connection is made to a checked address, while the Host header, TLS SNI and the
    certificate check keep the name: a DNS answer that changes between the check and
    the connection (DNS rebinding) cannot send the request inside our network.
    `address_ok` says which addresses are outside it, `tls` which certificates are trusted
    (tests stand a local address and their own authority in).
    """
    url = normalise_url(url)
    headers = {"User-Agent": "supportbot-calendar/1", "Accept": "text/calendar, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            addresses = _checked_addresses(parts.hostname or "", resolve, allow_private, address_ok)
            conn = _connection(parts, addresses, timeout, tls)
            try:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                if response.status in REDIRECTS and response.getheader("Location"):
                    # A public address may redirect to an internal one: each hop is checked.
                    url = normalise_url(urljoin(url, response.getheader("Location") or ""))
                    continue
                if response.status == 304:
                    return Fetched(
                        None,
                        response.getheader("ETag") or etag,
                        response.getheader("Last-Modified") or last_modified,
                    )
                if not 200 <= response.status < 300:
                    raise FetchFailed(f"the calendar server answered {response.status}")
                body = response.read(max_bytes + 1)
                if len(body) > max_bytes:
                    raise FetchFailed(f"the calendar is larger than {max_bytes // (1024 * 1024)} MB")
                return Fetched(body, response.getheader("ETag"), response.getheader("Last-Modified"))
            finally:
                conn.close()
        raise FetchFailed("the calendar server redirected too many times")
    except TimeoutError:
        raise FetchFailed(f"the calendar server did not answer within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise FetchFailed(f"the calendar server's certificate was refused ({type(exc).__name__})") from None
    except (ValueError, http.client.InvalidURL):
        # http.client refuses a path or host it cannot send (control or non-ASCII characters).
        raise FetchFailed("the calendar address holds characters that cannot be sent") from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchFailed(f"the calendar server could not be reached ({type(exc).__name__})") from None


def _checked_addresses(
    host: str, resolve: Resolver, allow_private: bool, address_ok: Callable[[IPAddress], bool]
) -> tuple[str, ...]:
    try:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host)]
    except (OSError, ValueError):
        raise FetchFailed("the calendar's host name does not resolve") from None
    if not addresses:
        raise FetchFailed("the calendar's host name does not resolve")
    if not allow_private and not all(address_ok(a) for a in addresses):
        # All of them: a name with one public and one private address is refused whole.
        raise FetchFailed("the calendar's address is on a private network")
    return tuple(str(a) for a in addresses)


def _connection(
    parts: SplitResult, addresses: tuple[str, ...], timeout: float, tls: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    host = parts.hostname or ""
    if parts.scheme == "https":
        return _PinnedHTTPS(host, parts.port or 443, addresses, timeout, tls or ssl.create_default_context())
    return _PinnedHTTP(host, parts.port or 80, addresses, timeout)


class _PinnedHTTP(http.client.HTTPConnection):
    """Host header from the name; the socket to the address already checked."""

    def __init__(self, host: str, port: int, addresses: tuple[str, ...], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = _connect_any(self.addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP, then TLS with SNI and the certificate checked for the name."""

    def __init__(
        self, host: str, port: int, addresses: tuple[str, ...], timeout: float, tls: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self.addresses = addresses

    def connect(self) -> None:
        raw = _connect_any(self.addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def _connect_any(addresses: tuple[str, ...], port: int, timeout: float) -> socket.socket:
    """The first checked address that answers, in the resolver's order (as
    socket.create_connection does with a name: an unreachable IPv6 falls back to IPv4)."""
    last: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            last = exc
    assert last is not None  # _checked_addresses never gives none
    raise last
