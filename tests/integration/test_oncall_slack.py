"""`/oncall` end to end: signed slash commands, clicks and modal submissions into the bot's
real endpoint, DMs and channel posts delivered by the outbox to the Slack stand-in, and the
rota read back from the database. Time is a frozen clock, moved by the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import make_engine, make_sessionmaker
from rota import store
from rota.store import DutyView
from tests.support.desk import add_people, desk_env
from tests.support.harness import CHANNEL, running_bot, wait_until
from tests.support.slack_requests import SlackUser

pytestmark = pytest.mark.timeout(180)

ROME = ZoneInfo("Europe/Rome")
ADA, BOB, CY, MAY, EVE = "U0ADA", "U0BOB", "U0CY", "U0MAY", "U0EVE"  # staff ×3, manager, outsider
MAX = "U0MAX"  # a second manager, where a test asks for two
STAFF = {ADA: ("ada", "Europe/Rome"), BOB: ("bob", "Europe/London"), CY: ("cy", "America/New_York")}
# Wednesday 2 December 2026, noon in Rome: mid-week, so the first duty runs to Monday's hand-off.
START = datetime(2026, 12, 2, 12, 0, tzinfo=ROME)


def mention(user: str) -> str:
    """A mention as Slack sends it in an escaped command's text."""
    return f"<@{user}|{STAFF.get(user, ('x', ''))[0]}>"


@dataclass
class Team:
    bot: SupportBot
    slack: SlackStandIn
    clock: FrozenClock
    factory: sessionmaker[Session]

    def user(self, user_id: str) -> SlackUser:
        return SlackUser(self.bot.url, self.slack, user_id)

    def oncall(self, user_id: str, text: str = "") -> dict[str, Any]:
        answer = self.user(user_id).command(text, command="/oncall")
        assert answer.status == 200, answer.body
        return answer.json()

    def dm(self, user_id: str, containing: str, count: int = 1) -> list[dict[str, Any]]:
        """`user_id`'s DMs containing `containing` (waiting for `count`), each with its channel."""

        def found() -> list[dict[str, Any]] | None:
            channel = self.slack.dm_channels.get(user_id)
            hits = [
                {**m, "channel": channel}
                for m in self.slack.dms(user_id)
                if containing in m["text"] or containing in json.dumps(m.get("blocks") or [])
            ]
            return hits if len(hits) >= count else None

        return wait_until(found, what=f"a DM to {user_id} containing {containing!r}")

    def current_dm(self, message: dict[str, Any]) -> dict[str, Any]:
        found = self.slack.find_message(message["channel"], message["ts"])
        assert found is not None
        return found

    def ephemeral(self, user_id: str, containing: str) -> dict[str, Any]:
        return wait_until(
            lambda: next((e for e in self.slack.ephemerals(user_id) if containing in e["text"]), None),
            what=f"an ephemeral for {user_id} containing {containing!r}",
        )

    def duties(self) -> list[DutyView]:
        with self.factory() as session:
            return store.duties_between(session, START - timedelta(days=1), START + timedelta(weeks=60))

    def publish(self, weeks: int = 4) -> list[DutyView]:
        preview = self.oncall(MAY, f"plan {weeks}")
        self.user(MAY).click(ephemeral_message(preview), "oncall_plan_publish")
        self.ephemeral(MAY, "Published")
        return self.duties()


def ephemeral_message(answer: dict[str, Any]) -> dict[str, Any]:
    """A slash command's answer as Slack shows it: an ephemeral message whose buttons can be clicked."""
    return {"ts": "1700000000.000100", "blocks": answer["blocks"], "is_ephemeral": True, "channel": CHANNEL}


def has_buttons(message: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in message.get("blocks") or [])


def night_of(duty: DutyView, tz: ZoneInfo = ROME) -> date:
    """A night inside the duty: the day after it starts, in `tz`."""
    return duty.start.astimezone(tz).date() + timedelta(days=1)


def future_week_of(duties: list[DutyView], user: str) -> DutyView:
    return next(
        d for d in duties if d.user_id == user and d.start > START and d.end - d.start >= timedelta(days=7)
    )


@pytest.fixture
def approval() -> bool:
    return False


