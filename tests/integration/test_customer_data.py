"""A customer's data through Slack, as a manager and staff would ask for it: what we hold
(`/support customer ADDRESS`), the export ZIP in the manager's DM, and the erasure's
confirmation modal. Mail arrives over IMAP; every request is signed, into the real bot."""

from __future__ import annotations

import email
import io
import json
import zipfile
from collections.abc import Iterator
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from bot.outbox.queue import SLACK_CUSTOMER_EXPORT
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack import privacy as privacy_ui
from bot.storage.models import Attachment, Message, OutboxItem
from tests.support.desk import Desk, add_people, running_desk
from tests.support.harness import CHANNEL, wait_until
from tests.support.mail import customer_mail, message_id_of

pytestmark = pytest.mark.timeout(120)

ADA, MAY, JO, EVE = "U0ADA", "U0MAY", "U0JO", "U0EVE"
CUSTOMER = "lin@example.org"
NEIGHBOUR = "lin+shop@example.org"
PDF = b"%PDF-1.4 the receipt " + bytes(range(256)) * 40


def first_mail() -> bytes:
    return customer_mail(
        sender=CUSTOMER,
        sender_name="Lin Customer",
        subject="Charged twice",
        message_id="<charged-twice@example.org>",
        body="I was charged twice for the blue kettle.\n",
        attachments=[(PDF, "application", "pdf", "receipt.pdf")],
    )


@pytest.fixture
def desk(slack: SlackStandIn, imap: PymapServer, database_url: str) -> Iterator[Desk]:
    add_people(slack, {ADA: "ada"}, managers={MAY: "may", JO: "jo"}, outsiders={EVE: "eve"})
    with running_desk(slack, imap, database_url, MANAGERS=f"{MAY},{JO}") as running:
        first = first_mail()
        follow_up = customer_mail(
            1,
            sender=CUSTOMER,
            subject="Re: Charged twice",
            body="Still waiting.\n",
            in_reply_to=message_id_of(first),
        )
        running.imap.append_many(
            [first, customer_mail(2, sender=NEIGHBOUR, subject="Neighbour's secret", body="Only mine.\n")]
        )
        running.ticket_message(2)
        running.imap.append(follow_up)
        wait_until(lambda: running.count(Message) == 3, what="the follow-up")
        running.settle()
        yield running


def test_staff_see_what_we_hold_with_links_to_the_posts(desk: Desk) -> None:
    answer = desk.user(ADA).command("customer <mailto:Lin@Example.org|Lin@Example.org>").json()
    shown = json.dumps(answer["blocks"])
    assert "What we hold about lin@example.org" in shown
    assert "*1* ticket" in shown and "*2* messages (2 with the original email)" in shown
    assert "*1* attachment" in shown and "*1* file uploaded" in shown
    ticket = desk.ticket(1)
    assert ticket is not None and ticket.slack_ts
    link = f"https://sandbox.slack.test/archives/{CHANNEL}/p{ticket.slack_ts.replace('.', '')}|#1>"
    assert link in shown
    assert "Neighbour" not in shown and "export" not in shown  # staff are not offered the managers' commands
    assert "customer export lin@example.org" in json.dumps(
        desk.user(MAY).command(f"customer {CUSTOMER}").json()
    )
    nothing = json.dumps(desk.user(ADA).command("customer nobody@example.org").json()["blocks"])
    assert "Nothing: no ticket" in nothing
    assert "not an email address" in desk.user(ADA).command("customer lin").json()["text"]


def test_the_export_reaches_the_managers_dm_and_holds_only_theirs(desk: Desk) -> None:
    answer = desk.user(MAY).command(f"customer export {CUSTOMER.upper()}").json()
    assert "being gathered" in answer["text"]
    dm = lambda: desk.slack.dm_channels.get(MAY)  # noqa: E731
    upload = wait_until(
        lambda: next((f for f in desk.slack.files if f["channel"] == dm()), None), what="the export in the DM"
    )
    assert upload["name"].startswith("customer-data-lin_example.org-") and upload["name"].endswith(".zip")
    assert "within a month" in upload["initial_comment"] and CUSTOMER not in upload["initial_comment"]

    archive = zipfile.ZipFile(io.BytesIO(upload["content"]))
    tables = json.loads(archive.read("data.json"))["tables"]
    assert [t["subject"] for t in tables["tickets"]] == ["Charged twice"]
    with desk.bot.factory() as session:
        stored = {m.id: m for m in session.scalars(select(Message).where(Message.from_address == CUSTOMER))}
        file_id = session.scalar(select(Attachment.slack_file_id))
    assert {m["id"] for m in tables["messages"]} == set(stored)
    for row in tables["messages"]:
        eml = archive.read(row["file_in_this_zip"])
        assert eml == stored[row["id"]].raw
        assert email.message_from_bytes(eml, policy=default_policy)["Subject"] == stored[row["id"]].subject
    [attachment] = tables["attachments"]
    assert archive.read(attachment["file_in_this_zip"]) == PDF and attachment["slack_file_id"] == file_id
    assert "Charged twice" in archive.read("summary.md").decode()
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"Neighbour" not in everything and NEIGHBOUR.encode() not in everything

    # Answered: the outbox no longer says whose data it was. The row is marked done in the
    # worker's next transaction, after Slack has the file: seen in Slack is not yet recorded.
    def recorded() -> OutboxItem | None:
        with desk.bot.factory() as session:
            row = session.scalar(select(OutboxItem).where(OutboxItem.kind == SLACK_CUSTOMER_EXPORT))
        return row if row is not None and row.status == "done" else None

    row = wait_until(recorded, what="the export's delivery recorded")
    assert CUSTOMER not in json.dumps(row.payload)


