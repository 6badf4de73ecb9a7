"""Reading a calendar URL resolves its host once per hop, checks every address, and
connects to the address it checked: a DNS answer that changes between the check and the
connection (DNS rebinding) cannot turn a public name into a request inside our network.

Two real HTTP servers at the same port stand for two machines: 127.0.0.1 ("outside",
the address the tests count as public) and 127.0.0.2 ("inside"). The resolver is a
function the test controls, as a name server would be."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.ical_fetch import FetchFailed, IPAddress, fetch_calendar
from tests.support.calendar_server import CalendarServer, calendar_server
from tests.support.tls import self_signed

pytestmark = pytest.mark.timeout(30)

OUTSIDE = ipaddress.ip_address("127.0.0.1")


def outside_only(address: IPAddress) -> bool:
    return address == OUTSIDE


@pytest.fixture
def machines() -> Iterator[tuple[CalendarServer, CalendarServer]]:
    with calendar_server("127.0.0.1") as outside, calendar_server("127.0.0.2", outside.port) as inside:
        outside.bodies["/cal.ics"] = b"BEGIN:VCALENDAR\r\nX-WHERE:outside\r\nEND:VCALENDAR\r\n"
        inside.bodies["/cal.ics"] = b"BEGIN:VCALENDAR\r\nX-WHERE:inside\r\nEND:VCALENDAR\r\n"
        yield outside, inside


class Rebinding:
    """Answers the outside address first, then the inside one: the attacker's name server."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.asked: list[str] = []
        self.names = names or {}

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host in self.names:
            return self.names[host]
        return ["127.0.0.1"] if self.asked.count(host) == 1 else ["127.0.0.2"]


def test_the_connection_goes_to_the_address_checked(machines: tuple[CalendarServer, CalendarServer]) -> None:
    outside, inside = machines
    resolver = Rebinding()
    fetched = fetch_calendar(
        f"http://calendar.example:{outside.port}/cal.ics", resolve=resolver, address_ok=outside_only
    )
    assert fetched.body == outside.bodies["/cal.ics"]
    assert resolver.asked == ["calendar.example"]  # once: no second look-up to rebind
    assert inside.seen == []
    # The request still names the host it was given (virtual hosting, TLS SNI).
    assert outside.seen[-1]["host"] == f"calendar.example:{outside.port}"


def test_every_address_of_a_name_is_checked(machines: tuple[CalendarServer, CalendarServer]) -> None:
    outside, inside = machines
    resolver = Rebinding({"both.example": ["127.0.0.1", "127.0.0.2"]})
    with pytest.raises(FetchFailed, match="private network"):
        fetch_calendar(
            f"http://both.example:{outside.port}/cal.ics", resolve=resolver, address_ok=outside_only
        )
    assert outside.seen == [] and inside.seen == []


def test_a_redirect_hop_is_resolved_checked_and_pinned_too(
    machines: tuple[CalendarServer, CalendarServer],
) -> None:
    outside, inside = machines
    # Outside sends the client on to a name that resolves inside: refused before any request.
    outside.redirects["/go"] = f"http://intranet.example:{outside.port}/cal.ics"
    resolver = Rebinding({"intranet.example": ["127.0.0.2"]})
    with pytest.raises(FetchFailed, match="private network"):
        fetch_calendar(
            f"http://calendar.example:{outside.port}/go", resolve=resolver, address_ok=outside_only
        )
    assert inside.seen == []
    # A hop to a rebinding name: checked once, connected to what was checked.
    outside.redirects["/next"] = f"http://rebind.example:{outside.port}/cal.ics"
    resolver = Rebinding()
    fetched = fetch_calendar(
        f"http://calendar.example:{outside.port}/next", resolve=resolver, address_ok=outside_only
    )
    assert fetched.body == outside.bodies["/cal.ics"] and inside.seen == []
    assert resolver.asked == ["calendar.example", "rebind.example"]
    assert outside.seen[-1]["host"] == f"rebind.example:{outside.port}"


def test_an_address_that_does_not_answer_falls_back_to_the_next_checked_one(
    machines: tuple[CalendarServer, CalendarServer],
) -> None:
    outside, inside = machines
    # Nothing listens on 127.0.0.3 at that port: refused at once, a dead address, not a rebinding.
    fetched = fetch_calendar(
        f"http://calendar.example:{outside.port}/cal.ics",
        resolve=lambda host: ["127.0.0.3", "127.0.0.1"],
        address_ok=lambda a: str(a) in ("127.0.0.1", "127.0.0.3"),
    )
    assert fetched.body == outside.bodies["/cal.ics"] and inside.seen == []


def test_an_address_http_cannot_send_is_refused_in_words(
    machines: tuple[CalendarServer, CalendarServer],
) -> None:
    outside, _ = machines
    with pytest.raises(FetchFailed, match="cannot be sent"):
        fetch_calendar(f"{outside.url}/cal endar.ics\r\nX-Injected: 1", allow_private=True)
    assert outside.seen == []


def test_redirects_are_bounded(machines: tuple[CalendarServer, CalendarServer]) -> None:
    outside, _ = machines
    outside.redirects["/loop"] = "/loop"
    with pytest.raises(FetchFailed, match="too many"):
        fetch_calendar(f"{outside.url}/loop", allow_private=True)


def test_a_mapped_ipv6_loopback_is_private(machines: tuple[CalendarServer, CalendarServer]) -> None:
    outside, _ = machines
    with pytest.raises(FetchFailed, match="private network"):
        fetch_calendar(
            f"http://sly.example:{outside.port}/cal.ics", resolve=lambda host: ["::ffff:127.0.0.1"]
        )
    assert outside.seen == []


def test_https_checks_the_certificate_for_the_name_not_the_address(tmp_path: Path) -> None:
    name = "calendar.example"
    pem, key_pem = self_signed(tmp_path, common_name=name, dns_names=(name,), ip_addresses=())
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(pem, key_pem)
    trusted = ssl.create_default_context(cafile=str(pem))
    with calendar_server("127.0.0.1", tls=server_tls) as server:
        server.bodies["/cal.ics"] = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
        local = {"resolve": lambda host: ["127.0.0.1"], "address_ok": outside_only, "tls": trusted}
        fetched = fetch_calendar(f"https://calendar.example:{server.port}/cal.ics", **local)
        assert fetched.body == server.bodies["/cal.ics"]
        assert server.seen[-1]["host"] == f"calendar.example:{server.port}"
        # Same address, another name: the certificate does not cover it, nothing is read.
        asked = len(server.seen)
        with pytest.raises(FetchFailed, match="certificate"):
            fetch_calendar(f"https://other.example:{server.port}/cal.ics", **local)
        assert len(server.seen) == asked
