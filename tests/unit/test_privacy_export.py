"""A customer's data: what we hold at a glance, and the ZIP a manager sends them (right of access).

The customer's neighbours (plus-addressing, a longer local part, a look-alike domain) each have
tickets of their own, with a phrase only they wrote: none of it may reach Ada's export.
"""

from __future__ import annotations

import email
import io
import json
import os
import tracemalloc
import zipfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.privacy.export import export_filename, write_export
from bot.privacy.holdings import NotAnAddress, customer_address, customer_holdings
from bot.slack.privacy import holdings_blocks
from bot.storage.models import (
    AutoReply,
    BlockedSender,
    Event,
    Message,
    Survey,
    SurveyOptOut,
    Ticket,
    UrgencyRule,
)
from tests.support.mail import customer_mail, message_id_of
from tests.support.stored_tickets import ingest_posted

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ADA = "ada@example.com"
NEIGHBOURS = {
    "ada+shop@example.com": "plus-addressed phrase",
    "xada@example.com": "longer local part phrase",
    "ada@example.com.evil.org": "look-alike domain phrase",
    "da@example.com": "shorter local part phrase",
}
PDF = b"%PDF-1.4 Ada's invoice " + bytes(range(256))


def mail_with_attachment() -> bytes:
    return customer_mail(
        sender=ADA,
        sender_name="Ada Lovelace",
        subject="Invoice is wrong",
        message_id="<invoice-1@example.com>",
        body="My invoice shows the analytical engine twice.\n",
        attachments=[(PDF, "application", "pdf", "invoice.pdf")],
    )


def build(session: Session) -> None:
    first = mail_with_attachment()
    opened = ingest_posted(session, first, NOW - timedelta(days=3))
    follow_up = customer_mail(
        1,
        sender="Ada@Example.COM",  # the same person, however she capitalises it
        sender_name="Ada Lovelace",
        subject="Re: Invoice is wrong",
        body="Any news about the engine?\n",
        in_reply_to=message_id_of(first),
    )
    ingest_posted(session, follow_up, NOW - timedelta(days=2))
    second = ingest_posted(
        session,
        customer_mail(2, sender=ADA, sender_name="Ada Lovelace", subject="Password", body="Reset please.\n"),
        NOW - timedelta(days=1),
    )
    for n, (address, phrase) in enumerate(NEIGHBOURS.items(), start=10):
        ingest_posted(session, customer_mail(n, sender=address, subject=phrase, body=f"{phrase}\n"), NOW)
    session.add_all(
        [
            Survey(
                ticket_id=opened.ticket_id,
                agent="U0ADA",
                resolved_at=NOW,
                status="sent",
                solved=True,
                comment="Quick and kind",
            ),
            AutoReply(ticket_id=second.ticket_id, address=ADA, kind="ack", sent_at=NOW),
            BlockedSender(kind="address", value=ADA, blocked_by="U0MAY", blocked_at=NOW),
            BlockedSender(kind="address", value="ada+shop@example.com", blocked_by="U0MAY", blocked_at=NOW),
            SurveyOptOut(email=ADA, at=NOW),
            UrgencyRule(position=1, kind="sender", pattern=ADA, created_by="U0MAY", created_at=NOW),
            UrgencyRule(position=2, kind="keyword", pattern=ADA, created_by="U0MAY", created_at=NOW),
            UrgencyRule(
                position=3, kind="sender", pattern="xada@example.com", created_by="U0MAY", created_at=NOW
            ),
            SurveyOptOut(email="xada@example.com", at=NOW),
            Event(ticket_id=None, actor=f"customer:{ADA}", action="survey_opt_out", at=NOW, data={}),
            Event(
                ticket_id=None, actor="customer:xada@example.com", action="survey_opt_out", at=NOW, data={}
            ),
        ]
    )


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        build(session)
    return session_factory


def exported(factory: sessionmaker[Session], typed: str) -> zipfile.ZipFile:
    target = io.BytesIO()
    with factory() as session:
        write_export(session, typed, target, now=NOW)
    target.seek(0)
    return zipfile.ZipFile(target)


def test_the_export_holds_every_row_about_her_and_her_mail_as_sent(factory: sessionmaker[Session]) -> None:
    archive = exported(factory, " ADA@example.com ")
    data = json.loads(archive.read("data.json"))
    tables = data["tables"]
    assert data["address"] == ADA
    assert [c["email"] for c in tables["customers"]] == [ADA]
    assert sorted(t["subject"] for t in tables["tickets"]) == ["Invoice is wrong", "Password"]
    with factory() as session:
        ticket_ids = set(
            session.scalars(select(Ticket.id).join(Ticket.customer).where(Ticket.customer.has(email=ADA)))
        )
        stored = {m.id: m for m in session.scalars(select(Message).where(Message.ticket_id.in_(ticket_ids)))}
        raws = {m.id: m.raw for m in stored.values()}
        message_ids = {m.id: m.message_id for m in stored.values()}
    assert {m["id"] for m in tables["messages"]} == set(stored) and len(stored) == 3
    assert all("raw" not in m for m in tables["messages"])  # the bytes are the .eml files
    # Every row that hangs off her tickets, whatever its table.
    assert {r["ticket_id"] for r in tables["outbox"]} <= ticket_ids and tables["outbox"]
    assert [s["comment"] for s in tables["surveys"]] == ["Quick and kind"]
    assert [a["address"] for a in tables["auto_replies"]] == [ADA]
    assert [b["value"] for b in tables["blocked_senders"]] == [ADA]
    assert [o["email"] for o in tables["survey_opt_outs"]] == [ADA]
    assert [(r["kind"], r["pattern"]) for r in tables["urgency_rules"]] == [("sender", ADA)]
    assert {e["action"] for e in tables["events"]} >= {"ticket_created", "survey_opt_out"}
    assert "ledger_entries" not in tables and tables["counters"] == []

    for row in tables["messages"]:
        eml = archive.read(row["file_in_this_zip"])
        assert eml == raws[row["id"]]
        parsed = email.message_from_bytes(eml, policy=default_policy)
        assert parsed["Message-ID"].strip("<>") == message_ids[row["id"]]
        assert parsed["Subject"] == row["subject"]
    [attachment] = tables["attachments"]
    assert attachment["filename"] == "invoice.pdf"
    assert archive.read(attachment["file_in_this_zip"]) == PDF

    summary = archive.read("summary.md").decode()
    assert "Invoice is wrong" in summary and "Password" in summary and "auto replies: 1" in summary


