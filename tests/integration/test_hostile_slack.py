"""Hostile Slack traffic through the bot's real endpoint: every listener the app registers,
used by someone outside the team, by staff who are not managers, and on other people's
tickets, duties, swaps and time off; payloads with values the bot never wrote; and forged,
stale and replayed signatures.

Each refusal must be an explanation to the person who tried (ephemeral, or next to the
field of a modal), and nothing else may happen: the database (outbox included) is
compared table by table before and after, no email leaves, and the only Slack calls
are the explanation and read-only lookups.

The listeners are read from the running Bolt app, so a listener (or a command verb)
added without a hostile case here makes `test_every_listener_and_verb_has_a_hostile_case`
fail.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.config import load_settings
from bot.privacy.erasure import ErasurePreview
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_requests import sign, view_state
from bot.sandbox.slack_workspace import TEAM
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack import after_hours, modals
from bot.slack import oncall as oncall_ui
from bot.slack import oncall_import as import_ui
from bot.slack import privacy as privacy_ui
from bot.storage.db import make_engine, make_sessionmaker, transaction
from bot.storage.models import (
    Base,
    DutySwap,
    Event,
    SeenSignature,
    Ticket,
    TimeOffRecord,
)
from bot.storage.seen_signatures import first_time_seen, purge_seen_signatures
from handlers import oncall as oncall_handlers
from rota import store
from tests.support.databases import DatabaseFactory
from tests.support.desk import add_people, desk_env, settle_outbox, wait_for_ticket_post
from tests.support.harness import CHANNEL, SIGNING_SECRET, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import APP_ID, Answer, SlackUser

pytestmark = pytest.mark.timeout(600)

ROME = ZoneInfo("Europe/Rome")
ADA, BOB, CY, MAY, EVE = "U0ADA", "U0BOB", "U0CY", "U0MAY", "U0EVE"  # staff ×3, manager, outsider
STAFF = {ADA: "ada", BOB: "bob", CY: "cy"}
# Wednesday noon in Rome: business hours, mid-week, so the rota's first duty is under way.
START = datetime(2026, 12, 2, 12, 0, tzinfo=ROME)
ROOT = Path(__file__).resolve().parents[2]

OUTSIDER = "Only support staff"
NOT_MANAGER = "Only managers"
# Tables that change by design while requests are refused: the replay guard's memory.
VOLATILE_TABLES = {"seen_signatures"}
# The outbox worker records delivery progress on rows; a refusal must add no row.
OUTBOX_IDENTITY = ("id", "kind", "lane", "dedupe_key", "ticket_id", "payload", "created_at")
# Slack calls a refusal may make: the explanation itself and read-only lookups.
READ_ONLY_CALLS = {"conversations.members", "users.info", "usergroups.users.list", "auth.test"}


# -- the world: a bot with tickets, a published rota, time off and swaps in flight -----------


@dataclass
class World:
    bot: SupportBot
    slack: SlackStandIn
    imap: PymapServer
    smtp: SmtpCatcher
    clock: FrozenClock
    engine: Engine
    factory: sessionmaker[Session]
    env: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    until: str = ""

    @property
    def url(self) -> str:
        return f"{self.bot.url}/slack/events"

    def user(self, user_id: str) -> SlackUser:
        return SlackUser(self.bot.url, self.slack, user_id)

    def command(self, user_id: str, text: str, command: str = "/support") -> Answer:
        return self.user(user_id).command(text, command=command)

    def ticket_ts(self, number: int) -> str:
        return str(wait_for_ticket_post(self.slack, number)["ts"])

    def snapshot(self) -> dict[str, list[Any]]:
        """Every row of every table of ours (the outbox by identity, not delivery progress)."""
        out: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                if table.name in VOLATILE_TABLES:
                    continue
                columns = [c for c in table.columns if table.name != "outbox" or c.name in OUTBOX_IDENTITY]
                order = list(table.primary_key.columns) or columns
                rows = conn.execute(select(*columns).order_by(*order)).all()
                out[table.name] = [tuple(r) for r in rows]
        return out

    def settle(self) -> None:
        """Wait until the outbox has delivered everything: the world is still."""

        settle_outbox(self.factory)
        # Listeners still finishing (a DM rewritten after a click) call Slack without the outbox.
        seen = [-1]

        def still() -> bool:
            count = len(self.slack.calls())
            settled, seen[0] = count == seen[0], count
            return settled

        wait_until(still, timeout=30, interval=0.3, what="Slack calls to stop")


def _interaction_body(user: str, payload: dict[str, Any]) -> bytes:
    base = {
        "team": {"id": TEAM},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy",
    }
    return urllib.parse.urlencode({"payload": json.dumps({**base, **payload})}).encode()


def post(
    world: World,
    body: bytes,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    secret: str = SIGNING_SECRET,
    headers: dict[str, str] | None = None,
    signature: str | None = None,
) -> tuple[Answer, dict[str, str]]:
    """One request into the endpoint, signed unless told otherwise; returns what was sent too,
    so the very same request can be sent again."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sent = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(secret, ts, body) if signature is None else signature,
        **(headers or {}),
    }
    return send_raw(world.url, body, {k: v for k, v in sent.items() if v is not None}), sent


def send_raw(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read())


def click(
    world: World,
    user: str,
    action_id: str,
    value: str,
    *,
    kind: str = "button",
    channel: str = CHANNEL,
    message_ts: str = "1700000000.000100",
) -> Answer:
    """A block action as Slack sends it for a button (or overflow/select) on a message."""
    action: dict[str, Any] = {"action_id": action_id, "block_id": "b", "type": kind, "action_ts": "1.0"}
    if kind == "button":
        action["value"] = value
    else:
        action["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
    payload = {
        "type": "block_actions",
        "trigger_id": world.slack.issue_trigger(user),
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "channel": {"id": channel, "name": world.slack.channel_name(channel)},
        "message": {"ts": message_ts, "text": "", "blocks": []},
        "response_url": world.slack.issue_response_url(user, channel),
        "actions": [action],
    }
    return post(world, _interaction_body(user, payload))[0]


def pick_in_modal(world: World, user: str, view: dict[str, Any], action_id: str, value: str) -> Answer:
    """A select inside an open modal (the reply modal's template picker)."""
    action = {
        "action_id": action_id,
        "block_id": "template_pick",
        "type": "static_select",
        "action_ts": "1.0",
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
    }
    payload = {
        "type": "block_actions",
        "trigger_id": world.slack.issue_trigger(user),
        "container": {"type": "view", "view_id": view["id"]},
        "view": {**view, "state": {"values": {}}},
        "actions": [action],
    }
    return post(world, _interaction_body(user, payload))[0]


def submit(
    world: World, user: str, view: dict[str, Any], values: dict[str, Any] | None = None, **signing: Any
) -> tuple[Answer, dict[str, str], bytes]:
    payload = {
        "type": "view_submission",
        "trigger_id": world.slack.issue_trigger(user),
        "view": {**view, "state": {"values": view_state(view, values or {})}},
    }
    body = _interaction_body(user, payload)
    answer, sent = post(world, body, **signing)
    return answer, sent, body


def event(world: World, inner: dict[str, Any], **signing: Any) -> tuple[Answer, dict[str, str], bytes]:
    envelope = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "type": "event_callback",
        "event_id": f"Ev{time.monotonic_ns()}",
        "event_time": int(time.time()),
        "event": inner,
    }
    body = json.dumps(envelope).encode()
    answer, sent = post(world, body, content_type="application/json", **signing)
    return answer, sent, body