@pytest.fixture
def managers() -> tuple[str, ...]:
    return (MAY,)


@pytest.fixture
def team(
    imap: PymapServer, slack: SlackStandIn, database_url: str, approval: bool, managers: tuple[str, ...]
) -> Iterator[Team]:
    for user, (name, tz) in STAFF.items():
        slack.add_user(user, name, name.title() + " Staff", tz=tz, channels=(CHANNEL,))
    # The manager plans and approves but is not on the support channel, so not on the rota.
    add_people(slack, {}, managers={MAY: "may", MAX: "max"}, outsiders={EVE: "eve"})
    clock = FrozenClock(START)
    env = desk_env(
        slack,
        imap,
        database_url,
        MANAGERS=",".join(managers),
        SWAP_APPROVAL="true" if approval else "false",
        SWAP_EXPIRY_HOURS="24",
        PUBLIC_URL="https://bot.example.com",
    )
    engine: Engine = make_engine(database_url)
    try:
        with running_bot(env, clock=clock) as bot:
            yield Team(bot, slack, clock, make_sessionmaker(engine))
    finally:
        engine.dispose()


# -- planning --------------------------------------------------------------------------------


def test_a_manager_previews_then_publishes_and_everyone_is_told(team: Team) -> None:
    assert "No on-call rota is published yet" in json.dumps(team.oncall(ADA)["blocks"])
    preview = team.oncall(MAY, "plan 4")
    shown = json.dumps(preview["blocks"])
    assert "oncall_plan_publish" in shown and "oncall_plan_discard" in shown
    assert "balance score" in shown and all(f"<@{u}>" in shown for u in STAFF)
    assert team.duties() == [], "a preview changes nothing"

    team.user(MAY).click(ephemeral_message(preview), "oncall_plan_publish")
    assert "Published" in team.ephemeral(MAY, "Published")["text"]
    duties = team.duties()
    assert duties[0].start == START and {d.user_id for d in duties} == set(STAFF)
    summary = wait_until(
        lambda: [m for m in team.slack.messages(CHANNEL) if "published the on-call rota" in m["text"]],
        what="the channel summary",
    )
    assert len(summary) == 1 and f"<@{MAY}>" in summary[0]["text"]
    for user in STAFF:
        assert "You hold" in json.dumps(team.dm(user, "published a new on-call rota")[0]["blocks"])

    # Staff see the rota; the manager also sees the balance score.
    overview = json.dumps(team.oncall(BOB)["blocks"])
    assert "On call now:* <@" + str(duties[0].user_id) in overview
    assert f"*Next:* <@{duties[1].user_id}> from <!date^{int(duties[1].start.timestamp())}^" in overview
    assert "Balance score" not in overview
    assert "Balance score" in json.dumps(team.oncall(MAY)["blocks"])

    # Publishing the same plan again changes nothing and tells nobody.
    again = team.oncall(MAY, "plan 4")
    assert "Nothing would change" in json.dumps(again["blocks"])


def test_a_non_manager_cannot_plan_and_nothing_changes(team: Team) -> None:
    assert "Only managers" in team.oncall(ADA, "plan")["text"]
    preview = team.oncall(MAY, "plan 2")
    # A forged click on the manager's Publish button is refused the same way.
    team.user(ADA).click(ephemeral_message(preview), "oncall_plan_publish")
    assert "Only managers" in team.ephemeral(ADA, "Only managers")["text"]
    for verb in ("fairness", "roster", f"weight {mention(BOB)} 0.5", f"comp adjust {mention(BOB)} 1 x"):
        assert "Only managers" in team.oncall(ADA, verb)["text"]
    assert team.duties() == []
    assert "Only support staff" in team.oncall(EVE)["text"]


def test_discarding_a_plan_changes_nothing(team: Team) -> None:
    preview = team.oncall(MAY, "plan 2")
    team.user(MAY).click(ephemeral_message(preview), "oncall_plan_discard")
    team.ephemeral(MAY, "discarded")
    assert team.duties() == []


# -- swaps -----------------------------------------------------------------------------------


