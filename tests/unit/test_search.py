"""`/support search`: the query language and what it finds, on the real database."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.lists import SUPPORT_USAGE, search_results
from bot.storage.models import Customer, Message, RotaMember, Tag, Ticket, TicketTag
from bot.tickets.queries import TicketLine
from bot.tickets.search import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    SearchError,
    SearchResult,
    escape_like,
    parse_query,
    search_tickets,
)

ROME = ZoneInfo("Europe/Rome")
ADA, BOB = "U0ADA", "U0BOB"
T0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
_keys = itertools.count(1)


@dataclass
class Tickets:
    """A hand-built helpdesk: tickets with customers, messages and tags."""

    session: Session
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add(
        self,
        subject: str = "Hello",
        *,
        email: str = "someone@example.org",
        name: str = "",
        text: str = "",
        reply: str = "",
        note: str = "",
        status: str = "open",
        owner: str | None = None,
        tags: tuple[str, ...] = (),
        created: datetime = T0,
    ) -> int:
        customer = self.session.scalar(select(Customer).where(Customer.email == email))
        if customer is None:
            customer = Customer(email=email, name=name, created_at=created)
            self.session.add(customer)
        number = next(self.numbers)
        ticket = Ticket(
            number=number,
            customer=customer,
            subject=subject,
            status=status,
            owner=owner,
            created_at=created,
            updated_at=created,
        )
        self.session.add(ticket)
        self.session.flush()
        for direction, body in (("in", text), ("out", reply), ("note", note)):
            if body:
                self.session.add(
                    Message(
                        ticket_id=ticket.id,
                        direction=direction,
                        dedupe_key=f"k{next(_keys)}",
                        text=body,
                        created_at=created,
                    )
                )
        for tag in tags:
            row = self.session.scalar(select(Tag).where(Tag.name == tag))
            if row is None:
                row = Tag(name=tag, created_at=created)
                self.session.add(row)
                self.session.flush()
            self.session.add(TicketTag(ticket_id=ticket.id, tag_id=row.id, added_at=created))
        self.session.flush()
        return number


@pytest.fixture
def desk(session_factory: sessionmaker[Session]) -> Iterator[Tickets]:
    with session_factory() as session:
        yield Tickets(session)


def find(desk: Tickets, text: str, *, user: str = ADA, tz: ZoneInfo = ROME, **kwargs: int) -> list[int]:
    return [line.number for line in run(desk, text, user=user, tz=tz, **kwargs).lines]


def run(desk: Tickets, text: str, *, user: str = ADA, tz: ZoneInfo = ROME, **kwargs: int) -> SearchResult:
    return search_tickets(desk.session, parse_query(text, user=user, tz=tz), **kwargs)


# -- words and phrases ---------------------------------------------------------------------------


def test_every_word_must_match_somewhere_in_the_ticket(desk: Tickets) -> None:
    by_subject = desk.add("Refund for order 42")
    by_address = desk.add("Hi", email="refund-desk@shop.example")
    by_name = desk.add("Hi", email="x@example.org", name="Refund Department")
    by_inbound = desk.add("Hi", email="y@example.org", text="I would like a refund please")
    by_reply = desk.add("Hi", email="z@example.org", reply="Your refund is on its way")
    desk.add("Hi", email="w@example.org", note="internal: maybe refund?")  # notes are not searched
    desk.add("Nothing to see", email="v@example.org")
    assert sorted(find(desk, "refund")) == [by_subject, by_address, by_name, by_inbound, by_reply]
    # All words, each anywhere: "order" only in the subject of the first.
    assert find(desk, "refund order") == [by_subject]
    assert find(desk, "refund way") == [by_reply]
    assert find(desk, "refund nowhere") == []


def test_words_ignore_ascii_case_and_phrases_keep_their_order(desk: Tickets) -> None:
    card = desk.add("My Credit Card was charged twice")
    reversed_ = desk.add("Card credit question")
    assert sorted(find(desk, "CREDIT card")) == [card, reversed_]
    assert find(desk, '"credit card"') == [card]
    assert find(desk, "“credit card”") == [card]  # Slack's curly quotes
    assert find(desk, '"card was charged') == [card]  # an unclosed quote runs to the end


def test_case_is_ignored_in_any_script(desk: Tickets) -> None:
    cafe = desk.add("Réclamation café Ümlaut")
    greek = desk.add("Πρόβλημα με την παραγγελία")
    plain = desk.add("RECLAMATION cafe umlaut")
    assert find(desk, "café") == [cafe]
    assert find(desk, "Ümlaut") == [cafe]
    assert find(desk, "παραγγελία") == [greek]
    # SQLite's own lower() folds only A–Z: these need the Unicode fold on both databases.
    assert find(desk, "RÉCLAMATION") == [cafe]
    assert find(desk, "ümlaut") == [cafe]
    assert find(desk, "ΠΑΡΑΓΓΕΛΊΑ") == [greek]
    assert find(desk, '"RÉCLAMATION CAFÉ"') == [cafe]
    # Folding is not accent-stripping: é stays apart from e.
    assert find(desk, "reclamation") == [plain]


def test_wildcards_and_the_escape_character_match_literally(desk: Tickets) -> None:
    percent = desk.add("Refund 100% now")
    hundred = desk.add("Refund 100 now and 1000 later")
    under = desk.add("file a_b.txt missing")
    axb = desk.add("file axb.txt missing")
    slash = desk.add("path C:\\temp\\x broken")
    assert find(desk, "100%") == [percent]
    assert find(desk, "%") == [percent]
    assert find(desk, "a_b") == [under]
    assert find(desk, "_") == [under]
    assert find(desk, "\\") == [slash]
    assert find(desk, "\\temp") == [slash]
    assert find(desk, '"\\%"') == []
    assert sorted(find(desk, "100")) == [percent, hundred]
    assert find(desk, "axb") == [axb]


def test_escape_like_round_trips_the_wildcards() -> None:
    assert escape_like("100%") == "100\\%"
    assert escape_like("a_b") == "a\\_b"
    assert escape_like("\\%") == "\\\\\\%"


# -- operators ---------------------------------------------------------------------------------


def test_from_tag_status_and_number(desk: Tickets) -> None:
    ada_billing = desk.add("Invoice", email="ada@lovelace.example", name="Ada L", tags=("billing",))
    ada_open = desk.add("Login", email="ada@lovelace.example", status="waiting")
    bob = desk.add("Invoice", email="bob@builder.example", tags=("billing", "vip"), status="resolved")
    assert sorted(find(desk, "from:lovelace.example")) == [ada_billing, ada_open]
    assert sorted(find(desk, "from:ADA")) == [ada_billing, ada_open]
    assert sorted(find(desk, 'from:"ada l"')) == [ada_billing, ada_open]
    assert find(desk, "from:<mailto:bob@builder.example|bob@builder.example>") == [bob]
    assert sorted(find(desk, "tag:billing")) == [ada_billing, bob]
    assert find(desk, "tag:#VIP") == [bob]
    assert find(desk, "tag:bill") == []  # tags match whole
    assert find(desk, "status:resolved") == [bob]
    assert sorted(find(desk, "status:waiting status:resolved")) == [ada_open, bob]
    assert find(desk, f"#{bob}") == [bob]
    assert find(desk, f"#{bob} from:ada") == []
    assert find(desk, "invoice tag:billing from:ada") == [ada_billing]


def test_spam_is_left_out_unless_asked_for(desk: Tickets) -> None:
    real = desk.add("Cheap invoice question", email="ada@lovelace.example")
    spam = desk.add("Cheap invoice software!!!", email="deals@junk.example", status="spam")
    assert find(desk, "cheap invoice") == [real]
    assert find(desk, "from:junk.example") == []
    assert find(desk, "cheap status:spam") == [spam]
    assert sorted(find(desk, "cheap status:spam status:open")) == [real, spam]
    assert find(desk, f"#{spam}") == [spam]  # a number names the ticket, wherever it is


def test_owner_me_someone_nobody_and_names_from_the_roster(desk: Tickets) -> None:
    desk.session.add_all(
        [
            RotaMember(user_id=ADA, name="Ada Staff", ical_token="a", joined_at=T0, updated_at=T0),
            RotaMember(user_id=BOB, name="Bob Builder", ical_token="b", joined_at=T0, updated_at=T0),
        ]
    )
    mine = desk.add("One", owner=ADA, status="claimed")
    bobs = desk.add("Two", owner=BOB, status="claimed")
    nobody = desk.add("Three")
    assert find(desk, "owner:me") == [mine]
    assert find(desk, "owner:me", user=BOB) == [bobs]
    assert find(desk, f"owner:<@{BOB}|bob>") == [bobs]
    assert find(desk, f"owner:<@{BOB}|bob the builder>") == [bobs]  # an escaped name may hold spaces
    assert find(desk, f"owner:{BOB}") == [bobs]
    assert find(desk, "owner:@bob") == [bobs]
    assert find(desk, 'owner:"Bob Builder"') == [bobs]
    assert find(desk, "owner:none") == [nobody]
    assert sorted(find(desk, "owner:me owner:nobody")) == [mine, nobody]
    with pytest.raises(SearchError, match="don't know who `@zed`"):
        find(desk, "owner:@zed")


def test_dates_are_whole_days_in_the_team_time_zone(desk: Tickets) -> None:
    # 23:30 UTC on 31 January is already 1 February in Rome.
    late = desk.add("Late", created=datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    early = desk.add("Early", created=datetime(2026, 1, 31, 22, 30, tzinfo=UTC))
    assert find(desk, "after:2026-02-01") == [late]
    assert find(desk, "before:2026-02-01") == [early]
    assert find(desk, "after:2026-01-31 before:2026-02-01") == [early]
    assert find(desk, "after:2026-02-01", tz=ZoneInfo("UTC")) == []
    assert find(desk, "before:2026-02-01", tz=ZoneInfo("UTC")) == [late, early]


def test_newest_first_with_a_page_limit_and_how_many_more(desk: Tickets) -> None:
    numbers = [desk.add(f"Printer jam {n}", created=T0 + timedelta(minutes=n)) for n in range(25)]
    desk.add("Other")
    result = run(desk, "printer")
    assert [line.number for line in result.lines] == numbers[::-1][:20]
    assert result.more == 5
    assert [line.number for line in run(desk, "printer", limit=5).lines] == numbers[::-1][:5]
    exact = run(desk, "printer", limit=25)
    assert len(exact.lines) == 25 and exact.more == 0


def test_message_text_is_read_in_the_newest_tickets_only_and_says_so(desk: Tickets) -> None:
    old = desk.add("Old", text="the blue widget broke", created=T0)
    middle = desk.add("Middle", text="widget", created=T0 + timedelta(days=1))
    new = desk.add("New", text="widget", created=T0 + timedelta(days=2))
    by_subject = desk.add("Blue sky", created=T0 - timedelta(days=9))
    bounded = run(desk, "blue", body_scan=2)
    assert [line.number for line in bounded.lines] == [by_subject]  # subjects are always read
    assert bounded.bodies_since == T0 + timedelta(days=1)
    assert sorted(find(desk, "blue", body_scan=4)) == [old, by_subject]
    assert run(desk, "blue", body_scan=5).bodies_since is None  # every ticket's text was read
    # The window is the newest tickets of the search's own dates.
    dated = run(desk, "blue before:2026-01-11", body_scan=2)
    assert [line.number for line in dated.lines] == [old, by_subject]
    assert sorted(find(desk, "widget", body_scan=2)) == [middle, new]
    text = json.dumps(search_results("blue", bounded.lines, 0, T0, bodies_since=T0))
    assert "Message text was searched in tickets since" in text


# -- what the person is told -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("", "Say what to look for"),
        ("   ", "Say what to look for"),
        ('""', "Say what to look for"),
        ("http://example.com", "don't know the operator `http:`"),
        ("subject:refund", "don't know the operator `subject:`"),
        ("after:yesterday", "`after:yesterday` is not a date"),
        ("before:2026-02-30", "`before:2026-02-30` is not a date"),
        ("after:20260101", "is not a date"),
        ("after:0001-01-01", "is not a date"),
        ("after:2026-03-01 before:2026-02-01", "nothing can match"),
        ("status:pending", "`status:` is one of open, claimed, waiting, resolved"),
        ("from:", "`from:` needs a value"),
        ('tag:""', "`tag:` needs a value"),
        ("tag:a%b", "`tag:` 'a%b' is not a usable tag"),
        ("#12345678901", "is not a ticket number"),
        ("x" * (MAX_QUERY_CHARS + 1), "characters long"),
        (" ".join(["w"] * (MAX_TERMS + 1)), f"at most {MAX_TERMS}"),
        ("refund\x00", "NUL character"),
    ],
)
def test_bad_queries_say_what_is_wrong(query: str, said: str) -> None:
    with pytest.raises(SearchError) as raised:
        parse_query(query, user=ADA, tz=ROME)
    assert said in str(raised.value)


def test_plain_words_that_look_like_operators_are_words(desk: Tickets) -> None:
    meeting = desk.add("Call at 10:30 about :name and $1?")
    assert find(desk, "10:30") == [meeting]
    assert find(desk, ":name $1?") == [meeting]
    assert find(desk, '"http://example.com"') == []


def test_results_render_with_the_query_as_plain_text_and_the_overflow() -> None:
    now = T0 + timedelta(hours=1)
    line = TicketLine(1, 7, "Refund <now>", "a@example.org", "open", None, T0, None, None)
    blocks = search_results("<!channel>  refund", [line], 7, now)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Search: <!channel> refund"},
    }
    assert "*Refund &lt;now&gt;*" in blocks[1]["text"]["text"]
    assert blocks[-1]["elements"][0]["text"] == "7 more; narrow your search."
    assert search_results("x", [line], 4800, now)[-1]["elements"][0]["text"].startswith("4,800 more")
    empty = search_results("x" * 300, [], 0, now)
    assert len(empty[0]["text"]["text"]) <= 150 and "No ticket matches" in empty[1]["text"]["text"]
    assert "/support search" in SUPPORT_USAGE