def test_an_export_whose_answer_was_lost_is_not_sent_twice(desk: Desk) -> None:
    # Slack shares the file, then answers 500: the retry finds it in the DM and adopts it.
    desk.slack.fail_next("files.completeUploadExternal", status=500, after_effect=True)
    desk.user(MAY).command(f"customer export {CUSTOMER}")

    def delivered() -> OutboxItem | None:
        with desk.bot.factory() as session:
            return session.scalar(
                select(OutboxItem).where(
                    OutboxItem.kind == SLACK_CUSTOMER_EXPORT, OutboxItem.status == "done"
                )
            )

    row = wait_until(delivered, timeout=40, what="the export delivered")
    assert row.attempts == 2 and row.result["adopted"] is True
    shared = [f for f in desk.slack.files if f["channel"] == desk.slack.dm_channels[MAY]]
    assert len(shared) == 1 and shared[0]["id"] == row.result["file_id"]


def test_only_managers_export_or_erase_and_refusals_change_nothing(desk: Desk) -> None:
    calls_before = len(desk.slack.calls("views.open"))
    for user, refusal in ((ADA, "Only managers"), (EVE, "Only support staff")):
        for verb in ("export", "erase"):
            answer = desk.user(user).command(f"customer {verb} {CUSTOMER}").json()
            assert refusal in answer["text"] and "blocks" not in answer
    assert desk.count(OutboxItem, OutboxItem.kind == SLACK_CUSTOMER_EXPORT) == 0
    assert all(f["channel"] == CHANNEL for f in desk.slack.files)  # the ticket's attachment only
    assert len(desk.slack.calls("views.open")) == calls_before
    assert "Only support staff" in desk.user(EVE).command(f"customer {CUSTOMER}").json()["text"]


def test_the_erasure_asks_for_the_address_typed_again(desk: Desk) -> None:
    may = desk.user(MAY)
    assert may.command(f"customer erase {CUSTOMER}").status == 200
    modal = wait_until(lambda: desk.slack.open_modal(MAY), what="the confirmation modal")
    said = json.dumps(modal["blocks"])
    assert modal["callback_id"] == privacy_ui.ERASE_CALLBACK
    assert (
        "*1* ticket" in said and "*2* messages" in said and "*1* file" in said and "lin@example.org" in said
    )

    desk.user(JO).command(f"customer erase {CUSTOMER}")
    late = wait_until(lambda: desk.slack.open_modal(JO), what="a second manager's form")
    wrong = may.submit(modal["id"], {privacy_ui.CONFIRM_BLOCK: NEIGHBOUR}).json()
    assert wrong["response_action"] == "errors" and privacy_ui.CONFIRM_BLOCK in wrong["errors"]
    assert desk.ticket(1) is not None  # nothing erased

    answered = may.submit(modal["id"], {privacy_ui.CONFIRM_BLOCK: " LIN@example.org "}).json()
    assert answered["response_action"] == "update", answered
    done = wait_until(
        lambda: (
            "Customer erased" in json.dumps(desk.slack.views[modal["id"]]) and desk.slack.views[modal["id"]]
        ),
        what="the modal to say it is done",
    )
    assert "*1* ticket" in json.dumps(done["blocks"])
    assert CUSTOMER not in json.dumps(answered) + json.dumps(
        done
    )  # nothing said afterwards keeps the address
    # A second manager's form, opened before the erasure, erases nothing more.
    assert "nothing to erase" in may.command(f"customer erase {CUSTOMER}").json()["text"]
    assert (
        desk.user(JO).submit(late["id"], {privacy_ui.CONFIRM_BLOCK: CUSTOMER}).json()["response_action"]
        == "update"
    )
    # Nothing left, or (its Slack effects still under way) that erasure running: never a second one.
    late_answer = wait_until(
        lambda: (
            (said := json.dumps(desk.slack.views[late["id"]]))
            and ("Nothing to erase" in said or "Already erasing" in said)
            and said
        ),
        what="the late form's answer",
    )
    assert CUSTOMER not in late_answer
    after = json.dumps(may.command(f"customer {CUSTOMER}").json()["blocks"])
    assert "Nothing: no ticket" in after
    assert NEIGHBOUR in json.dumps(may.command(f"customer {NEIGHBOUR}").json()["blocks"])
    assert "*1* ticket" in json.dumps(may.command(f"customer {NEIGHBOUR}").json()["blocks"])
    assert "nothing to erase" in may.command("customer erase nobody@example.org").json()["text"]