def test_a_swap_offered_by_command_and_accepted_moves_the_duty(team: Team) -> None:
    week = future_week_of(team.publish(), ADA)
    answer = team.oncall(ADA, f"swap {night_of(week)} {mention(BOB)} dentist that week")
    assert "You offered your duty" in answer["text"] and f"<@{BOB}>" in answer["text"]

    offer = team.dm(BOB, "asks you to take their on-call duty")[0]
    assert "dentist that week" in json.dumps(offer["blocks"]) and has_buttons(offer)
    team.user(BOB).click(offer, "oncall_swap_accept")
    wait_until(lambda: not has_buttons(team.current_dm(offer)), what="the buttons to go")
    updated = team.current_dm(offer)
    assert "You now hold the on-call duty" in updated["text"]
    assert f"<@{BOB}> now holds your on-call duty" in team.dm(ADA, "now holds your")[0]["text"]

    moved = next(d for d in team.duties() if d.id == week.id)
    assert (moved.user_id, moved.pinned, moved.origin) == (BOB, True, "swap")
    table = json.dumps(team.oncall(CY)["blocks"])
    assert f"<@{BOB}> :pushpin:" in table

    # The old message clicked again (a stale client): the message says why, nothing changes.
    team.user(BOB).click(offer, "oncall_swap_accept")
    wait_until(lambda: "already accepted" in team.current_dm(offer)["text"], what="the stale click answered")
    assert not has_buttons(team.current_dm(offer))
    assert next(d for d in team.duties() if d.id == week.id).user_id == BOB


def test_a_declined_offer_leaves_the_duty_and_tells_the_offerer(team: Team) -> None:
    week = future_week_of(team.publish(), ADA)
    team.oncall(ADA, f"swap {night_of(week)} {mention(CY)}")
    offer = team.dm(CY, "asks you to take")[0]
    team.user(CY).click(offer, "oncall_swap_decline")
    wait_until(lambda: not has_buttons(team.current_dm(offer)), what="the buttons to go")
    assert "You declined" in team.current_dm(offer)["text"]
    assert f"<@{CY}> declined your offer" in team.dm(ADA, "declined")[0]["text"]
    assert next(d for d in team.duties() if d.id == week.id).user_id == ADA
    assert "Open swap requests" not in json.dumps(team.oncall(ADA, "me")["blocks"])


@pytest.mark.parametrize(("approval", "managers"), [(True, (MAY, MAX))])
def test_with_approval_an_accepted_swap_waits_for_a_manager(team: Team) -> None:
    week = future_week_of(team.publish(), ADA)
    team.oncall(ADA, f"swap {night_of(week)} {mention(BOB)}")
    offer = team.dm(BOB, "asks you to take")[0]
    team.user(BOB).click(offer, "oncall_swap_accept")
    wait_until(lambda: "waits for a manager" in team.current_dm(offer)["text"], what="bob's DM updated")
    assert not has_buttons(team.current_dm(offer))
    team.dm(ADA, "waits for a manager")
    assert next(d for d in team.duties() if d.id == week.id).user_id == ADA, "not before approval"
    assert "waiting for a manager" in json.dumps(team.oncall(ADA, "me")["blocks"])

    request = team.dm(MAY, "needs a manager")[0]
    # Only managers decide: a staff member's forged click changes nothing.
    team.user(ADA).click(request, "oncall_swap_approve")
    team.ephemeral(ADA, "Only managers")
    team.user(MAY).click(request, "oncall_swap_approve")
    wait_until(lambda: "Approved" in team.current_dm(request)["text"], what="the request updated")
    assert not has_buttons(team.current_dm(request))
    team.dm(BOB, "You now hold the on-call duty")
    assert f"approved by <@{MAY}>" in team.dm(ADA, "now holds your")[0]["text"]
    # The other manager got the same request: told it is decided, and a late click changes nothing.
    late = team.dm(MAX, "needs a manager")[0]
    assert f"<@{MAY}> approved the swap" in team.dm(MAX, "nothing left to do")[0]["text"]
    assert not [m for m in team.slack.dms(MAY) if "nothing left to do" in m["text"]]
    team.user(MAX).click(late, "oncall_swap_reject")
    wait_until(lambda: "already" in team.current_dm(late)["text"], what="the late click answered")
    assert next(d for d in team.duties() if d.id == week.id).user_id == BOB
    assert next(d for d in team.duties() if d.id == week.id).user_id == BOB