def with_metadata(view: dict[str, Any], metadata: str) -> dict[str, Any]:
    return {**view, "private_metadata": metadata}


# Modals as the bot draws them (ids given as Slack would), to be submitted by the wrong people.


def reply_view(ticket_id: int, number: int) -> dict[str, Any]:
    view = modals.reply_modal(
        ticket_id=ticket_id,
        number=number,
        customer="customer@example.org",
        subject="Question",
        last_message="Hello",
        templates=[],
        body="Forged answer to the customer.",
    )
    return {**view, "id": f"VREPLY{ticket_id}", "hash": "h"}


def tags_view(ticket_id: int) -> dict[str, Any]:
    view = modals.tags_modal(ticket_id=ticket_id, number=1, known=["billing"], current=[])
    return {**view, "id": "VTAGS", "hash": "h"}


def reassign_view(ticket_id: int) -> dict[str, Any]:
    return {**modals.reassign_modal(ticket_id=ticket_id, number=1, owner=ADA), "id": "VREASSIGN", "hash": "h"}


def template_view() -> dict[str, Any]:
    view = modals.template_editor(modals.TemplateDraft(), editing=False)
    return {**view, "id": "VTEMPLATE", "hash": "h"}


def automation_view() -> dict[str, Any]:
    return {**after_hours.automation_modal("greeting.en", None, None), "id": "VAUTO", "hash": "h"}


def erase_view() -> dict[str, Any]:
    preview = ErasurePreview(
        tickets=1, messages=1, attachments=0, surveys=0, auto_replies=0, blocks=0, slack_posts=1, files=0
    )
    return {**privacy_ui.erase_modal("c1@example.org", preview), "id": "VERASE", "hash": "h"}


def swap_view(world: World, holder: str) -> dict[str, Any]:
    with world.factory() as session:
        duties = store.duties_of(session, holder, since=world.clock.now())
    chosen = world.ids["ada_duty"] if holder == ADA else None
    return {**oncall_ui.swap_modal(duties, ROME, selected=chosen), "id": f"VSWAP{holder}", "hash": "h"}


TEMPLATE_FIELDS = {
    "name": "forged",
    "title": "Forged",
    "language": "en",
    "text": "Hello {{ customer_name }}.",
}
AUTOMATION_FIELDS = {
    after_hours.WHEN_BLOCK: "always",
    after_hours.MATCH_KIND_BLOCK: "keyword",
    after_hours.PATTERN_BLOCK: "password",
}