def test_no_neighbour_reaches_her_export(factory: sessionmaker[Session]) -> None:
    archive = exported(factory, ADA)
    everything = b"".join(archive.read(name) for name in archive.namelist())
    for address, phrase in NEIGHBOURS.items():
        assert phrase.encode() not in everything
        assert f'"{address}"'.encode() not in everything


def test_a_neighbour_gets_only_their_own(factory: sessionmaker[Session]) -> None:
    archive = exported(factory, "ada+shop@example.com")
    tables = json.loads(archive.read("data.json"))["tables"]
    assert [t["subject"] for t in tables["tickets"]] == ["plus-addressed phrase"]
    assert [b["value"] for b in tables["blocked_senders"]] == ["ada+shop@example.com"]
    assert tables["surveys"] == [] and tables["auto_replies"] == [] and tables["survey_opt_outs"] == []
    assert b"analytical engine" not in b"".join(archive.read(n) for n in archive.namelist())


def test_an_address_we_never_saw_gets_an_export_that_says_so(factory: sessionmaker[Session]) -> None:
    archive = exported(factory, "nobody@example.com")
    tables = json.loads(archive.read("data.json"))["tables"]
    assert all(rows == [] for rows in tables.values())
    assert "We hold no data" in archive.read("summary.md").decode()


def test_what_we_hold_at_a_glance(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        held = customer_holdings(session, "Ada@Example.com")
        neighbour = customer_holdings(session, "xada@example.com")
        nobody = customer_holdings(session, "nobody@example.com")
    assert (held.tickets, held.messages, held.raw_mails, held.attachments) == (2, 3, 3, 1)
    assert (held.surveys, held.survey_comments, held.auto_replies, held.blocks) == (1, 1, 1, 1)
    assert held.survey_opt_out and held.name == "Ada Lovelace"
    # Both ticket posts are in Slack (taken as delivered); the thread messages not yet.
    assert held.slack_posts == 2 and held.slack_files == 0
    assert [t.subject for t in held.listed] == ["Password", "Invoice is wrong"]
    assert held.listed[1].attachments == 1 and held.listed[1].messages == 2
    assert (neighbour.tickets, neighbour.blocks, neighbour.auto_replies) == (1, 0, 0)
    assert neighbour.survey_opt_out and not nobody.anything


@pytest.mark.parametrize(
    "typed", ["", "ada", "@example.com", "ada@", "a b@example.com", "a@b@c", "a\x00@b.c"]
)
def test_what_is_no_address_is_refused(typed: str, factory: sessionmaker[Session]) -> None:
    with factory() as session, pytest.raises(NotAnAddress):
        customer_holdings(session, typed)


def test_the_file_name_is_safe_whatever_the_address() -> None:
    name = export_filename('a/../"<!channel>"@x.org', NOW)
    assert name.endswith("-20261125-1000.zip") and "/" not in name and "<" not in name


def test_a_large_export_is_written_one_mail_at_a_time(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    scan = os.urandom(400_000)  # incompressible, like the photos customers send
    with session_factory.begin() as session:
        for n in range(40):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = ADA, "support@example.com", f"Scan {n}"
            msg["Message-ID"] = f"<scan-{n}@example.com>"
            msg.set_content("Here is the scan.\n")
            msg.add_attachment(scan, maintype="image", subtype="jpeg", filename=f"scan-{n}.jpg")
            ingest_posted(session, bytes(msg), NOW)
        stored = session.scalar(select(func.sum(func.length(Message.raw))))
    assert stored > 20_000_000
    target = tmp_path / "export.zip"
    tracemalloc.start()
    try:
        with session_factory() as session:
            contents = write_export(session, ADA, target, now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (contents.emails, contents.attachments) == (40, 40)
    assert target.stat().st_size > 30_000_000  # the mails and their attachments, both
    # A few mails' worth at most, never the customer's whole history at once.
    assert peak < 8_000_000, f"peak {peak:,} bytes"


@given(st.text(max_size=60))
def test_an_address_is_read_once_and_for_all(typed: str) -> None:
    try:
        address = customer_address(typed)
    except NotAnAddress:
        return
    assert address == address.strip().lower() and address.count("@") == 1
    assert customer_address(address) == address  # as stored, it reads back as itself


def test_what_we_hold_shows_outside_text_as_text(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        ingest_posted(
            session,
            customer_mail(
                30,
                sender="mallory@example.com",
                sender_name="<!channel> *Mallory*",
                subject="<!here> <@U0MAY>",
            ),
            NOW,
        )
        held = customer_holdings(session, "mallory@example.com")
    shown = json.dumps(holdings_blocks(held, team_url="https://x.slack.com/", manager=True))
    assert "<!channel>" not in shown and "<!here>" not in shown and "<@U0MAY>" not in shown
    assert "&lt;!here&gt;" in shown and "https://x.slack.com/archives/" in shown