def test_offering_from_my_duties_through_the_modal(team: Team) -> None:
    duties = team.publish()
    mine = [d for d in duties if d.user_id == ADA and d.end > START]
    shown = team.oncall(ADA, "me")
    text = json.dumps(shown["blocks"])
    assert text.count("Offer to a colleague") == len(mine)
    chosen = mine[-1]
    before = set(team.slack.views)
    team.user(ADA).click(ephemeral_message(shown), "oncall_offer", block_id=_block_of(shown, str(chosen.id)))
    view_id = wait_until(lambda: list(set(team.slack.views) - before), what="the swap modal")[0]
    duty_input = team.slack.views[view_id]["blocks"][0]["element"]
    assert duty_input["initial_option"]["value"] == str(chosen.id)
    # Offering to yourself is refused in the modal, next to the field.
    refused = team.user(ADA).submit(view_id, {"colleague": ADA}).json()
    assert refused["response_action"] == "errors" and "yourself" in refused["errors"]["colleague"]
    assert team.user(ADA).submit(view_id, {"colleague": CY, "note": "<!channel> please"}).status == 200
    offer = team.dm(CY, "asks you to take")[0]
    assert "&lt;!channel&gt; please" in json.dumps(offer["blocks"])
    # From a modal there is no channel to answer in: the confirmation is a DM.
    team.dm(ADA, "You offered your duty")


def _block_of(answer: dict[str, Any], value: str) -> str:
    for index, block in enumerate(answer["blocks"]):
        if (block.get("accessory") or {}).get("value") == value:
            return str(block.get("block_id") or f"block{index}")
    raise AssertionError(f"no block with a button valued {value}")


# -- cover -----------------------------------------------------------------------------------


def test_covering_the_duty_under_way_splits_it(team: Team) -> None:
    team.publish()
    team.clock.advance(timedelta(days=1))
    now = team.clock.now()
    with team.factory() as session:
        current = store.duty_at(session, now)
    assert current is not None and current.start < now
    taker = next(u for u in STAFF if u != current.user_id)
    answer = team.oncall(taker, "cover")
    assert "You now hold the on-call duty" in answer["text"] and "from now" in answer["text"]
    assert f"<@{taker}> took over your on-call duty" in team.dm(str(current.user_id), "took over")[0]["text"]
    with team.factory() as session:
        first = store.duty(session, current.id)
        taken = store.duty_at(session, now)
    assert first is not None and first.end == now and first.user_id == current.user_id
    assert taken is not None and (taken.user_id, taken.start, taken.end) == (taker, now, current.end)
    assert f"On call now:* <@{taker}>" in json.dumps(team.oncall(ADA)["blocks"])


# -- time off --------------------------------------------------------------------------------


def test_time_off_lists_the_duties_it_clashes_with(team: Team) -> None:
    week = future_week_of(team.publish(), ADA)
    first = week.start.astimezone(ROME).date()
    answer = team.oncall(ADA, f"away {first} {first + timedelta(days=2)}")
    shown = json.dumps(answer["blocks"])
    assert "time off is recorded" in shown and "Offer to a colleague" in shown
    assert f'"value": "{week.id}"' in shown
    me = team.oncall(ADA, "me")
    assert "Your time off" in json.dumps(me["blocks"])
    cancel = next(
        b for b in me["blocks"] if (b.get("accessory") or {}).get("action_id") == "oncall_time_off_cancel"
    )
    team.user(ADA).click(ephemeral_message(me), "oncall_time_off_cancel", block_id=cancel.get("block_id"))
    team.ephemeral(ADA, "Cancelled your time off")
    with team.factory() as session:
        assert store.time_off_list(session, user_id=ADA, since=START) == []