@pytest.fixture(scope="module")
def world(db_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database_url = db_factory.new_url()
    engine = make_engine(database_url)
    with contextlib.ExitStack() as stack:
        slack = stack.enter_context(SlackStandIn(channels=(CHANNEL,)))
        imap = stack.enter_context(PymapServer(tmp_path_factory.mktemp("imap")))
        smtp = stack.enter_context(SmtpCatcher())
        add_people(slack, STAFF, managers={MAY: "may"}, outsiders={EVE: "eve"})
        clock = FrozenClock(START)
        env = desk_env(
            slack,
            imap,
            database_url,
            smtp,
            MANAGERS=MAY,
            SWAP_APPROVAL="true",
            SWAP_EXPIRY_HOURS="24",
            TEMPLATES_DIR=str(ROOT / "templates"),
        )
        bot = stack.enter_context(running_bot(env, clock=clock))
        world = World(bot, slack, imap, smtp, clock, engine, make_sessionmaker(engine), env=env)
        _build(world)
        yield world
    engine.dispose()
    db_factory.drop(database_url)


def _build(world: World) -> None:
    """Tickets #1 (Ada's), #2 (nobody's), #3 and #4 (for the replay tests); a published rota;
    Ada's time off; Ada's duty offered to Bob; Cy's duty accepted by Ada, waiting for a manager."""
    world.imap.append_many(
        [customer_mail(n, subject=f"Question {n}", sender=f"c{n}@example.org") for n in range(1, 5)]
    )
    for number in range(1, 5):
        world.ticket_ts(number)
    assert world.user(ADA).command("claim 1").json()["text"] == "You claimed #1."

    preview = world.command(MAY, "plan 4", "/oncall").json()
    publish = next(
        e
        for b in preview["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == oncall_ui.ACTION_PUBLISH
    )
    world.until = publish["value"]
    shown = {"ts": "1700000000.000100", "blocks": preview["blocks"], "is_ephemeral": True, "channel": CHANNEL}
    world.user(MAY).click(shown, oncall_ui.ACTION_PUBLISH)
    wait_until(lambda: any("Published" in e["text"] for e in world.slack.ephemerals(MAY)), what="published")

    with world.factory() as session:
        duties = store.duties_between(session, START, START + timedelta(weeks=5))
    future = [d for d in duties if d.start > START and d.end - d.start >= timedelta(days=7)]
    ada_duty = next(d for d in future if d.user_id == ADA)
    cy_duty = next(d for d in future if d.user_id == CY)
    night = ada_duty.start.astimezone(ROME).date() + timedelta(days=1)
    assert "You offered" in world.command(ADA, f"swap {night} <@{BOB}|bob>", "/oncall").json()["text"]
    cy_night = cy_duty.start.astimezone(ROME).date() + timedelta(days=1)
    assert "You offered" in world.command(CY, f"swap {cy_night} <@{ADA}|ada>", "/oncall").json()["text"]
    away = world.command(ADA, "away 2027-03-01 2027-03-02", "/oncall").json()
    assert "time off is recorded" in json.dumps(away["blocks"])

    with world.factory() as session:
        offered = session.scalars(select(DutySwap).where(DutySwap.from_user == ADA)).one()
        to_ada = session.scalars(select(DutySwap).where(DutySwap.from_user == CY)).one()
        time_off = session.scalars(select(TimeOffRecord).where(TimeOffRecord.user_id == ADA)).one()
        tickets = {t.number: t.id for t in session.scalars(select(Ticket))}
    offer = wait_until(
        lambda: next((m for m in world.slack.dms(ADA) if "asks you to take" in m["text"]), None),
        what="Cy's offer in Ada's DMs",
    )
    world.user(ADA).click({**offer, "channel": world.slack.dm_channels[ADA]}, oncall_ui.ACTION_ACCEPT)

    def waiting() -> bool:
        with world.factory() as session:
            swap = session.get(DutySwap, to_ada.id)
            return swap is not None and swap.status == "awaiting_approval"

    wait_until(waiting, what="the accepted swap to wait for a manager")
    world.ids.update(
        ticket1=tickets[1],
        ticket2=tickets[2],
        ticket3=tickets[3],
        ticket4=tickets[4],
        ada_duty=ada_duty.id,
        swap_offered=offered.id,
        swap_waiting=to_ada.id,
        time_off=time_off.id,
    )
    # The scheduler's jobs once, now, so that their first run does not land in the middle of a
    # refusal (the clock is frozen: later runs find nothing to do).
    jobs = world.bot.jobs
    for job in (
        jobs.rota_tick,
        jobs.paging_tick,
        jobs.nudge_unclaimed_tickets,
        jobs.send_surveys,
        jobs.sync_roster,
    ):
        job()
    world.settle()


# -- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile request. `covers` names the listener (and verb) it exercises; `says` is
    what the refusal must contain; `where` is where Slack shows it to the person:
    the request's answer (commands, modals), an ephemeral, a DM, the App Home, or nowhere
    (events from outsiders are ignored)."""

    id: str
    covers: tuple[str, str]
    user: str
    send: Callable[[World], Answer]
    says: str
    where: str = "ephemeral"


def mention(user: str) -> str:
    return f"<@{user}|{user.lower()}>"


def ada_night(world: World) -> date:
    with world.factory() as session:
        duty = store.duty(session, world.ids["ada_duty"])
    assert duty is not None
    return duty.start.astimezone(ROME).date() + timedelta(days=1)


def _cmd(user: str, text: str, command: str) -> Callable[[World], Answer]:
    return lambda w: w.command(user, text, command)


def _click(
    user: str, action_id: str, value: Callable[[World], str], kind: str = "button"
) -> Callable[[World], Answer]:
    return lambda w: click(w, user, action_id, value(w), kind=kind)


def _submit(
    user: str, view: Callable[[World], dict[str, Any]], values: dict[str, Any] | None = None
) -> Callable[[World], Answer]:
    return lambda w: submit(w, user, view(w), values)[0]


def _id(key: str) -> Callable[[World], str]:
    return lambda w: str(w.ids[key])


def _const(value: str) -> Callable[[World], str]:
    return lambda w: value


# Every verb of both commands, in a form that would change something if it were obeyed.
SUPPORT_VERBS = {
    "help": "help",
    "open": "open",
    "mine": "mine",
    "ticket": "ticket 1",
    "customer": "customer c1@example.org",
    "claim": "claim 2",
    "unclaim": "unclaim 1",
    "resolve": "resolve 2",
    "reopen": "reopen 1",
    "templates": "templates",
    "template": "template new",
    "rules": "rules add keyword outage urgent",
    "automation": "automation off password_reset.en",
    "stats": "stats",
    "export": "export tickets",
    "search": "search question",
    "spam": "spam block-domain example.org",
    "status": "status",
}
ONCALL_VERBS = {
    "": "",
    "help": "help",
    "me": "me",
    "away": "away 2027-01-10",
    "swap": "swap",
    "cover": "cover",
    "comp": "comp take 2027-01-05",
    "ical": "ical reset",
    "plan": "plan",
    "fairness": "fairness",
    "roster": f"roster remove {mention(CY)}",
    "weight": f"weight {mention(CY)} 0.5",
    "phone": "phone +39 333 123 4567",
    "test": "test",
    "import": "import",
}

TICKET_ACTIONS = {
    "ticket_claim": _id("ticket2"),
    "ticket_resolve": _id("ticket2"),
    "ticket_reply": _id("ticket2"),
    "ticket_tag": _id("ticket2"),
    "ticket_not_spam": _id("ticket2"),
    "page_ack": _const("1"),
    "page_claim": _const("1"),
    oncall_ui.ACTION_OFFER: _id("ada_duty"),
    oncall_ui.ACTION_CANCEL_TIME_OFF: _id("time_off"),
    oncall_ui.ACTION_ACCEPT: _id("swap_offered"),
    oncall_ui.ACTION_DECLINE: _id("swap_offered"),
    oncall_ui.ACTION_WITHDRAW: _id("swap_offered"),
}
MANAGER_ACTIONS = {
    oncall_ui.ACTION_APPROVE: _id("swap_waiting"),
    oncall_ui.ACTION_REJECT: _id("swap_waiting"),
    oncall_ui.ACTION_PUBLISH: lambda w: w.until,
    oncall_ui.ACTION_DISCARD: lambda w: w.until,
    after_hours.ACTION_AUTOMATE: _const("password_reset.en"),
    after_hours.ACTION_AUTOMATION_OFF: _const("password_reset.en"),
    # A staged rota import's buttons: only managers publish or cancel one.
    import_ui.ACTION_IMPORT_PUBLISH: _const("1"),
    import_ui.ACTION_IMPORT_FUTURE_ONLY: _const("1"),
    import_ui.ACTION_IMPORT_CANCEL: _const("1"),
}
TICKET_VIEWS: dict[str, tuple[Callable[[World], dict[str, Any]], dict[str, Any]]] = {
    modals.REPLY_CALLBACK: (lambda w: reply_view(w.ids["ticket2"], 2), {}),
    modals.TAGS_CALLBACK: (lambda w: tags_view(w.ids["ticket2"]), {modals.NEW_TAGS_BLOCK: "forged"}),
    modals.REASSIGN_CALLBACK: (lambda w: reassign_view(w.ids["ticket1"]), {modals.ASSIGNEE_BLOCK: BOB}),
    oncall_ui.SWAP_CALLBACK: (lambda w: swap_view(w, ADA), {oncall_ui.SWAP_TO_BLOCK: CY}),
}
MANAGER_VIEWS: dict[str, tuple[Callable[[World], dict[str, Any]], dict[str, Any]]] = {
    modals.TEMPLATE_EDIT_CALLBACK: (lambda w: template_view(), TEMPLATE_FIELDS),
    after_hours.AUTOMATION_CALLBACK: (lambda w: automation_view(), AUTOMATION_FIELDS),
    # Typed exactly as asked: only the permission stands between it and an erasure.
    privacy_ui.ERASE_CALLBACK: (lambda w: erase_view(), {privacy_ui.CONFIRM_BLOCK: "c1@example.org"}),
    import_ui.IMPORT_CALLBACK: (
        lambda w: {**import_ui.import_modal(), "id": "VIMPORT", "hash": "h"},
        {import_ui.IMPORT_URL_BLOCK: "https://calendar.example.org/rota.ics"},
    ),
}


def _outsider_cases() -> list[Case]:
    cases = [
        Case(
            f"outsider /support {verb}",
            ("/support", verb),
            EVE,
            _cmd(EVE, text, "/support"),
            OUTSIDER,
            "answer",
        )
        for verb, text in SUPPORT_VERBS.items()
    ]
    cases += [
        Case(
            f"outsider /support {t}",
            ("/support", "customer"),
            EVE,
            _cmd(EVE, t, "/support"),
            OUTSIDER,
            "answer",
        )
        for t in ("customer export c1@example.org", "customer erase c1@example.org")
    ]
    cases += [
        Case(
            f"outsider /oncall {verb}", ("/oncall", verb), EVE, _cmd(EVE, text, "/oncall"), OUTSIDER, "answer"
        )
        for verb, text in ONCALL_VERBS.items()
    ]
    cases.append(
        Case(
            "outsider ticket_more",
            ("action", "ticket_more"),
            EVE,
            lambda w: click(w, EVE, "ticket_more", f"unclaim:{w.ids['ticket1']}", kind="overflow"),
            OUTSIDER,
        )
    )
    cases.append(
        Case(
            "outsider reply_template",
            ("action", modals.ACTION_PICK_TEMPLATE),
            EVE,
            lambda w: pick_in_modal(
                w, EVE, reply_view(w.ids["ticket2"], 2), modals.ACTION_PICK_TEMPLATE, "password_reset.en"
            ),
            OUTSIDER,
            "dm",
        )
    )
    for action_id, value in {**TICKET_ACTIONS, **MANAGER_ACTIONS}.items():
        cases.append(
            Case(
                f"outsider {action_id}",
                ("action", action_id),
                EVE,
                _click(EVE, action_id, value),
                NOT_MANAGER if action_id in MANAGER_ACTIONS else OUTSIDER,
            )
        )
    for callback_id, (view, values) in {**TICKET_VIEWS, **MANAGER_VIEWS}.items():
        cases.append(
            Case(
                f"outsider {callback_id}",
                ("view", callback_id),
                EVE,
                _submit(EVE, view, values),
                NOT_MANAGER if callback_id in MANAGER_VIEWS else OUTSIDER,
                "answer",
            )
        )
    cases += [
        Case(
            "outsider note in a ticket thread",
            ("event", "message"),
            EVE,
            lambda w: event(
                w,
                {
                    "type": "message",
                    "channel": CHANNEL,
                    "user": EVE,
                    "text": "forged note",
                    "ts": "1800000000.000100",
                    "thread_ts": w.ticket_ts(1),
                },
            )[0],
            "",
            "nowhere",
        ),
        Case(
            "outsider App Home",
            ("event", "app_home_opened"),
            EVE,
            lambda w: event(w, {"type": "app_home_opened", "user": EVE, "channel": "D0EVE", "tab": "home"})[
                0
            ],
            "",
            "home",
        ),
        Case(
            "outsider joins",
            ("event", "member_joined_channel"),
            EVE,
            lambda w: event(w, {"type": "member_joined_channel", "user": EVE, "channel": CHANNEL})[0],
            "",
            "nowhere",
        ),
        Case(
            "outsider leaves",
            ("event", "member_left_channel"),
            EVE,
            lambda w: event(w, {"type": "member_left_channel", "user": EVE, "channel": CHANNEL})[0],
            "",
            "nowhere",
        ),
    ]
    return cases


def _not_manager_cases() -> list[Case]:
    support = [
        "template new",
        "template edit password_reset.en",
        "rules",
        "rules add keyword outage urgent",
        "rules remove 1",
        "rules move 1 2",
        "automation",
        "automation off password_reset.en",
        "export tickets",
        "export ledger week",
        "spam block-domain example.org",
        "spam unblock-domain example.org",
        "customer export c1@example.org",
        "customer erase c1@example.org",
    ]
    oncall = [
        "plan",
        "plan 2",
        "fairness",
        "roster",
        f"roster remove {mention(CY)}",
        f"roster add {mention(CY)}",
        f"weight {mention(CY)} 0.5",
        "comp all",
        f"comp adjust {mention(CY)} 1 forged",
        "comp export",
        f"away {mention(CY)} 2027-01-10",
        "import",
    ]
    cases = [
        Case(
            f"staff /support {t}",
            ("/support", t.split()[0]),
            BOB,
            _cmd(BOB, t, "/support"),
            NOT_MANAGER,
            "answer",
        )
        for t in support
    ]
    cases += [
        Case(
            f"staff /oncall {t}",
            ("/oncall", t.split()[0]),
            BOB,
            _cmd(BOB, t, "/oncall"),
            NOT_MANAGER,
            "answer",
        )
        for t in oncall
    ]
    for action_id, value in MANAGER_ACTIONS.items():
        cases.append(
            Case(f"staff {action_id}", ("action", action_id), BOB, _click(BOB, action_id, value), NOT_MANAGER)
        )
    for callback_id, (view, values) in MANAGER_VIEWS.items():
        cases.append(
            Case(
                f"staff {callback_id}",
                ("view", callback_id),
                BOB,
                _submit(BOB, view, values),
                NOT_MANAGER,
                "answer",
            )
        )
    return cases


def _someone_elses_cases() -> list[Case]:
    return [
        Case(
            "unclaim Ada's ticket from the menu",
            ("action", "ticket_more"),
            BOB,
            lambda w: click(w, BOB, "ticket_more", f"unclaim:{w.ids['ticket1']}", kind="overflow"),
            "only they or a manager can release it",
        ),
        Case(
            "unclaim Ada's ticket by command",
            ("/support", "unclaim"),
            BOB,
            _cmd(BOB, "unclaim 1", "/support"),
            "only they or a manager can release it",
            "answer",
        ),
        Case(
            "reassign Ada's ticket to oneself",
            ("view", modals.REASSIGN_CALLBACK),
            BOB,
            _submit(BOB, lambda w: reassign_view(w.ids["ticket1"]), {modals.ASSIGNEE_BLOCK: BOB}),
            "only they or a manager can reassign it",
            "answer",
        ),
        Case(
            "accept an offer made to Bob",
            ("action", oncall_ui.ACTION_ACCEPT),
            CY,
            _click(CY, oncall_ui.ACTION_ACCEPT, _id("swap_offered")),
            "not to you",
        ),
        Case(
            "decline an offer made to Bob",
            ("action", oncall_ui.ACTION_DECLINE),
            CY,
            _click(CY, oncall_ui.ACTION_DECLINE, _id("swap_offered")),
            "not to you",
        ),
        Case(
            "withdraw Ada's offer",
            ("action", oncall_ui.ACTION_WITHDRAW),
            CY,
            _click(CY, oncall_ui.ACTION_WITHDRAW, _id("swap_offered")),
            "Only the people in this request",
        ),
        Case(
            "cancel Ada's time off",
            ("action", oncall_ui.ACTION_CANCEL_TIME_OFF),
            BOB,
            _click(BOB, oncall_ui.ACTION_CANCEL_TIME_OFF, _id("time_off")),
            "someone else's time off",
        ),
        Case(
            "offer Ada's duty from the button",
            ("action", oncall_ui.ACTION_OFFER),
            BOB,
            _click(BOB, oncall_ui.ACTION_OFFER, _id("ada_duty")),
            "no longer yours to offer",
        ),
        Case(
            "offer Ada's duty from the modal",
            ("view", oncall_ui.SWAP_CALLBACK),
            BOB,
            _submit(BOB, lambda w: swap_view(w, ADA), {oncall_ui.SWAP_TO_BLOCK: CY}),
            "only offer a duty you hold",
            "answer",
        ),
        Case(
            "offer Ada's duty by command",
            ("/oncall", "swap"),
            BOB,
            lambda w: w.command(BOB, f"swap {ada_night(w)} {mention(CY)}", "/oncall"),
            "only offer a duty you hold",
            "answer",
        ),
        Case(
            "take comp days for Ada",
            ("/oncall", "comp"),
            BOB,
            _cmd(BOB, f"comp take {mention(ADA)} 2027-01-05", "/oncall"),
            "not a date",
            "answer",
        ),
        Case(
            "approve one's own waiting swap",
            ("action", oncall_ui.ACTION_APPROVE),
            ADA,
            _click(ADA, oncall_ui.ACTION_APPROVE, _id("swap_waiting")),
            NOT_MANAGER,
        ),
    ]


HUGE = "9" * 40
WEIRD_IDS = {
    "missing": ("999999", "no ticket with id"),
    "letters": ("abc", "carries no ticket"),
    "sql": ("1 OR 1=1", "carries no ticket"),
    "sql-drop": ("'; DROP TABLE tickets; --", "carries no ticket"),
    "negative": ("-1", "carries no ticket"),
    "huge": (HUGE, "carries no ticket"),
    "empty": ("", "carries no ticket"),
    "fullwidth": ("１", "carries no ticket"),
}


def _reply_metadata(w: World, **fields: Any) -> str:
    return json.dumps({"ticket_id": w.ids["ticket2"], "revision": 0, **fields})


def _forged_payload_cases() -> list[Case]:
    digest = modals.text_digest("Forged answer to the customer.")
    cases = [
        Case(
            f"claim with a {name} id",
            ("action", "ticket_claim"),
            ADA,
            _click(ADA, "ticket_claim", _const(value)),
            says,
        )
        for name, (value, says) in WEIRD_IDS.items()
    ]
    cases += [
        Case(
            "resolve a missing ticket",
            ("action", "ticket_resolve"),
            ADA,
            _click(ADA, "ticket_resolve", _const("999999")),
            "no ticket with id",
        ),
        Case(
            "reply to a missing ticket",
            ("action", "ticket_reply"),
            ADA,
            _click(ADA, "ticket_reply", _const("999999")),
            "no longer exists",
        ),
        Case(
            "tag a huge id",
            ("action", "ticket_tag"),
            ADA,
            _click(ADA, "ticket_tag", _const(HUGE)),
            "carries no ticket",
        ),
        Case(
            "mark a missing ticket as spam",
            ("action", "ticket_more"),
            ADA,
            lambda w: click(w, ADA, "ticket_more", "spam:999999", kind="overflow"),
            "no ticket with id",
        ),
        Case(
            "mark spam with a forged id",
            ("action", "ticket_more"),
            ADA,
            lambda w: click(w, ADA, "ticket_more", "spam:1 OR 1=1", kind="overflow"),
            "carries no ticket",
        ),
        Case(
            "not spam on a ticket that is not spam",
            ("action", "ticket_not_spam"),
            ADA,
            _click(ADA, "ticket_not_spam", _id("ticket2")),
            "is not marked as spam",
        ),
        Case(
            "not spam on a missing ticket",
            ("action", "ticket_not_spam"),
            ADA,
            _click(ADA, "ticket_not_spam", _const("999999")),
            "no ticket with id",
        ),
        Case(
            "not spam with a huge id",
            ("action", "ticket_not_spam"),
            ADA,
            _click(ADA, "ticket_not_spam", _const(HUGE)),
            "carries no ticket",
        ),
        Case(
            "unblock an address nobody blocked",
            ("/support", "spam"),
            ADA,
            _cmd(ADA, "spam unblock <mailto:a&b@example.org|a&b@example.org>", "/support"),
            "a&amp;b@example.org is not blocked",
            "answer",
        ),
        Case(
            "unblock something that is no address",
            ("/support", "spam"),
            ADA,
            _cmd(ADA, "spam unblock <!channel>", "/support"),
            "Give one email address",
            "answer",
        ),
        Case(
            "an unknown spam verb",
            ("/support", "spam"),
            ADA,
            _cmd(ADA, "spam <!channel>", "/support"),
            "I don't know `spam &lt;!channel&gt;`",
            "answer",
        ),
        Case(
            "an unknown menu verb",
            ("action", "ticket_more"),
            ADA,
            lambda w: click(w, ADA, "ticket_more", f"explode:{w.ids['ticket2']}", kind="overflow"),
            "Unknown choice",
        ),
        Case(
            "a menu verb without id",
            ("action", "ticket_more"),
            ADA,
            lambda w: click(w, ADA, "ticket_more", "unclaim:abc", kind="overflow"),
            "carries no ticket",
        ),
        Case(
            "pick a template in a form without ticket",
            ("action", modals.ACTION_PICK_TEMPLATE),
            ADA,
            lambda w: pick_in_modal(
                w,
                ADA,
                with_metadata(reply_view(1, 1), "{}"),
                modals.ACTION_PICK_TEMPLATE,
                "password_reset.en",
            ),
            "Sorry",
            "dm",
        ),
        Case(
            "acknowledge a missing page",
            ("action", "page_ack"),
            ADA,
            _click(ADA, "page_ack", _const("999999")),
            "no longer exists",
        ),
        Case(
            "claim a page without id",
            ("action", "page_claim"),
            ADA,
            _click(ADA, "page_claim", _const("x")),
            "carries no page",
        ),
        Case(
            "accept a huge swap id",
            ("action", oncall_ui.ACTION_ACCEPT),
            BOB,
            _click(BOB, oncall_ui.ACTION_ACCEPT, _const(HUGE)),
            "carries nothing I can read",
        ),
        Case(
            "accept a missing swap",
            ("action", oncall_ui.ACTION_ACCEPT),
            BOB,
            _click(BOB, oncall_ui.ACTION_ACCEPT, _const("999999")),
            "no longer exists",
        ),
        Case(
            "cancel missing time off",
            ("action", oncall_ui.ACTION_CANCEL_TIME_OFF),
            ADA,
            _click(ADA, oncall_ui.ACTION_CANCEL_TIME_OFF, _const("999999")),
            "not on record",
        ),
        Case(
            "offer a duty named in letters",
            ("action", oncall_ui.ACTION_OFFER),
            ADA,
            _click(ADA, oncall_ui.ACTION_OFFER, _const("abc")),
            "no longer yours",
        ),
        Case(
            "publish a plan without time zone",
            ("action", oncall_ui.ACTION_PUBLISH),
            MAY,
            _click(MAY, oncall_ui.ACTION_PUBLISH, _const("2026-12-30T09:00:00")),
            "carries no plan",
        ),
        Case(
            "publish a plan for ever",
            ("action", oncall_ui.ACTION_PUBLISH),
            MAY,
            _click(MAY, oncall_ui.ACTION_PUBLISH, _const("9999-12-31T00:00:00+00:00")),
            "carries no plan",
        ),
        Case(
            "publish junk",
            ("action", oncall_ui.ACTION_PUBLISH),
            MAY,
            _click(MAY, oncall_ui.ACTION_PUBLISH, _const("'; DROP TABLE rota_duties; --")),
            "carries no plan",
        ),
        Case(
            "turn off an automation that is not one",
            ("action", after_hours.ACTION_AUTOMATION_OFF),
            MAY,
            _click(MAY, after_hours.ACTION_AUTOMATION_OFF, _const("'; DROP TABLE x; --")),
            "not automated",
        ),
    ]
    reply_metadata: dict[str, Callable[[World], str]] = {
        "empty": lambda w: "{}",
        "not JSON": lambda w: "not json {",
        "a list": lambda w: "[1, 2]",
        "a word for the ticket": lambda w: '{"ticket_id": "abc"}',
        "a huge ticket id": lambda w: f'{{"ticket_id": {HUGE}}}',
        "a missing ticket": lambda w: '{"ticket_id": 999999}',
        "a word for the revision": lambda w: _reply_metadata(w, revision="x"),
        "a missing template": lambda w: _reply_metadata(w, template="nope.en", version=1, digest=digest),
        "a word for the version": lambda w: _reply_metadata(
            w, template="password_reset.en", version="x", digest=digest
        ),
    }
    for name, metadata in reply_metadata.items():
        cases.append(
            Case(
                f"reply form with {name} metadata",
                ("view", modals.REPLY_CALLBACK),
                ADA,
                lambda w, m=metadata: submit(w, ADA, with_metadata(reply_view(w.ids["ticket2"], 2), m(w)))[0],
                "",
                "answer",
            )
        )
    cases += [
        Case(
            "tags form without ticket",
            ("view", modals.TAGS_CALLBACK),
            ADA,
            _submit(ADA, lambda w: with_metadata(tags_view(1), "{}"), {modals.NEW_TAGS_BLOCK: "x"}),
            "does not say which ticket",
            "answer",
        ),
        Case(
            "reassign form with a huge ticket",
            ("view", modals.REASSIGN_CALLBACK),
            MAY,
            _submit(
                MAY,
                lambda w: with_metadata(reassign_view(1), f'{{"ticket_id": {HUGE}}}'),
                {modals.ASSIGNEE_BLOCK: BOB},
            ),
            "does not say which ticket",
            "answer",
        ),
        Case(
            "reassign to an outsider",
            ("view", modals.REASSIGN_CALLBACK),
            MAY,
            _submit(MAY, lambda w: reassign_view(w.ids["ticket2"]), {modals.ASSIGNEE_BLOCK: EVE}),
            "member of the support team",
            "answer",
        ),
        Case(
            "swap form with a word for a duty",
            ("view", oncall_ui.SWAP_CALLBACK),
            ADA,
            _submit(
                ADA,
                lambda w: swap_view(w, ADA),
                {oncall_ui.SWAP_DUTY_BLOCK: "abc", oncall_ui.SWAP_TO_BLOCK: CY},
            ),
            "Pick one of your duties",
            "answer",
        ),
        Case(
            "swap form with a huge duty",
            ("view", oncall_ui.SWAP_CALLBACK),
            ADA,
            _submit(
                ADA,
                lambda w: swap_view(w, ADA),
                {oncall_ui.SWAP_DUTY_BLOCK: HUGE, oncall_ui.SWAP_TO_BLOCK: CY},
            ),
            "Pick one of your duties",
            "answer",
        ),
        Case(
            "automate a template that does not exist",
            ("view", after_hours.AUTOMATION_CALLBACK),
            MAY,
            _submit(
                MAY, lambda w: with_metadata(automation_view(), '{"name": "no-such.en"}'), AUTOMATION_FIELDS
            ),
            "",
            "answer",
        ),
        Case(
            "save a template named like a path",
            ("view", modals.TEMPLATE_EDIT_CALLBACK),
            MAY,
            _submit(MAY, lambda w: template_view(), {**TEMPLATE_FIELDS, "name": "../../etc/passwd"}),
            "short name",
            "answer",
        ),
    ]
    return cases


CASES = _outsider_cases() + _not_manager_cases() + _someone_elses_cases() + _forged_payload_cases()


# -- the checks -----------------------------------------------------------------------------------


def _said(answer: Answer) -> str:
    """What the person reads in the answer: a command's text, or a modal's field errors."""
    data = answer.json()
    return " ".join([str(data.get("text") or ""), *map(str, (data.get("errors") or {}).values())])


def _changes(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        table: {
            "gone": [r for r in rows if r not in after[table]],
            "new": [r for r in after[table] if r not in rows],
        }
        for table, rows in before.items()
        if rows != after[table]
    }


def assert_refused_and_nothing_changed(world: World, case: Case) -> None:
    before = world.snapshot()
    calls_before = len(world.slack.calls())
    mails_before = len(world.smtp.mails)
    ephemerals_before = len(world.slack.ephemerals(case.user))
    dms_before = len(world.slack.dms(case.user))

    answer = case.send(world)
    assert answer.status == 200, (answer.status, answer.body)

    if case.where == "answer":
        said = _said(answer)
        assert said.strip(), f"no explanation in {answer.body!r}"
        assert case.says in said, said
        if answer.json().get("response_action"):
            assert answer.json()["response_action"] == "errors"
    elif case.where == "ephemeral":
        told = wait_until(
            lambda: world.slack.ephemerals(case.user)[ephemerals_before:],
            what=f"an ephemeral for {case.user}",
        )
        assert case.says in told[0]["text"], told[0]["text"]
    elif case.where == "dm":
        told = wait_until(lambda: world.slack.dms(case.user)[dms_before:], what=f"a DM to {case.user}")
        assert case.says in told[0]["text"], told[0]["text"]
    elif case.where == "home":
        home = wait_until(lambda: world.slack.home.get(case.user), what="the App Home")
        assert "support" in json.dumps(home).lower()
    else:
        assert not answer.body or answer.json() in ({}, {"text": ""}), answer.body
        time.sleep(0.5)  # an event is handled after the answer: give a wrong note time to be stored

    assert _changes(before, world.snapshot()) == {}
    assert len(world.smtp.mails) == mails_before, "an email left"
    for call in world.slack.calls()[calls_before:]:
        if call.method in READ_ONLY_CALLS:
            continue
        allowed = {
            "ephemeral": call.method == "chat.postEphemeral" and call.args.get("user") == case.user,
            "dm": call.method == "chat.postMessage" and call.args.get("channel") == case.user,
            "home": call.method == "views.publish" and call.args.get("user_id") == case.user,
        }
        assert allowed.get(case.where), f"unexpected Slack call {call.method} {call.args}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_with_an_explanation_and_nothing_changes(world: World, case: Case) -> None:
    assert_refused_and_nothing_changed(world, case)


def _registered(bot: SupportBot) -> dict[tuple[str, str], Any]:
    """What the Bolt app listens to, read from its listeners' matchers, with each listener."""
    kinds = {
        "action": "action",
        "view_submission": "view",
        "command": "command",
        "event": "event",
        "shortcut": "shortcut",
        "global_shortcut": "shortcut",
        "message_shortcut": "shortcut",
        "options": "options",
        "block_suggestion": "options",
        "view_closed": "view_closed",
    }
    found: dict[tuple[str, str], Any] = {}
    for listener in bot.bolt._listeners:
        matcher = listener.matchers[0].func
        kind = kinds.get(matcher.__qualname__.split(".")[0], matcher.__qualname__)
        captured = inspect.getclosurevars(matcher).nonlocals
        name = next(str(v) for v in captured.values() if isinstance(v, str))
        found[(kind, name)] = listener.ack_function
    return found


def _verbs_in(path: Path) -> set[str]:
    """Every word a handler compares `verb` with: the verbs a slash command understands."""
    verbs: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "verb":
            for right in node.comparators:
                for const in ast.walk(right):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        verbs.add(const.value)
    return verbs


def test_every_listener_and_verb_has_a_hostile_case(world: World) -> None:
    registered = _registered(world.bot)
    covered = {
        (kind if kind in ("action", "view", "event") else "command", name)
        for kind, name in ((c.covers[0], c.covers[1]) for c in CASES)
    }
    listeners = {key for key in registered if key[0] != "command"} | {
        ("command", name) for kind, name in registered if kind == "command"
    }
    covered_listeners = {key for key in covered if key[0] != "command"} | {
        ("command", c.covers[0]) for c in CASES if c.covers[0].startswith("/")
    }
    assert listeners == covered_listeners, {
        "registered without a hostile case": listeners - covered_listeners,
        "cases for nothing registered": covered_listeners - listeners,
    }
    support_verbs = _verbs_in(ROOT / "handlers" / "commands.py")
    oncall_verbs = _verbs_in(ROOT / "handlers" / "oncall.py") | set(oncall_handlers.VERBS)
    assert support_verbs, "no /support verbs found: has the dispatcher changed shape?"
    for command, verbs in (("/support", support_verbs), ("/oncall", oncall_verbs)):
        tried = {c.covers[1] for c in CASES if c.covers[0] == command and c.user == EVE}
        assert verbs <= tried, f"{command} verbs no outsider tries: {verbs - tried}"
    manager_verbs = set(oncall_handlers.MANAGER_VERBS)
    tried_by_staff = {c.covers[1] for c in CASES if c.covers[0] == "/oncall" and c.says == NOT_MANAGER}
    assert manager_verbs <= tried_by_staff, manager_verbs - tried_by_staff


def test_every_listener_declares_who_may_use_it(world: World) -> None:
    """Interactive listeners are wrapped by `guarded`, with the permission the product rules give."""
    manager_only = {("action", a) for a in MANAGER_ACTIONS} | {("view", v) for v in MANAGER_VIEWS}
    for (kind, name), listener in _registered(world.bot).items():
        if kind == "event":
            continue  # events check staff themselves (they have no one to answer)
        expected = "manager" if (kind, name) in manager_only else "staff"
        assert getattr(listener, "permission", None) == expected, (kind, name)


def test_staff_asking_for_stats_get_only_their_own(world: World) -> None:
    files_before = len(world.slack.files)
    answer = world.command(BOB, "stats month")
    assert answer.status == 200 and "Your stats" in answer.json()["text"]
    shown = json.dumps(answer.json()["blocks"])
    assert f"<@{ADA}>" not in shown and f"<@{CY}>" not in shown, "a colleague's figures"
    time.sleep(1)
    assert len(world.slack.files) == files_before, "charts or files are for managers"


# -- requests that are not what Slack sends ------------------------------------------------------


MALFORMED: dict[str, tuple[bytes, str]] = {
    "payload that is not JSON": (b"payload=%7Bnot+json", "application/x-www-form-urlencoded"),
    "payload that is a list": (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
    "payload without type": (b"payload=%7B%7D", "application/x-www-form-urlencoded"),
    "block actions without actions or user": (
        urllib.parse.urlencode({"payload": json.dumps({"type": "block_actions"})}).encode(),
        "application/x-www-form-urlencoded",
    ),
    "block actions with a string user": (
        urllib.parse.urlencode(
            {
                "payload": json.dumps(
                    {
                        "type": "block_actions",
                        "user": "U0ADA",
                        "actions": [{"action_id": "ticket_claim", "value": "1"}],
                        "channel": "C0SUPPORT",
                    }
                )
            }
        ).encode(),
        "application/x-www-form-urlencoded",
    ),
    "claim with actions as a string": (
        urllib.parse.urlencode(
            {"payload": json.dumps({"type": "block_actions", "user": {"id": ADA}, "actions": "ticket_claim"})}
        ).encode(),
        "application/x-www-form-urlencoded",
    ),
    "view submission without view": (
        urllib.parse.urlencode(
            {"payload": json.dumps({"type": "view_submission", "user": {"id": ADA}})}
        ).encode(),
        "application/x-www-form-urlencoded",
    ),
    "reply submission without state": (
        urllib.parse.urlencode(
            {
                "payload": json.dumps(
                    {
                        "type": "view_submission",
                        "user": {"id": ADA},
                        "view": {"callback_id": "reply_submit", "private_metadata": "{}"},
                    }
                )
            }
        ).encode(),
        "application/x-www-form-urlencoded",
    ),
    "command without user": (
        urllib.parse.urlencode({"command": "/support", "text": "claim 2"}).encode(),
        "application/x-www-form-urlencoded",
    ),
    "empty body": (b"", "application/x-www-form-urlencoded"),
    "JSON that is not an object": (b"[1, 2, 3]", "application/json"),
    "event without event": (json.dumps({"type": "event_callback"}).encode(), "application/json"),
    "body that is not UTF-8": (b"payload=\xff\xfe", "application/x-www-form-urlencoded"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_requests_never_fail_and_change_nothing(world: World, name: str) -> None:
    body, content_type = MALFORMED[name]
    before = world.snapshot()
    mails = len(world.smtp.mails)
    answer, _ = post(world, body, content_type=content_type)
    assert answer.status < 500, (answer.status, answer.body)
    time.sleep(0.3)
    assert _changes(before, world.snapshot()) == {}
    assert len(world.smtp.mails) == mails


# -- signatures --------------------------------------------------------------------------------------


def _claim_body(world: World, user: str, ticket: str) -> bytes:
    payload = {
        "type": "block_actions",
        "trigger_id": world.slack.issue_trigger(user),
        "container": {"type": "message", "message_ts": world.ticket_ts(3), "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "support"},
        "message": {"ts": world.ticket_ts(3), "text": "", "blocks": []},
        "response_url": world.slack.issue_response_url(user, CHANNEL),
        "actions": [{"action_id": "ticket_claim", "block_id": "b", "type": "button", "value": ticket}],
    }
    return _interaction_body(user, payload)


def _events(world: World, action: str, ticket_id: int) -> int:
    with world.factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.action == action, Event.ticket_id == ticket_id)
            )
            or 0
        )


def test_forged_missing_malformed_and_stale_signatures_are_refused(world: World) -> None:
    body = _claim_body(world, BOB, str(world.ids["ticket3"]))
    now = int(time.time())
    refused = {
        "signed with another secret": dict(secret="not-the-signing-secret"),
        "no signature": dict(headers={"X-Slack-Signature": None}),  # type: ignore[dict-item]
        "no timestamp": dict(headers={"X-Slack-Request-Timestamp": None}),  # type: ignore[dict-item]
        "a signature that is not hex": dict(signature="v0=" + "z" * 64),
        "a signature of another version": dict(signature="v1=" + sign(SIGNING_SECRET, str(now), body)[3:]),
        "an empty signature": dict(signature=""),
        "a timestamp that is not a number": dict(
            timestamp=None, headers={"X-Slack-Request-Timestamp": "soon"}
        ),
        "six minutes old": dict(timestamp=now - 360),
        "six minutes in the future": dict(timestamp=now + 360),
        "an hour old": dict(timestamp=now - 3600),
    }
    before = world.snapshot()
    for why, signing in refused.items():
        headers = signing.pop("headers", None)
        answer, _ = post(world, body, headers=headers, **signing)  # type: ignore[arg-type]
        assert answer.status == 401, (why, answer.status, answer.body)
    # A timestamp with a signature for another body (the body was changed on the way).
    ts = str(now)
    answer = send_raw(
        world.url,
        body.replace(b"U0BOB", b"U0MAY"),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(SIGNING_SECRET, ts, body),
        },
    )
    assert answer.status == 401
    time.sleep(0.5)
    assert _changes(before, world.snapshot()) == {}
    assert not world.slack.ephemerals(BOB) or all("#3" not in e["text"] for e in world.slack.ephemerals(BOB))


def test_a_replayed_claim_is_refused_and_acts_once(world: World) -> None:
    ticket = world.ids["ticket3"]
    body = _claim_body(world, BOB, str(ticket))
    first, sent = post(world, body)
    assert first.status == 200
    wait_until(lambda: _events(world, "claimed", ticket) == 1, what="Bob's claim")
    world.settle()
    before = world.snapshot()
    calls = len(world.slack.calls())
    # The very same request (body, timestamp, signature), within Slack's five minutes.
    for _ in range(3):
        assert send_raw(world.url, body, sent).status == 401
    time.sleep(0.5)
    assert _changes(before, world.snapshot()) == {}
    assert world.slack.calls()[calls:] == []
    assert _events(world, "claimed", ticket) == 1


def test_a_replayed_reply_sends_one_email(world: World) -> None:
    ticket = world.ids["ticket4"]
    mails = len(world.smtp.mails)
    answer, sent, body = submit(world, ADA, reply_view(ticket, 4))
    assert answer.status == 200 and not answer.body.strip(b"{} "), answer.body
    world.smtp.wait_for(mails + 1)
    world.settle()
    before = world.snapshot()
    assert send_raw(world.url, body, sent).status == 401
    # A replay from another moment (a new timestamp) needs the signing secret: refused too.
    assert (
        send_raw(world.url, body, {**sent, "X-Slack-Request-Timestamp": str(int(time.time()) + 1)}).status
        == 401
    )
    time.sleep(2)
    world.settle()
    assert _changes(before, world.snapshot()) == {}
    assert len(world.smtp.mails) == mails + 1, "the replay sent the email again"
    assert _events(world, "replied", ticket) == 1


def test_a_request_one_replica_served_is_refused_by_another(world: World) -> None:
    """Replicas share the memory of signatures: replaying to a different replica fails too."""
    other = SupportBot(load_settings(env=world.env), clock=world.clock)
    other.start()
    try:
        body = _claim_body(world, ADA, "999999")
        first, sent = post(world, body)
        assert first.status == 200
        assert send_raw(f"{other.url}/slack/events", body, sent).status == 401
        # And the other way round, racing: of two replicas given one request at once, one serves it.
        body = _claim_body(world, ADA, "999998")
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(SIGNING_SECRET, ts, body),
        }
        statuses: list[int] = []
        start = threading.Barrier(2)

        def send(url: str) -> None:
            start.wait()
            statuses.append(send_raw(url, body, headers).status)

        threads = [threading.Thread(target=send, args=(u,)) for u in (world.url, f"{other.url}/slack/events")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(statuses) == [200, 401]
    finally:
        other.stop()


def test_slack_retries_carry_a_new_signature_and_are_served(world: World) -> None:
    """Slack retries an Events API delivery (X-Slack-Retry-Num) as a new request: a new timestamp,
    so a new signature. The replay guard lets it through; the event handler decides what a
    repeat means, as before."""
    inner = {"type": "app_home_opened", "user": ADA, "channel": "D0ADA", "tab": "home"}
    first, sent, body = event(world, inner)
    assert first.status == 200
    retry_ts = str(int(sent["X-Slack-Request-Timestamp"]) + 1)
    retried = {
        **sent,
        "X-Slack-Request-Timestamp": retry_ts,
        "X-Slack-Signature": sign(SIGNING_SECRET, retry_ts, body),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    assert send_raw(world.url, body, retried).status == 200
    assert send_raw(world.url, body, retried).status == 401, "the retry itself replayed"


# -- the memory of signatures, on the database the suite runs on -------------------------------------


def test_a_signature_is_accepted_once_even_when_raced_and_old_ones_are_purged(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    results: list[bool] = []
    start = threading.Barrier(8)

    def remember() -> None:
        start.wait()
        with transaction(factory) as session:
            results.append(first_time_seen(session, "v0=" + "a" * 64, now))

    threads = [threading.Thread(target=remember) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 7 + [True]

    with transaction(factory) as session:
        assert first_time_seen(session, "v0=" + "b" * 64, now - timedelta(minutes=11))
        assert first_time_seen(session, "v0=" + "c" * 64, now - timedelta(minutes=9))
    with transaction(factory) as session:
        assert purge_seen_signatures(session, now) == 1
    with factory() as session:
        kept = set(session.scalars(select(SeenSignature.signature)))
    assert kept == {"v0=" + "a" * 64, "v0=" + "c" * 64}
    engine.dispose()
