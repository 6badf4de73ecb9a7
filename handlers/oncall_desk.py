"""`/oncall`'s verbs and buttons, one method each: read the words, run one rota use case in
one transaction with the notices it owes queued in it, and render the answer.

Who may act is checked here (a manager's verbs, time off on someone's behalf); the rules
and who is told what are in `rota/`, the words in `bot/slack/oncall*`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.slack import oncall as ui
from bot.slack import oncall_notices as say
from bot.slack.oncall_plan import fairness_blocks, plan_preview_blocks
from bot.slack.render import Block, escape
from bot.slack.staff import fetch_staff
from handlers.access import Access
from handlers.common import run_domain
from handlers.kept_fresh import KeptFresh
from handlers.oncall_words import BadInput, NotAllowed, Reply, day_arg, number_arg, user_arg, whole_arg
from rota import comp_adjustments, feeds, ledger, publishing, store, swap_flow, swaps, time_off
from rota.errors import NoPersonalFeed
from rota.standing import fairness_report, period_balance
from rota.store import DutyView
from rota.swap_flow import SwapPolicy, SwapResult

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

ROSTER_FRESH_SECONDS = 5 * 60.0
FIRST_SYNC_SECONDS = 0.25
DEFAULT_FAIRNESS_DAYS = 90


class RosterSync:
    """Keeps the roster following Slack's staff list, asking Slack at most every five minutes,
    never while someone waits for an answer: the sync (one `users.info` per person) runs in
    the background, and `/oncall` reads the roster as the database holds it. The leader also
    syncs it at start-up and hourly (`ScheduledJobs.sync_roster`)."""

    def __init__(self, services: Services, every: float = ROSTER_FRESH_SECONDS) -> None:
        self.services = services
        self._synced = KeptFresh(self._sync, every, "the roster")
        self._first_wait = FIRST_SYNC_SECONDS

    def ensure_fresh(self) -> None:
        # The first command of a process gives a quick Slack a moment to bring the roster up
        # to date; a slow one finishes in the background, and nobody after waits for it.
        wait, self._first_wait = self._first_wait, 0.0
        self._synced.get(first_wait=wait)

    def _sync(self) -> bool:
        staff = fetch_staff(self.services.client, self.services.settings)
        run_domain(self.services, lambda s: store.sync_roster(s, staff, self.services.clock.now()))
        return True


class OncallDesk:
    def __init__(self, services: Services, access: Access) -> None:
        self.services = services
        self.access = access
        self.settings = services.settings
        self.calendar = services.settings.calendar()
        self.roster = RosterSync(services)

    @property
    def team_tz(self) -> ZoneInfo:
        return self.settings.timezone

    @property
    def policy(self) -> SwapPolicy:
        return SwapPolicy(
            approval=self.settings.swap_approval,
            managers=frozenset(self.settings.managers),
            expires_in=timedelta(hours=self.settings.swap_expiry_hours),
        )

    def now(self) -> datetime:
        return self.services.clock.now()

    def tz_of(self, session: Session, user: str) -> ZoneInfo:
        found = store.member(session, user)
        return found.tz if found is not None else self.team_tz

    def require_manager(self, user: str) -> None:
        if not self.access.is_manager(user):
            raise NotAllowed(self.access.refusal("manager"))

    # -- views ----------------------------------------------------------------------------

    def overview(self, user: str) -> Reply:
        now, weeks = self.now(), self.settings.rota_plan_weeks
        until = now + timedelta(weeks=weeks)
        manager = self.access.is_manager(user)

        def read(session: Session) -> ui.Overview:
            coming = tuple(store.duties_between(session, now, until))
            balance = None
            if manager and coming:
                balance = period_balance(
                    session, coming, self.calendar, self.settings.rota_weights, now, until
                )
            return ui.Overview(now, store.duty_at(session, now), coming, weeks, balance)

        view = run_domain(self.services, read)
        return Reply("On call", ui.overview_blocks(view, self.team_tz))

    def me(self, user: str) -> Reply:
        now = self.now()

        def read(session: Session) -> list[Block]:
            return ui.me_blocks(
                store.duties_of(session, user, since=now),
                store.time_off_list(session, user_id=user, since=now),
                swaps.open_requests(session, user=user),
                user=user,
                tz=self.team_tz,
            )

        return Reply("Your on-call duties", run_domain(self.services, read))

    def my_duties(self, user: str) -> tuple[list[DutyView], ZoneInfo]:
        """The duties `user` could offer, and their time zone for the modal's labels."""
        now = self.now()

        def mine(session: Session) -> tuple[list[DutyView], ZoneInfo]:
            return store.duties_of(session, user, since=now), self.tz_of(session, user)

        return run_domain(self.services, mine)

    # -- time off -------------------------------------------------------------------------

    def away(self, user: str, args: list[str]) -> Reply:
        if not args or args == ["cancel"]:
            return self.me(user)
        whose = user
        if args[0].startswith("<@"):
            whose = user_arg(args[0])
            if whose != user:
                self.require_manager(user)
            args = args[1:]
        if len(args) not in (1, 2):
            raise BadInput("Give the first and last day of your time off (one date for a single day).")
        first, last, now = day_arg(args[0]), day_arg(args[-1]), self.now()

        def add(session: Session) -> list[Block]:
            done = time_off.record_time_off(session, whose, first, last, by=user, now=now)
            say.queue_notices(session, done.notices, self.team_tz, now=now)
            off, clashes = done.added.time_off, done.added.clashes
            if whose == user:
                return ui.time_off_added_blocks(off, clashes, self.team_tz)
            return ui.time_off_added_blocks(off, clashes, self.team_tz, for_user=whose)

        return Reply("Time off recorded", run_domain(self.services, add))

    def cancel_time_off(self, user: str, time_off_id: int) -> str:
        now, manager = self.now(), self.access.is_manager(user)

        def cancel(session: Session) -> str:
            done = time_off.cancel_time_off(session, time_off_id, by=user, manager=manager, now=now)
            say.queue_notices(session, done.notices, self.team_tz, now=now)
            off = done.time_off
            if off.user_id != user:
                return f"Cancelled <@{off.user_id}>'s time off {ui.time_off_text(off)}."
            return f"Cancelled your time off {ui.time_off_text(off)}."

        return run_domain(self.services, cancel)

    # -- swaps and covers --------------------------------------------------------------------

    def _swap_step(self, step: Callable[[Session, datetime], SwapResult]) -> str:
        """Run one swap use case; queue its notices; return what the person who acted reads."""
        now = self.now()

        def run(session: Session) -> str:
            result = step(session, now)
            say.queue_notices(session, result.notices, self.team_tz, now=now)
            return say.swap_reply(result, self.team_tz)

        return run_domain(self.services, run)

    def swap(self, user: str, args: list[str], client: Any, trigger_id: str) -> Reply:
        if not args:
            duties, tz = self.my_duties(user)
            if not duties:
                return Reply("You hold no upcoming duties to offer.")
            view = ui.swap_modal(duties, tz)
            return Reply(then=lambda: client.views_open(trigger_id=trigger_id, view=view))
        if len(args) < 2:
            raise BadInput("Give the night of the duty and the colleague, like `2026-12-21 @bob`.")
        night, to_user, note = day_arg(args[0]), user_arg(args[1]), " ".join(args[2:])
        return Reply(
            self._swap_step(
                lambda s, now: swap_flow.offer_night(
                    s,
                    night,
                    user=user,
                    to_user=to_user,
                    note=note,
                    now=now,
                    policy=self.policy,
                    team_tz=self.team_tz,
                )
            )
        )

    def offer(self, user: str, duty_id: int, to_user: str, note: str) -> str:
        """The swap modal's offer; its errors name the box to mark."""
        return self._swap_step(
            lambda s, now: swap_flow.offer(
                s, duty_id, user=user, to_user=to_user, note=note, now=now, policy=self.policy
            )
        )

    def cover(self, user: str, args: list[str]) -> Reply:
        if len(args) > 1:
            raise BadInput("Give at most one date: the night whose duty you take.")
        night = day_arg(args[0]) if args else None
        return Reply(
            self._swap_step(
                lambda s, now: swap_flow.cover(
                    s, night, user=user, now=now, policy=self.policy, team_tz=self.team_tz
                )
            )
        )

    def answer(self, user: str, swap_id: int, accept: bool) -> str:
        return self._swap_step(
            lambda s, now: swap_flow.answer(s, swap_id, user=user, accept=accept, now=now, policy=self.policy)
        )

    def decide(self, manager: str, swap_id: int, approve: bool) -> str:
        return self._swap_step(
            lambda s, now: swap_flow.decide(
                s, swap_id, manager=manager, approve=approve, now=now, policy=self.policy
            )
        )

    def withdraw(self, user: str, swap_id: int) -> str:
        return self._swap_step(lambda s, now: swap_flow.withdraw(s, swap_id, user=user, now=now))

    # -- planning ----------------------------------------------------------------------------

    def plan(self, args: list[str]) -> Reply:
        if len(args) > 1:
            raise BadInput("Give at most one number of weeks.")
        weeks = whole_arg(args[0], "The number of weeks", 1, 104) if args else self.settings.rota_plan_weeks
        now = self.now()
        until = now + timedelta(weeks=weeks)

        def preview(session: Session) -> list[Block]:
            found = store.preview_plan(
                session, self.calendar, self.settings.plan_config(), now=now, until=until
            )
            return plan_preview_blocks(found, weeks, self.team_tz)

        return Reply("Rota plan (preview)", run_domain(self.services, preview))

    def publish(self, manager: str, until: datetime) -> str:
        now = self.now()

        def publish(session: Session) -> str:
            published = publishing.publish(
                session, self.calendar, self.settings.plan_config(), by=manager, now=now, until=until
            )
            if published is None:
                return "Nothing to publish: the rota already is this plan."
            return say.queue_published(
                session, published, self.settings.support_channel, self.team_tz, now=now
            )

        return run_domain(self.services, publish)

    def fairness(self, args: list[str]) -> Reply:
        if len(args) > 1:
            raise BadInput("Give at most one number of days.")
        days = whole_arg(args[0], "The number of days", 1, 3660) if args else DEFAULT_FAIRNESS_DAYS
        now, kinds = self.now(), self.settings.rota_weights
        report = run_domain(
            self.services, lambda s: fairness_report(s, self.calendar, kinds, now=now, days=days)
        )
        return Reply("Fairness", fairness_blocks(report))

    # -- roster --------------------------------------------------------------------------------

    def roster_verb(self, user: str, args: list[str]) -> Reply:
        if not args:
            found = run_domain(self.services, lambda s: store.members(s, active_only=False))
            return Reply("On-call roster", ui.roster_blocks(found))
        if len(args) != 2 or args[0] not in ("add", "remove"):
            raise BadInput("Use `/oncall roster add @user` or `/oncall roster remove @user`.")
        who, active = user_arg(args[1]), args[0] == "add"
        run_domain(self.services, lambda s: store.set_active(s, who, active, by=user, now=self.now()))
        if active:
            return Reply(f"<@{who}> is on the rota again; the next `/oncall plan` includes them.")
        return Reply(
            f"<@{who}> is off the rota. Their published duties stay until you re-plan with `/oncall plan`."
        )

    def weight(self, user: str, args: list[str]) -> Reply:
        if len(args) != 2:
            raise BadInput("Give the person and their weight, like `@bob 0.5`.")
        who = user_arg(args[0])
        value = number_arg(args[1], float, "a number; a weight is like 0.5")
        found = run_domain(self.services, lambda s: store.set_weight(s, who, value, by=user, now=self.now()))
        return Reply(f"<@{who}> now carries a weight of {found.weight:g}; the next `/oncall plan` uses it.")

    # -- compensation -----------------------------------------------------------------------------

    @property
    def comp_unit(self) -> str:
        return self.settings.compensation().unit

    def comp(self, user: str, args: list[str], client: Any) -> Reply:
        sub = args[0] if args else ""
        if sub in ("all", "adjust", "export"):
            self.require_manager(user)
        if sub == "":
            return self._comp_of(user)
        if sub == "take":
            days = [day_arg(word) for word in args[1:]]
            now = self.now()
            line = run_domain(
                self.services,
                lambda s: ledger.take_days(s, user, days, by=user, now=now, unit=self.comp_unit),
            )
            reply = self._comp_of(user)
            reply.text = f"Recorded: {escape(line.note)}."
            reply.blocks = [ui.section(reply.text), *(reply.blocks or [])]
            return reply
        if sub == "all":

            def read(session: Session) -> list[Block]:
                names = {m.user_id: m.name for m in store.members(session, active_only=False)}
                return ui.comp_all_blocks(ledger.balances(session), names)

            return Reply("Compensation balances", run_domain(self.services, read))
        if sub == "adjust":
            return self._adjust(user, args[1:])
        if sub == "export":
            return self._export(user, client)
        raise BadInput(f"I don't know `comp {escape(sub)}`.")

    def _comp_of(self, user: str) -> Reply:
        def read(session: Session) -> list[Block]:
            mine = {
                unit: amount for (person, unit), amount in ledger.balances(session).items() if person == user
            }
            latest = list(reversed(ledger.lines(session, user_id=user)[-10:]))
            return ui.comp_blocks(mine, latest, self.team_tz, self.comp_unit)

        return Reply("Your compensation", run_domain(self.services, read))

    def _adjust(self, manager: str, args: list[str]) -> Reply:
        if len(args) < 3:
            raise BadInput("Give the person, the amount and the reason, like `@bob -0.5 paid out in May`.")
        who = user_arg(args[0])
        amount = number_arg(args[1], Decimal, "an amount; write it like 1.5 or -0.5")
        reason = " ".join(args[2:])
        now, unit = self.now(), self.comp_unit

        def adjust(session: Session) -> str:
            done = comp_adjustments.adjust_compensation(
                session, who, amount, reason, by=manager, now=now, unit=unit
            )
            say.queue_notices(session, done.notices, self.team_tz, now=now)
            line = done.line
            return f"Adjusted <@{who}>'s compensation by {line.amount:+} {line.unit}: {escape(line.note)}"

        return Reply(run_domain(self.services, adjust))

    def _export(self, manager: str, client: Any) -> Reply:
        now = self.now()

        def export(session: Session) -> str:
            names = {m.user_id: m.name for m in store.members(session, active_only=False)}
            return ledger.ledger_csv(session, names)

        content = run_domain(self.services, export)
        filename = f"oncall-ledger-{now.astimezone(self.team_tz):%Y-%m-%d}.csv"

        def upload() -> None:
            # Files go to a conversation, not a user id: open (or find) the DM first.
            channel = client.conversations_open(users=manager)["channel"]["id"]
            client.files_upload_v2(
                channel=channel,
                content=content,
                filename=filename,
                title="On-call compensation ledger",
                initial_comment="The compensation ledger, every entry with running balances.",
            )

        return Reply(f"The ledger is on its way to your DMs as `{filename}`.", then=upload)

    # -- calendar feeds ----------------------------------------------------------------------------

    def ical(self, user: str, args: list[str]) -> Reply:
        if args not in ([], ["reset"]):
            raise BadInput("Use `/oncall ical` or `/oncall ical reset`.")
        now, base = self.now(), self.settings.base_url

        def read(session: Session) -> list[Block]:
            if args == ["reset"]:
                token = feeds.reset_member_token(session, user, now)
                if token is None:
                    raise NoPersonalFeed(user)
            else:
                token = feeds.member_feed_token(session, user)
            team = feeds.team_feed_token(session, now)
            return ui.ical_blocks(feeds.feed_url(base, token) if token else None, feeds.feed_url(base, team))

        text = "Your new calendar URL (the old one no longer works)" if args else "Calendar feeds"
        return Reply(text, run_domain(self.services, read))
