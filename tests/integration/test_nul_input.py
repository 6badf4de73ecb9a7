"""A NUL character (\\0) typed or pasted into a modal, or written in a ticket's thread.

PostgreSQL refuses NUL in text, so without a check a modal holding one fails with a generic
"went wrong" there, and is stored on SQLite. Every modal field that reaches the database
must instead be answered with `response_action: errors` next to that field, saying why,
with nothing stored and nothing sent, alike on both databases. A note in a thread is kept,
without the NUL: it is invisible, and losing the note over it would be worse.

Modals are opened through the bot (buttons and commands into its real endpoint) and
submitted as Slack submits them, signed; each form is also submitted once without the NUL,
to show that the NUL alone is what was refused.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_requests import Answer
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack import after_hours, modals
from bot.slack import oncall as oncall_ui
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import (
    Base,
    DutySwap,
    Message,
    TemplateAutomation,
    TemplateVersion,
    Ticket,
)
from tests.support.databases import DatabaseFactory
from tests.support.desk import add_people, count_rows, desk_env, settle_outbox, ticket_card
from tests.support.harness import CHANNEL, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser

pytestmark = pytest.mark.timeout(300)

ROME = ZoneInfo("Europe/Rome")
ADA, BOB, MAY = "U0ADA", "U0BOB", "U0MAY"  # staff, staff, manager
# Wednesday noon in Rome: business hours (no paging), mid-week, a rota can be planned.
START = datetime(2026, 12, 2, 12, 0, tzinfo=ROME)
TEMPLATE = "password_reset.en"
# Where a modal or a note leaves its mark, compared without what delivery fills in later.
WATCHED = (
    "tickets",
    "tags",
    "ticket_tags",
    "messages",
    "events",
    "template_versions",
    "template_automations",
    "duty_swaps",
    "outbox",
)
OUTBOX_IDENTITY = ("id", "kind", "lane", "dedupe_key", "ticket_id", "payload", "created_at")
DELIVERY_PROGRESS = {"messages": {"delivery_status", "sent_at", "slack_ts"}, "tickets": {"slack_ts"}}


@dataclass
class World:
    bot: SupportBot
    slack: SlackStandIn
    smtp: SmtpCatcher
    clock: FrozenClock
    engine: Engine
    factory: sessionmaker[Session]

    def user(self, user_id: str) -> SlackUser:
        return SlackUser(self.bot.url, self.slack, user_id)

    def ticket_message(self, number: int) -> dict[str, Any]:
        return ticket_card(self.slack, number)

    def opened(self, act: Callable[[], object], what: str) -> str:
        """The id of the modal that `act` makes the bot open."""
        before = set(self.slack.views)
        act()
        return wait_until(lambda: list(set(self.slack.views) - before), what=what)[0]

    def run_scheduler(self) -> None:
        """The scheduler's jobs once, now, rather than in the middle of a comparison (the clock
        is frozen: their later runs find nothing new to do), and their posts delivered."""
        jobs = self.bot.jobs
        for job in (
            jobs.rota_tick,
            jobs.paging_tick,
            jobs.nudge_unclaimed_tickets,
            jobs.send_surveys,
            jobs.sync_roster,
        ):
            job()
        self.settle()

    def settle(self) -> None:
        settle_outbox(self.factory)

    def snapshot(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            for name in WATCHED:
                table = Base.metadata.tables[name]
                columns = [
                    c
                    for c in table.columns
                    if (name != "outbox" or c.name in OUTBOX_IDENTITY)
                    and c.name not in DELIVERY_PROGRESS.get(name, ())
                ]
                rows = conn.execute(select(*columns).order_by(*table.primary_key.columns)).all()
                out[name] = [tuple(r) for r in rows]
        return out

    def count(self, model: type, *where: Any) -> int:
        return count_rows(self.factory, model, *where)


@pytest.fixture(scope="module")
def world(db_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database_url = db_factory.new_url()
    engine = make_engine(database_url)
    with contextlib.ExitStack() as stack:
        slack = stack.enter_context(SlackStandIn(channels=(CHANNEL,)))
        imap = stack.enter_context(PymapServer(tmp_path_factory.mktemp("imap")))
        smtp = stack.enter_context(SmtpCatcher())
        add_people(slack, {ADA: "ada", BOB: "bob"}, managers={MAY: "may"})
        env = desk_env(
            slack,
            imap,
            database_url,
            smtp,
            MANAGERS=MAY,
            # One templated reply makes a template eligible, so the automation form can succeed.
            AUTOMATION_MIN_USES="1",
            AUTOMATION_MIN_CLOSE_RATE="0",
            CLOSE_RATE_DAYS="1",
        )
        clock = FrozenClock(START)
        bot = stack.enter_context(running_bot(env, clock=clock))
        world = World(bot, slack, smtp, clock, engine, make_sessionmaker(engine))
        imap.append_many([customer_mail(n, subject=f"Question {n}") for n in range(1, 5)])
        for number in range(1, 5):
            world.ticket_message(number)
        _publish_rota(world)
        world.run_scheduler()
        yield world
    engine.dispose()
    db_factory.drop(database_url)


def _publish_rota(world: World) -> None:
    preview = world.user(MAY).command("plan 4", command="/oncall").json()
    shown = {"ts": "1700000000.000100", "blocks": preview["blocks"], "is_ephemeral": True, "channel": CHANNEL}
    world.user(MAY).click(shown, oncall_ui.ACTION_PUBLISH)
    wait_until(lambda: any("Published" in e["text"] for e in world.slack.ephemerals(MAY)), what="the rota")


def assert_refused_for_nul(answer: Answer, block: str) -> None:
    """The answer keeps the modal open with the NUL named beside `block` alone."""
    assert answer.status == 200, (answer.status, answer.body)
    said = answer.json()
    assert said.get("response_action") == "errors", said
    assert list(said["errors"]) == [block], said
    assert "NUL" in said["errors"][block], said


def each_field_refuses_nul(
    world: World, user: SlackUser, view_id: str, valid: dict[str, Any], with_nul: dict[str, Any]
) -> None:
    world.settle()
    for block, value in with_nul.items():
        before, mails = world.snapshot(), len(world.smtp.mails)
        assert_refused_for_nul(user.submit(view_id, {**valid, block: value}), block)
        assert world.snapshot() == before, f"something was stored for a NUL in {block}"
        assert len(world.smtp.mails) == mails


# -- modals -----------------------------------------------------------------------------------


def test_a_nul_in_the_reply_is_refused_beside_it(world: World) -> None:
    ada = world.user(ADA)
    view_id = world.opened(lambda: ada.click(world.ticket_message(1), "ticket_reply"), "the reply modal")
    block = next(b["block_id"] for b in world.slack.views[view_id]["blocks"] if b["type"] == "input")
    each_field_refuses_nul(world, ada, view_id, {}, {block: "Dear customer,\x00 here it is."})
    assert ada.submit(view_id, {block: "Dear customer, here it is."}).status == 200
    wait_until(lambda: world.smtp.mails, what="the reply without a NUL to go out")


def test_a_nul_in_a_new_or_picked_tag_is_refused_beside_it(world: World) -> None:
    ada = world.user(ADA)
    view_id = world.opened(lambda: ada.click(world.ticket_message(2), "ticket_tag"), "the tags modal")
    valid = {modals.NEW_TAGS_BLOCK: "billing"}
    each_field_refuses_nul(world, ada, view_id, valid, {modals.NEW_TAGS_BLOCK: "bill\x00ing"})
    assert ada.submit(view_id, valid).status == 200
    wait_until(lambda: "`billing`" in json.dumps(world.ticket_message(2)["blocks"]), what="the tag")
    # Known tags are then offered in a picker; Slack sends back only its options, but a
    # forged one must be answered alike.
    view_id = world.opened(lambda: ada.click(world.ticket_message(2), "ticket_tag"), "the tags modal")
    assert any(b["block_id"] == modals.TAGS_BLOCK for b in world.slack.views[view_id]["blocks"])
    each_field_refuses_nul(world, ada, view_id, {}, {modals.TAGS_BLOCK: ["billing\x00"]})


def test_a_nul_in_the_assignee_is_refused_beside_it(world: World) -> None:
    ada = world.user(ADA)
    assert ada.command("claim 3").json()["text"] == "You claimed #3."
    message = world.ticket_message(3)
    view_id = world.opened(lambda: ada.click(message, "ticket_more", option="reassign"), "the reassign modal")
    each_field_refuses_nul(world, ada, view_id, {}, {modals.ASSIGNEE_BLOCK: BOB + "\x00"})
    assert ada.submit(view_id, {modals.ASSIGNEE_BLOCK: BOB}).status == 200
    assert world.count(Ticket, Ticket.number == 3, Ticket.owner == BOB) == 1


def test_a_nul_in_any_template_field_is_refused_beside_it(world: World) -> None:
    may = world.user(MAY)
    view_id = world.opened(lambda: may.command("template new"), "the template editor")
    valid = {
        "name": "greeting.en",
        "title": "Greeting",
        "language": "en",
        "tags": "welcome",
        "text": "Hello {{ customer_name }}.",
        "html": "<p>Hello {{ customer_name }}.</p>",
    }
    with_nul = {block: value[:3] + "\x00" + value[3:] for block, value in valid.items()}
    each_field_refuses_nul(world, may, view_id, valid, with_nul)
    assert may.submit(view_id, valid).status == 200
    assert world.count(TemplateVersion, TemplateVersion.name == "greeting.en") == 1


def test_a_nul_in_any_automation_field_is_refused_beside_it(world: World) -> None:
    ada = world.user(ADA)
    view_id = world.opened(lambda: ada.click(world.ticket_message(4), "ticket_reply"), "a reply modal")
    hash_before = world.slack.views[view_id]["hash"]
    ada.pick(view_id, modals.ACTION_PICK_TEMPLATE, TEMPLATE)
    wait_until(lambda: world.slack.views[view_id]["hash"] != hash_before, what="the template in the modal")
    assert ada.submit(view_id).status == 200
    wait_until(lambda: world.count(Message, Message.template_name == TEMPLATE), what="the templated reply")
    # A template earns its Automate button once a ticket it answered stayed resolved a day.
    world.clock.advance(timedelta(hours=1))
    ada.click(world.ticket_message(4), "ticket_resolve")
    wait_until(
        lambda: world.count(Ticket, Ticket.number == 4, Ticket.status == "resolved"), what="#4 resolved"
    )
    world.clock.advance(timedelta(days=2))
    world.run_scheduler()
    # The Automate button sits in `/support automation`'s table of close rates.
    may = world.user(MAY)
    table = may.command("automation").json()
    shown = {"ts": "1700000000.000200", "blocks": table["blocks"], "is_ephemeral": True, "channel": CHANNEL}
    view_id = world.opened(
        lambda: may.click(shown, after_hours.ACTION_AUTOMATE, value=TEMPLATE), "the automation modal"
    )
    valid = {
        after_hours.WHEN_BLOCK: "always",
        after_hours.MATCH_KIND_BLOCK: "keyword",
        after_hours.PATTERN_BLOCK: "password",
    }
    with_nul = {
        after_hours.WHEN_BLOCK: "always\x00",
        after_hours.MATCH_KIND_BLOCK: "keyword\x00",
        after_hours.PATTERN_BLOCK: "pass\x00word",
    }
    each_field_refuses_nul(world, may, view_id, valid, with_nul)
    assert may.submit(view_id, valid).status == 200
    assert world.count(TemplateAutomation, TemplateAutomation.name == TEMPLATE) == 1


def test_a_nul_in_any_swap_field_is_refused_beside_it(world: World) -> None:
    ada = world.user(ADA)
    view_id = world.opened(lambda: ada.command("swap", command="/oncall"), "the swap modal")
    duty_select = next(
        b["element"]
        for b in world.slack.views[view_id]["blocks"]
        if b["block_id"] == oncall_ui.SWAP_DUTY_BLOCK
    )
    duty = duty_select["options"][-1]["value"]  # the latest: not under way, so offerable
    valid = {
        oncall_ui.SWAP_DUTY_BLOCK: duty,
        oncall_ui.SWAP_TO_BLOCK: BOB,
        oncall_ui.SWAP_NOTE_BLOCK: "thanks",
    }
    with_nul = {
        oncall_ui.SWAP_DUTY_BLOCK: duty + "\x00",
        oncall_ui.SWAP_TO_BLOCK: BOB + "\x00",
        oncall_ui.SWAP_NOTE_BLOCK: "than\x00ks",
    }
    each_field_refuses_nul(world, ada, view_id, valid, with_nul)
    assert ada.submit(view_id, valid).status == 200
    assert world.count(DutySwap, DutySwap.from_user == ADA, DutySwap.note == "thanks") == 1


# -- thread notes -----------------------------------------------------------------------------


def test_a_note_with_a_nul_is_kept_without_it(world: World) -> None:
    message = world.ticket_message(1)
    answer = world.user(ADA).write_in_thread(CHANNEL, message["ts"], "Customer called\x00 again.")
    assert answer.status == 200

    def notes() -> list[str]:
        with world.factory() as session:
            return list(session.scalars(select(Message.text).where(Message.direction == "note")))

    assert wait_until(notes, what="the note") == ["Customer called again."]
