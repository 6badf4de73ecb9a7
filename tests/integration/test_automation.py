"""Template automation: close rates on a hand-built history, automatic template replies, managers' say."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.config import Settings
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.models import AutoReply, Event, Message, TemplateAutomation, Ticket
from bot.tickets.automation import (
    Automation,
    AutomationError,
    TemplateStats,
    close_rates,
    disable_automation,
    enable_automation,
    matches,
)
from bot.tickets.events import record_event
from bot.tickets.urgency import TicketFacts
from tests.integration.test_triage import (
    DAY,
    MANAGER,
    NIGHT,
    STAFF,
    TRIAGE_SETTINGS,
    auto_messages,
    ingest,
    triage,
)
from tests.support.desk import Desk, add_people, running_desk
from tests.support.harness import CHANNEL, wait_until
from tests.support.mail import customer_mail
from tests.support.settings import make_settings

NOW = NIGHT
_numbers = itertools.count(1000)
_keys = itertools.count(1)


# -- a hand-built history --------------------------------------------------------------------------


@dataclass
class History:
    session: Session

    def ticket(self, created: datetime) -> int:
        ticket = Ticket(
            number=next(_numbers), subject="History", status="open", created_at=created, updated_at=created
        )
        self.session.add(ticket)
        self.session.flush()
        return ticket.id

    def reply(self, ticket_id: int, template: str, at: datetime, *, status: str = "sent") -> None:
        fields = {"author": "U0AGENT", "template_name": template, "delivery_status": status}
        self._message(ticket_id, at, "out", "sent", **fields)

    def customer(self, ticket_id: int, at: datetime, *, auto_reason: str | None = None) -> None:
        self._message(ticket_id, at, "in", "box", auto_reason=auto_reason)

    def _message(self, ticket_id: int, at: datetime, direction: str, mailbox: str, **fields: Any) -> None:
        key = f"{direction}-{next(_keys)}"
        self.session.add(
            Message(
                ticket_id=ticket_id,
                direction=direction,
                mailbox=mailbox,
                dedupe_key=key,
                message_id=key,
                created_at=at,
                references=[],
                headers=[],
                defects=[],
                **fields,
            )
        )

    def resolved(self, ticket_id: int, at: datetime) -> None:
        record_event(self.session, ticket_id=ticket_id, actor="U0AGENT", action="resolved", at=at)

    def closed_case(self, template: str, at: datetime) -> None:
        """A ticket the template closed: resolved the next day, no word from the customer."""
        ticket_id = self.ticket(at - timedelta(hours=1))
        self.customer(ticket_id, at - timedelta(hours=1))
        self.reply(ticket_id, template, at)
        self.resolved(ticket_id, at + timedelta(days=1))


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def test_close_rate_maths_on_a_hand_built_history(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        h = History(session)
        # 1. Resolved the next day, nothing more from the customer: closed.
        t1 = h.ticket(days_ago(10))
        h.reply(t1, "resolved.en", days_ago(10))
        h.resolved(t1, days_ago(9))
        # 2. Resolved, then the customer wrote again within the window (reopened): not closed.
        t2 = h.ticket(days_ago(10))
        h.reply(t2, "resolved.en", days_ago(10))
        h.resolved(t2, days_ago(9))
        h.customer(t2, days_ago(8))
        # 3. Never resolved: not closed.
        t3 = h.ticket(days_ago(10))
        h.reply(t3, "resolved.en", days_ago(10))
        # 4. Still inside the window: outcome unknown, not counted at all.
        t4 = h.ticket(days_ago(3))
        h.reply(t4, "resolved.en", days_ago(3))
        h.resolved(t4, days_ago(2))
        # 5. Resolved, but only after the window had passed: not closed.
        t5 = h.ticket(days_ago(20))
        h.reply(t5, "resolved.en", days_ago(20))
        h.resolved(t5, days_ago(10))
        # 6. An out-of-office answering our reply is not the customer writing again: closed.
        t6 = h.ticket(days_ago(10))
        h.reply(t6, "resolved.en", days_ago(10))
        h.customer(t6, days_ago(9.9), auto_reason="auto-submitted")
        h.resolved(t6, days_ago(9))
        # 7. The template sent twice on one ticket counts once, by its latest reply: closed.
        t7 = h.ticket(days_ago(15))
        h.reply(t7, "resolved.en", days_ago(15))
        h.customer(t7, days_ago(14))
        h.reply(t7, "resolved.en", days_ago(12))
        h.resolved(t7, days_ago(11))
        # A reply that could not be delivered says nothing about its template.
        t8 = h.ticket(days_ago(10))
        h.reply(t8, "more_information.en", days_ago(10), status="failed")
        h.reply(t8, "password_reset.en", days_ago(10))
        h.resolved(t8, days_ago(10) + timedelta(hours=2))
        # A manual reply without a template is not a template's use.
        t9 = h.ticket(days_ago(10))
        h.reply(t9, None, days_ago(10))  # type: ignore[arg-type]
        h.resolved(t9, days_ago(9))

    with session_factory() as session:
        stats = close_rates(session, NOW, days=7)
    assert stats == [
        TemplateStats("resolved.en", uses=6, closed=3, rate=0.5),
        TemplateStats("password_reset.en", uses=1, closed=1, rate=1.0),
    ]
    # A 12-day window: only replies 12 days old or more are known (t5, t7's latest), and
    # t5's resolution 10 days after its reply now falls inside the window.
    with session_factory() as session:
        wide = {s.name: s for s in close_rates(session, NOW, days=12)}
    assert (wide["resolved.en"].uses, wide["resolved.en"].closed) == (2, 2)


# -- switching automation on and off -------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, **TRIAGE_SETTINGS, AUTOMATION_MIN_USES="3", AUTOMATION_MIN_CLOSE_RATE="0.8"
    )


def proven(
    session_factory: sessionmaker[Session], template: str = "password_reset.en", uses: int = 3
) -> None:
    with session_factory.begin() as session:
        h = History(session)
        for n in range(uses):
            h.closed_case(template, days_ago(10 + n))


def automate(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    name: str = "password_reset.en",
    when: str = "after_hours",
    kind: str = "keyword",
    pattern: str = "password",
) -> Automation:
    with session_factory.begin() as session:
        return enable_automation(
            session,
            name=name,
            when=when,
            match_kind=kind,
            pattern=pattern,
            user=MANAGER,
            now=NOW,
            settings=settings,
        )


def test_only_a_proven_template_can_be_automated(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    proven(session_factory, uses=2)
    with pytest.raises(AutomationError, match="2 uses with a close rate of 100%"):
        automate(session_factory, settings)
    proven(session_factory, uses=1)
    with pytest.raises(AutomationError, match="no template called"):
        automate(session_factory, settings, name="no_such_template")
    with pytest.raises(AutomationError, match="Choose when"):
        automate(session_factory, settings, when="weekends")
    automation = automate(session_factory, settings)
    assert automation.describe() == "after hours, for tickets with keyword “password”"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(TemplateAutomation)) == 1
        event = session.scalars(select(Event).where(Event.action == "automation_enabled")).one()
        assert (event.actor, event.data["uses"], event.data["close_rate"]) == (MANAGER, 3, 1.0)


def test_an_automated_template_answers_matching_tickets_instead_of_the_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    proven(session_factory)
    automate(session_factory, settings)
    ticket_id = ingest(
        session_factory, customer_mail(1, sender="ada@example.org", subject="Forgot my password"), NOW
    )
    other = ingest(session_factory, customer_mail(2, sender="bob@example.org", subject="Invoice"), NOW)
    results = {r.ticket_id: r for r in triage(session_factory, settings, NOW)}
    assert results[ticket_id].auto_reply == "password_reset.en"
    assert results[other].auto_reply == "auto_ack.en"

    answered = [m for m in auto_messages(session_factory) if m.ticket_id == ticket_id]
    assert len(answered) == 1  # the template replaces the acknowledgement
    assert answered[0].template_name == "password_reset.en" and "Forgot password?" in answered[0].text
    assert ["Auto-Submitted", "auto-replied"] in answered[0].headers
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        # A real answer: the ticket waits on the customer, and still belongs to nobody.
        assert (ticket.status, ticket.owner) == ("waiting", None)
        auto = session.scalars(select(AutoReply).where(AutoReply.ticket_id == ticket_id)).one()
        assert (auto.kind, auto.template_name, auto.address) == (
            "template",
            "password_reset.en",
            "ada@example.org",
        )


def test_automation_follows_its_hours(session_factory: sessionmaker[Session], settings: Settings) -> None:
    proven(session_factory)
    automate(session_factory, settings, when="after_hours")
    ingest(session_factory, customer_mail(1, subject="password help"), DAY)
    assert triage(session_factory, settings, DAY)[0].auto_reply is None
    automate(session_factory, settings, when="always")
    ingest(session_factory, customer_mail(2, subject="password help"), DAY + timedelta(minutes=1))
    assert triage(session_factory, settings, DAY + timedelta(minutes=1))[0].auto_reply == "password_reset.en"


def test_switched_off_it_stops_at_once(session_factory: sessionmaker[Session], settings: Settings) -> None:
    proven(session_factory)
    automate(session_factory, settings)
    with session_factory.begin() as session:
        disable_automation(session, name="password_reset.en", user=MANAGER, now=NOW)
        with pytest.raises(AutomationError, match="not automated"):
            disable_automation(session, name="password_reset.en", user=MANAGER, now=NOW)
    ingest(session_factory, customer_mail(1, subject="Forgot my password"), NOW)
    assert triage(session_factory, settings, NOW)[0].auto_reply == "auto_ack.en"
    with session_factory() as session:
        assert session.scalars(
            select(Event.action).where(Event.action.like("automation_%")).order_by(Event.id)
        ).all() == [
            "automation_enabled",
            "automation_disabled",
        ]


def test_automation_never_answers_automatic_mail(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    proven(session_factory)
    automate(session_factory, settings)
    headers = {"Auto-Submitted": "auto-replied"}
    ingest(session_factory, customer_mail(1, subject="Re: password", headers=headers), NOW)
    [result] = triage(session_factory, settings, NOW)
    assert result.auto_reply is None and "automatic mail" in result.withheld
    assert auto_messages(session_factory) == []


def test_automation_answers_in_the_customers_language(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    proven(session_factory)
    automate(session_factory, settings, pattern="password")
    body = "Buongiorno, non ho più la password del mio account. Grazie\n"
    ingest(session_factory, customer_mail(1, subject="password dimenticata", body=body), NOW)
    assert triage(session_factory, settings, NOW)[0].auto_reply == "password_reset.it"


def test_tag_automations_match_tags() -> None:
    automation = Automation("password_reset.en", "always", "tag", "account", MANAGER, NOW)
    tagged = TicketFacts(subject="", text="", sender="a@example.org", tags=("account",))
    assert matches(automation, tagged, after_hours=False)
    assert not matches(automation, TicketFacts("", "", "a@example.org"), after_hours=True)


# -- managers in Slack ----------------------------------------------------------------------------------


@pytest.fixture
def desk(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Desk]:
    add_people(slack, {STAFF: "ada", MANAGER: "may"})
    with running_desk(
        slack, imap, database_url, clock=FrozenClock(NOW), MANAGERS=MANAGER, AUTOMATION_MIN_USES="3"
    ) as running:
        yield running


@pytest.mark.timeout(120)
def test_managers_automate_and_stop_templates_from_slack(desk: Desk) -> None:
    proven(desk.bot.factory)  # password_reset.en: 3 of 3
    proven(desk.bot.factory, "resolved.en", uses=1)  # too few uses to automate
    staff, manager = desk.user(STAFF), desk.user(MANAGER)
    assert "Only managers" in staff.command("automation").json()["text"]
    assert "Only managers" in staff.command("automation off password_reset.en").json()["text"]

    answer = manager.command("automation").json()
    shown = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "`password_reset.en` *100%* closed · 3 of 3 tickets" in shown
    assert "`resolved.en` *100%* closed · 1 of 1 tickets" in shown
    buttons = [b["accessory"] for b in answer["blocks"] if "accessory" in b]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("automation_open", "password_reset.en")]

    # Staff can't press the button either.
    message = {
        "ts": "1700000000.000001",
        "blocks": answer["blocks"],
        "is_ephemeral": True,
        "channel": CHANNEL,
    }
    staff.click(message, "automation_open")
    wait_until(lambda: desk.slack.ephemerals(STAFF), what="the refusal")
    assert desk.slack.open_modal(STAFF) is None

    manager.click(message, "automation_open")
    modal = wait_until(lambda: desk.slack.open_modal(MANAGER), what="the automation modal")
    assert modal["callback_id"] == "automation_enable"
    refused = manager.submit(
        modal["id"],
        {"automation_when": "always", "automation_match_kind": "keyword", "automation_pattern": " "},
    ).json()
    assert refused["response_action"] == "errors" and "automation_pattern" in refused["errors"]
    with desk.bot.factory() as session:
        assert (
            session.scalar(select(func.count()).select_from(TemplateAutomation)) == 0
        )  # empty keyword refused
    manager.submit(
        modal["id"],
        {"automation_when": "always", "automation_match_kind": "keyword", "automation_pattern": "password"},
    )
    with desk.bot.factory() as session:
        row = session.get(TemplateAutomation, "password_reset.en")
        assert row is not None and (row.when, row.match_pattern, row.enabled_by) == (
            "always",
            "password",
            MANAGER,
        )

    listed = manager.command("automation").json()
    off = [b["accessory"] for b in listed["blocks"] if "accessory" in b]
    assert [(b["action_id"], b["text"]["text"]) for b in off] == [("automation_off", "Turn off")]
    assert (
        "no longer sent automatically" in manager.command("automation off password_reset.en").json()["text"]
    )
    with desk.bot.factory() as session:
        assert session.get(TemplateAutomation, "password_reset.en") is None
    assert "is not automated" in manager.command("automation off password_reset.en").json()["text"]