def test_a_manager_records_time_off_for_someone_who_is_told(team: Team) -> None:
    week = future_week_of(team.publish(), BOB)
    day = week.start.astimezone(ZoneInfo("Europe/London")).date() + timedelta(days=1)
    answer = team.oncall(MAY, f"away {mention(BOB)} {day}")
    assert "time off is recorded" in json.dumps(answer["blocks"])
    told = team.dm(BOB, "recorded time off for you")[0]
    assert "Offer to a colleague" in json.dumps(told["blocks"])
    assert "Only managers" in team.oncall(ADA, f"away {mention(BOB)} {day}")["text"]


def test_bad_input_is_explained_with_usage(team: Team) -> None:
    bad_date = team.oncall(ADA, "away 2026-13-01")["text"]
    assert "not a date" in bad_date and "Usage: `/oncall away" in bad_date
    reversed_range = team.oncall(ADA, "away 2026-12-20 2026-12-10")["text"]
    assert "before it starts" in reversed_range and "Usage:" in reversed_range
    unknown_verb = team.oncall(ADA, "frobnicate")["text"]
    assert "frobnicate" in unknown_verb and "/oncall me" in unknown_verb
    plain_name = team.oncall(ADA, "swap 2026-12-21 @bob")["text"]
    assert "can't tell who" in plain_name and "Usage: `/oncall swap" in plain_name
    assert "No published duty" in team.oncall(ADA, f"swap 2026-12-21 {mention(BOB)}")["text"]
    assert "not on the rota" in team.oncall(MAY, f"away {mention(EVE)} 2026-12-21")["text"]
    assert "whole number" in team.oncall(MAY, "plan lots")["text"]
    assert "/oncall swap" in team.oncall(ADA, "help")["text"]
    assert "Pause notifications" in team.oncall(ADA, "help")["text"]
    assert "<script>" not in team.oncall(ADA, "away <script>")["text"]


# -- compensation, roster, fairness, calendar --------------------------------------------------


def test_comp_shows_a_managers_adjustment_then_days_taken_and_exports(team: Team) -> None:
    adjusted = team.oncall(MAY, f"comp adjust {mention(ADA)} 1.5 covered the May outage")
    assert "Adjusted" in adjusted["text"]
    assert "covered the May outage" in team.dm(ADA, "adjusted your on-call compensation")[0]["text"]
    mine = json.dumps(team.oncall(ADA, "comp")["blocks"])
    assert "+1.50 days" in mine and "covered the May outage" in mine
    taken = team.oncall(ADA, "comp take 2026-12-27")
    assert "2026-12-27" in taken["text"] and "+0.50 days" in json.dumps(taken["blocks"])
    everyone = json.dumps(team.oncall(MAY, "comp all")["blocks"])
    assert f"<@{ADA}>" in everyone and "+0.50 days" in everyone

    assert "on its way" in team.oncall(MAY, "comp export")["text"]
    upload = wait_until(lambda: team.slack.files, what="the CSV upload")[0]
    assert upload["channel"] == team.slack.dm_channels[MAY]
    content = upload["content"].decode()
    assert content.startswith("date_utc,user_id") and "covered the May outage" in content


def test_roster_weight_fairness_and_calendar_feeds(team: Team) -> None:
    team.publish()
    roster = json.dumps(team.oncall(MAY, "roster")["blocks"])
    assert all(f"<@{u}>" in roster for u in STAFF) and "America/New_York" in roster
    assert "weight of 0.5" in team.oncall(MAY, f"weight {mention(CY)} 0.5")["text"]
    assert "off the rota" in team.oncall(MAY, f"roster remove {mention(BOB)}")["text"]
    roster = json.dumps(team.oncall(MAY, "roster")["blocks"])
    assert "weight 0.5" in roster and "_off the rota_" in roster
    fairness = json.dumps(team.oncall(MAY, "fairness 30")["blocks"])
    assert "last 30 days" in fairness and "Balance score" in fairness and f"<@{CY}> (weight 0.5)" in fairness

    feeds = json.dumps(team.oncall(ADA, "ical")["blocks"])
    assert feeds.count("https://bot.example.com/ical/") == 2
    reset = json.dumps(team.oncall(ADA, "ical reset")["blocks"])
    personal = [u for u in reset.split("<")[1:] if u.startswith("https://bot.example.com/ical/")]
    assert personal and personal[0].split(">")[0] not in feeds
