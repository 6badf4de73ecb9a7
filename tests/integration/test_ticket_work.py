"""Staff working tickets from Slack, end to end: email in through IMAP, signed requests into
the bot's real endpoint, Web API calls into the stand-in, replies out through SMTP."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Event, Message
from bot.tickets import template_store
from tests.support import desk as support_desk
from tests.support.desk import add_people, running_desk
from tests.support.harness import CHANNEL, SUPPORT_ADDRESS, wait_until
from tests.support.mail import customer_mail, message_id_of

pytestmark = pytest.mark.timeout(180)

ADA, BOB, EVE, MAY = "U0ADA", "U0BOB", "U0EVE", "U0MAY"  # staff, staff, outsider, manager
STARTERS = sorted(
    p.name.removesuffix(".txt") for p in (Path(__file__).parents[2] / "templates").glob("*.txt")
)


class Desk(support_desk.Desk):
    def events(self, action: str) -> list[Event]:
        with self.bot.factory() as session:
            return list(session.scalars(select(Event).where(Event.action == action)))

    def ephemerals_for(self, user: str, count: int = 1) -> list[dict[str, Any]]:
        return wait_until(
            lambda: self.slack.ephemerals(user) if len(self.slack.ephemerals(user)) >= count else None,
            what=f"{count} ephemeral message(s) for {user}",
        )


# Files a careless colleague might ship: the editor in Slack refuses such templates, files are
# only checked when used, and then the agent must see an error, never send a broken mail.
BROKEN_FILES = {
    "needs_order.en.txt": "---\ntitle: Order shipped\nlanguage: en\n---\nOrder {{ order_id }} ships today.\n",
    "escape.en.txt": "---\ntitle: Esc\nlanguage: en\n---\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n",
}


@pytest.fixture
def desk(imap: PymapServer, slack: SlackStandIn, database_url: str, tmp_path: Path) -> Iterator[Desk]:
    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).parents[2] / "templates", templates)
    for name, source in BROKEN_FILES.items():
        (templates / name).write_text(source)
    add_people(slack, {ADA: "ada", BOB: "bob", MAY: "may"}, outsiders={EVE: "eve"})
    with running_desk(
        slack, imap, database_url, kind=Desk, MANAGERS=MAY, TEMPLATES_DIR=str(templates)
    ) as running:
        yield running


def actions_of(message: dict[str, Any]) -> list[str]:
    block = next(b for b in message["blocks"] if b["type"] == "actions")
    return [e["action_id"] for e in block["elements"]]


def latest(desk: Desk, number: int = 1) -> dict[str, Any]:
    return {**desk.slack.thread(CHANNEL, desk.ticket_message(number)["ts"])[0], "channel": CHANNEL}


# -- claim ---------------------------------------------------------------------------------


def test_claim_shows_the_owner_and_tells_latecomers(desk: Desk) -> None:
    desk.imap.append(customer_mail(1, subject="Where is my order?"))
    message = desk.ticket_message()
    assert desk.user(ADA).click(message, "ticket_claim").status == 200
    wait_until(lambda: "<@U0ADA>" in json.dumps(latest(desk)["blocks"]), what="the owner on the message")
    assert "ticket_claim" not in actions_of(latest(desk))

    desk.user(BOB).click(message, "ticket_claim")
    told = desk.ephemerals_for(BOB)
    assert "already claimed by <@U0ADA>" in told[0]["text"]
    assert desk.ticket().owner == ADA


@pytest.mark.slow
def test_twenty_simultaneous_claims_make_exactly_one_owner(desk: Desk) -> None:
    staff = [f"U0S{n:02d}" for n in range(20)]
    for user in staff:
        desk.slack.add_user(user, user.lower(), channels=(CHANNEL,))
    desk.imap.append(customer_mail(1))
    message = desk.ticket_message()
    start = threading.Barrier(len(staff))
    statuses: list[int] = []

    def press(user: str) -> None:
        start.wait()
        statuses.append(desk.user(user).click(message, "ticket_claim").status)

    threads = [threading.Thread(target=press, args=(u,)) for u in staff]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 20
    wait_until(lambda: len(desk.slack.ephemerals()) >= 19, what="19 refusals")
    owner = desk.ticket().owner
    assert owner in staff
    assert len(desk.events("claimed")) == 1
    refused = {e["user"] for e in desk.slack.ephemerals()}
    assert refused == set(staff) - {owner}
    assert all(f"already claimed by <@{owner}>" in e["text"] for e in desk.slack.ephemerals())


def test_someone_outside_the_team_cannot_act(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    message = desk.ticket_message()
    for action in ("ticket_claim", "ticket_resolve", "ticket_reply", "ticket_tag"):
        desk.user(EVE).click(message, action)
    told = desk.ephemerals_for(EVE, count=4)
    assert all("Only support staff" in e["text"] for e in told)
    assert not desk.slack.calls("views.open")
    ticket = desk.ticket()
    assert (ticket.owner, ticket.status) == (None, "open")
    answer = desk.user(EVE).command("open").json()
    assert "Only support staff" in answer["text"]


def test_forged_or_stale_signatures_are_refused(desk: Desk) -> None:
    import time

    desk.imap.append(customer_mail(1))
    message = desk.ticket_message()
    assert desk.user(ADA).click(message, "ticket_claim", secret="forged").status == 401
    assert desk.user(ADA).click(message, "ticket_claim", timestamp=int(time.time()) - 600).status == 401
    assert desk.ticket().owner is None


def test_unclaim_and_reassign_from_the_menu(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    message = desk.ticket_message()
    desk.user(ADA).click(message, "ticket_claim")
    wait_until(lambda: desk.ticket().owner == ADA, what="ada's claim")
    desk.user(ADA).click(latest(desk), "ticket_more", option="reassign")
    view_id = wait_until(lambda: list(desk.slack.views), what="the reassign modal")[0]
    assert desk.user(ADA).submit(view_id, {"assignee": EVE}).json()["response_action"] == "errors"
    assert desk.user(ADA).submit(view_id, {"assignee": BOB}).status == 200
    wait_until(lambda: desk.ticket().owner == BOB, what="bob to own it")
    assert any("assigned you" in m["text"] for m in wait_until(lambda: desk.slack.dms(BOB), what="bob's DM"))
    desk.user(BOB).click(latest(desk), "ticket_more", option="unclaim")
    wait_until(lambda: desk.ticket().owner is None, what="the release")
    assert desk.ticket().status == "open"


# -- reply ----------------------------------------------------------------------------------


def open_reply(desk: Desk, user: str = ADA) -> str:
    before = set(desk.slack.views)
    desk.user(user).click(desk.ticket_message(), "ticket_reply")
    return wait_until(lambda: list(set(desk.slack.views) - before), what="the reply modal")[0]


def editor_text(desk: Desk, view_id: str) -> tuple[str, str]:
    block = next(b for b in desk.slack.views[view_id]["blocks"] if b["type"] == "input")
    return block["block_id"], block["element"].get("initial_value", "")


@pytest.mark.parametrize("template", STARTERS)
def test_reply_with_a_starter_template_goes_out_threaded(desk: Desk, template: str) -> None:
    first = customer_mail(1, subject="Help with my account", sender="ada.customer@example.org",
                          sender_name="Grace Hopper")  # fmt: skip
    desk.imap.append(first)
    view_id = open_reply(desk)
    hash_before = desk.slack.views[view_id]["hash"]
    desk.user(ADA).pick(view_id, "reply_template", template)
    wait_until(lambda: desk.slack.views[view_id]["hash"] != hash_before, what="the rendered template")
    _, text = editor_text(desk, view_id)
    assert text.strip() and "{{" not in text
    assert desk.user(ADA).submit(view_id).status == 200

    mail = desk.smtp.wait_for(1)[0].message
    assert mail["To"].addresses[0].addr_spec == "ada.customer@example.org"
    assert mail["From"].addresses[0].addr_spec == SUPPORT_ADDRESS
    assert "Ada Staff" in mail["From"].addresses[0].display_name
    assert mail["Subject"].startswith("Re: Help with my account") and "[#1]" in mail["Subject"]
    assert mail["In-Reply-To"] == message_id_of(first)
    assert message_id_of(first) in mail["References"]
    plain = mail.get_body(("plain",))
    assert plain is not None and plain.get_content().replace("\r\n", "\n").strip() == text.strip()
    html_file = Path(__file__).parents[2] / "templates" / f"{template}.html"
    assert (mail.get_body(("html",)) is not None) == html_file.exists()
    # The thread shows what was sent and by whom; the ticket waits on the customer.
    thread = wait_until(
        lambda: desk.slack.thread(CHANNEL, desk.ticket_message()["ts"])[1:], what="the thread"
    )
    assert "<@U0ADA> replied" in json.dumps(thread)
    ticket = desk.ticket()
    assert (ticket.status, ticket.owner) == ("waiting", ADA)
    assert [e.data.get("template") for e in desk.events("replied")] == [template]


def test_an_edited_reply_sends_only_what_the_agent_wrote(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    view_id = open_reply(desk)
    with_html = next(t for t in STARTERS if (Path(__file__).parents[2] / "templates" / f"{t}.html").exists())
    hash_before = desk.slack.views[view_id]["hash"]
    desk.user(ADA).pick(view_id, "reply_template", with_html)
    wait_until(lambda: desk.slack.views[view_id]["hash"] != hash_before, what="the rendered template")
    block_id, text = editor_text(desk, view_id)
    desk.user(ADA).submit(view_id, {block_id: text + "\nP.S. Also, a personal note."})
    mail = desk.smtp.wait_for(1)[0].message
    assert "a personal note" in mail.get_body(("plain",)).get_content()
    assert mail.get_body(("html",)) is None, "the HTML would not say what the agent wrote"


def test_an_empty_reply_keeps_the_modal_open_with_the_reason(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    view_id = open_reply(desk)
    block_id, _ = editor_text(desk, view_id)
    answer = desk.user(ADA).submit(view_id, {block_id: "   "}).json()
    assert answer["response_action"] == "errors" and block_id in answer["errors"]
    assert not desk.smtp.mails


def test_a_refused_reply_names_its_text_box_not_the_template_picker(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    view_id = open_reply(desk)
    hash_before = desk.slack.views[view_id]["hash"]
    desk.user(ADA).pick(view_id, "reply_template", STARTERS[0])
    wait_until(lambda: desk.slack.views[view_id]["hash"] != hash_before, what="the rendered template")
    # Someone off the team sending it (a forged or replayed submission) is refused beside a field.
    answer = desk.user(EVE).submit(view_id).json()
    block_id, _ = editor_text(desk, view_id)
    assert answer["response_action"] == "errors" and list(answer["errors"]) == [block_id]
    assert "Only support staff" in answer["errors"][block_id]
    assert desk.slack.invalid == []
    assert not desk.smtp.mails


LONG_TEXT = "\n".join(f"Step {i}: " + "check the setting and try again " * 3 for i in range(90))


def test_a_reply_longer_than_a_slack_text_box_goes_out_whole(desk: Desk) -> None:
    """Slack's text box holds 3,000 characters: a longer rendered template is shown across
    several boxes and sent whole, and the template editor saves such a source whole."""
    templates = Path(desk.bot.settings.templates_dir)
    (templates / "long.en.txt").write_text(f"---\ntitle: Long\nlanguage: en\n---\n{LONG_TEXT}\n")
    assert len(LONG_TEXT) > 2 * 3000
    desk.imap.append(customer_mail(1))
    view_id = open_reply(desk)
    hash_before = desk.slack.views[view_id]["hash"]
    desk.user(ADA).pick(view_id, "reply_template", "long.en")
    wait_until(lambda: desk.slack.views[view_id]["hash"] != hash_before, what="the rendered template")
    boxes = [
        b for b in desk.slack.views[view_id]["blocks"] if b["type"] == "input" and b["block_id"] != "reply_cc"
    ]
    assert len(boxes) >= 3 and all(len(b["element"]["initial_value"]) <= 3000 for b in boxes)
    assert f"shown in {len(boxes)} boxes" in json.dumps(desk.slack.views[view_id]["blocks"])
    assert desk.user(ADA).submit(view_id).status == 200
    mail = desk.smtp.wait_for(1)[0].message
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == LONG_TEXT.strip()

    manager = desk.user(MAY)
    before = set(desk.slack.views)
    manager.command("template edit long.en")
    editor = wait_until(lambda: list(set(desk.slack.views) - before), what="the template editor")[0]
    assert manager.submit(editor).json() == {}
    assert desk.slack.invalid == []
    with desk.bot.factory() as session:
        saved = template_store.get_template(session, templates, "long.en")
    assert saved.text.strip() == LONG_TEXT.strip() and saved.version > 0


def test_a_template_with_a_missing_variable_or_a_sandbox_escape_is_an_error_not_an_email(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    # Saved from Slack: refused in the editor, next to the field.
    manager = desk.user(MAY)
    before = set(desk.slack.views)
    manager.command("template new")
    editor = wait_until(lambda: list(set(desk.slack.views) - before), what="the template editor")[0]
    refused = manager.submit(
        editor, {"name": "order", "title": "Order", "language": "en", "text": "Order {{ order_id }}"}
    ).json()
    assert refused["response_action"] == "errors" and "order_id" in refused["errors"]["text"]
    # Shipped as files: the agent picking one sees why, and nothing reaches the editor or the customer.
    for name, why in (("needs_order.en", "order_id"), ("escape.en", "")):
        view_id = open_reply(desk)
        hash_before = desk.slack.views[view_id]["hash"]
        desk.user(ADA).pick(view_id, "reply_template", name)
        wait_until(lambda v=view_id, h=hash_before: desk.slack.views[v]["hash"] != h, what="the modal update")
        shown = json.dumps(desk.slack.views[view_id]["blocks"])
        assert ":warning:" in shown and why in shown
        assert editor_text(desk, view_id)[1] == "", "nothing rendered into the editor"
        assert "__subclasses__" not in editor_text(desk, view_id)[1]
    assert not desk.smtp.mails


def test_a_note_in_the_thread_is_kept_and_never_emailed(desk: Desk) -> None:
    desk.imap.append(customer_mail(1))
    message = desk.ticket_message()
    assert desk.user(ADA).write_in_thread(CHANNEL, message["ts"], "Customer called too; VIP.").status == 200
    factory = make_sessionmaker(make_engine(desk.database_url))

    def notes() -> list[str]:
        with factory() as session:
            return list(session.scalars(select(Message.text).where(Message.direction == "note")))

    assert wait_until(notes, what="the note") == ["Customer called too; VIP."]
    assert not desk.smtp.mails


# -- tags, status, history ------------------------------------------------------------------


def test_tags_resolve_and_the_timeline(desk: Desk) -> None:
    desk.imap.append(customer_mail(1, sender="lin@example.org"))
    desk.user(ADA).click(desk.ticket_message(), "ticket_tag")
    view_id = wait_until(lambda: list(desk.slack.views), what="the tag modal")[0]
    bad = desk.user(ADA).submit(view_id, {"new_tags": "ok, <!channel>"}).json()
    assert bad["response_action"] == "errors"
    desk.user(ADA).submit(view_id, {"new_tags": "Billing, refund"})
    wait_until(lambda: "`billing` `refund`" in json.dumps(latest(desk)["blocks"]), what="tags on the message")

    desk.user(BOB).click(latest(desk), "ticket_resolve")
    wait_until(lambda: desk.ticket().status == "resolved", what="resolution")
    wait_until(
        lambda: "ticket_resolve" not in actions_of(latest(desk)), what="the message to show it resolved"
    )

    timeline = desk.user(ADA).command("ticket 1").json()
    text = json.dumps(timeline["blocks"])
    assert "opened the ticket" in text and "+billing, refund" in text and "<@U0BOB> resolved it" in text
    history = json.dumps(desk.user(ADA).command("customer lin@example.org").json()["blocks"])
    assert "#1" in history


def test_support_command_answers_help_empty_and_unknown_input(desk: Desk) -> None:
    ada = desk.user(ADA)
    for text in ("", "help"):
        assert "/support open" in ada.command(text).json()["text"]
    unknown = ada.command("frobnicate").json()["text"]
    assert "frobnicate" in unknown and "/support open" in unknown
    assert "one ticket number" in ada.command("claim abc").json()["text"]
    assert "no ticket #99" in ada.command("ticket 99").json()["text"]


def test_queues_show_oldest_first_and_claim_by_number(desk: Desk) -> None:
    desk.imap.append_many([customer_mail(n, subject=f"Question {n}") for n in range(1, 4)])
    desk.ticket_message(3)
    ada = desk.user(ADA)
    queue = json.dumps(ada.command("open").json()["blocks"])
    assert queue.index("Question 1") < queue.index("Question 2") < queue.index("Question 3")
    assert ada.command("claim 2").json()["text"] == "You claimed #2."
    mine = json.dumps(ada.command("mine").json()["blocks"])
    assert "Question 2" in mine and "Question 1" not in mine
    assert "Question 2" not in json.dumps(ada.command("open").json()["blocks"])
    ada.open_home()
    home = wait_until(lambda: desk.slack.home.get(ADA), what="App Home")
    shown = json.dumps(home["blocks"])
    assert shown.index("Question 2") < shown.index("Unclaimed (2)")


def test_only_managers_edit_templates_and_edits_are_versioned(desk: Desk) -> None:
    assert "Only managers" in desk.user(ADA).command("template new").json()["text"]
    manager = desk.user(MAY)
    for version, text in enumerate(("Hello {{ customer_name }}.", "Good day {{ customer_name }}."), start=1):
        before = set(desk.slack.views)
        manager.command("template new" if version == 1 else "template edit greeting")
        view_id = wait_until(lambda b=before: list(set(desk.slack.views) - b), what="the editor")[0]
        fields = {"name": "greeting", "title": "Greeting", "language": "en", "text": text}
        assert manager.submit(view_id, fields).status == 200
    preview = json.dumps(desk.user(ADA).command("templates greeting").json()["blocks"])
    assert "Good day" in preview
    listing = json.dumps(desk.user(ADA).command("templates").json()["blocks"])
    assert "greeting" in listing
    factory = make_sessionmaker(make_engine(desk.database_url))
    from bot.storage.models import TemplateVersion

    with factory() as session:
        assert session.scalar(select(func.count()).select_from(TemplateVersion)) == 2
