"""`/oncall`: the rota, my duties, time off, swaps and covers, planning, fairness, the roster,
compensation and calendar feeds; and the buttons and modal that go with them.

Commands answer ephemerally (the `ack` payload). Every DM or channel post that reports a
change is an outbox row written in the change's own transaction. A button clicked in a
DM is rewritten in place with the outcome, so nobody clicks it twice; a click that comes
anyway gets the domain's explanation, ephemerally.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from bot.slack import oncall as ui
from bot.slack.render import Block, escape
from bot.slack.staff import fetch_staff
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import action_value, id_of, run_domain, unstorable
from rota import feeds, ledger, store, swaps
from rota.fairness import balance_score
from rota.load import loads_by_person
from rota.store import DutyView, RotaError
from rota.swaps import SwapOutcome, SwapView

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

log = logging.getLogger(__name__)

# Slack's escaped mention in command text: <@U123|name>, or <@U123> from some clients.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_MENTION_WORD = re.compile(r"^<@([UW][A-Z0-9]+)>$")
ROSTER_FRESH_SECONDS = 5 * 60.0
MANAGER_VERBS = {"plan", "fairness", "roster", "weight"}
VERBS = {"", "help", "me", "away", "swap", "cover", "comp", "ical", *MANAGER_VERBS}
DEFAULT_FAIRNESS_DAYS = 90


class BadInput(RotaError):
    """Words we could not read; the answer adds the verb's usage."""


class NotAllowed(Exception):
    """A manager's verb asked for by someone else; the message is the standard refusal."""


@dataclass
class Reply:
    text: str = ""
    blocks: list[Block] | None = None
    # Slack calls that must wait until the command is acknowledged (a modal, an upload).
    then: Callable[[], None] | None = None


class RosterSync:
    """Keeps the roster following Slack's staff list, asking Slack at most every five minutes."""

    def __init__(self, services: Services, every: float = ROSTER_FRESH_SECONDS) -> None:
        self.services = services
        self.every = every
        self._synced_at: float | None = None
        self._lock = threading.Lock()

    def ensure_fresh(self) -> None:
        # One caller syncs; the others wait for it rather than ask Slack again.
        with self._lock:
            if self._synced_at is not None and time.monotonic() - self._synced_at < self.every:
                return
            try:
                staff = fetch_staff(self.services.client, self.services.settings)
            except SlackApiError as exc:
                # A stale roster beats refusing the command; the next one tries again.
                log.warning("cannot read the staff list from Slack (%s); roster not synced", exc)
                return
            run_domain(self.services, lambda s: store.sync_roster(s, staff, self.services.clock.now()))
            self._synced_at = time.monotonic()


# -- reading words ----------------------------------------------------------------------


def words_of(text: str) -> list[str]:
    return _MENTION.sub(lambda m: f"<@{m.group(1)}>", text or "").split()


def user_arg(word: str) -> str:
    found = _MENTION_WORD.match(word)
    if found is None:
        raise BadInput(
            f"I can't tell who `{escape(word)}` is: pick the person from the list Slack offers as you "
            "type @, so the command carries a mention."
        )
    return found.group(1)


def day_arg(word: str) -> date:
    # Only the ISO form: 03/04 is March to some and April to others.
    try:
        if len(word) == 10:
            return date.fromisoformat(word)
    except ValueError:
        pass
    raise BadInput(f"`{escape(word)}` is not a date I can read: write it as 2026-12-21.")


def whole_arg(word: str, what: str, low: int, high: int) -> int:
    if not word.isdigit() or not low <= int(word) <= high:
        raise BadInput(f"{what} is a whole number from {low} to {high}, not `{escape(word)}`.")
    return int(word)


def usage_for(verb: str, args: Sequence[str]) -> str:
    key = verb
    if verb == "away" and args and args[0].startswith("<@"):
        key = "away_for"
    elif verb == "comp" and args[:1] and args[0] in ("all", "adjust", "export"):
        key = "comp_manage"
    return "Usage: " + ui.USAGE_LINES.get(key, ui.USAGE_LINES[""])


# -- the desk: one method per verb, each one transaction ------------------------------------


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
                weights = {m.user_id: m.weight for m in store.members(session)}
                balance = self._balance(coming, weights, now, until)
            return ui.Overview(now, store.duty_at(session, now), coming, weeks, balance)

        view = run_domain(self.services, read)
        return Reply("On call", ui.overview_blocks(view, self.team_tz))

    def _loads(
        self, duties: Sequence[DutyView], weights: dict[str, float], start: datetime, end: datetime
    ) -> dict[str, float]:
        loads = loads_by_person(
            [d.as_duty() for d in duties],
            self.calendar,
            self.settings.rota_weights,
            people=weights,
            start=start,
            end=end,
        )
        # People who left the rota still appear in old duties; the score is about the roster.
        return {person: load for person, load in loads.items() if person in weights}

    def _balance(
        self, duties: Sequence[DutyView], weights: dict[str, float], start: datetime, end: datetime
    ) -> float:
        return balance_score(self._loads(duties, weights, start, end), weights)

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
        first = day_arg(args[0])
        last = day_arg(args[-1])
        now = self.now()

        def add(session: Session) -> list[Block]:
            added = store.add_time_off(session, whose, first, last, by=user, now=now)
            if whose == user:
                return ui.time_off_added_blocks(added.time_off, added.clashes, self.team_tz)
            text, blocks = ui.time_off_by_manager(added.time_off, added.clashes, user, self.team_tz)
            ui.queue_notice(session, whose, text, blocks, now=now)
            return ui.time_off_added_blocks(added.time_off, added.clashes, self.team_tz, for_user=whose)

        return Reply("Time off recorded", run_domain(self.services, add))

    def cancel_time_off(self, user: str, time_off_id: int) -> str:
        now = self.now()

        def cancel(session: Session) -> str:
            off = store.cancel_time_off(
                session, time_off_id, by=user, manager=self.access.is_manager(user), now=now
            )
            if off.user_id != user:
                ui.queue_notice(
                    session,
                    off.user_id,
                    f"<@{user}> cancelled your time off {ui.time_off_text(off)}.",
                    now=now,
                )
                return f"Cancelled <@{off.user_id}>'s time off {ui.time_off_text(off)}."
            return f"Cancelled your time off {ui.time_off_text(off)}."

        return run_domain(self.services, cancel)

    # -- swaps and covers --------------------------------------------------------------------

    def swap(self, user: str, args: list[str], client: Any, trigger_id: str) -> Reply:
        if not args:
            now = self.now()

            def mine(session: Session) -> tuple[list[DutyView], ZoneInfo]:
                return store.duties_of(session, user, since=now), self.tz_of(session, user)

            duties, tz = run_domain(self.services, mine)
            if not duties:
                return Reply("You hold no upcoming duties to offer.")
            view = ui.swap_modal(duties, tz)
            return Reply(then=lambda: client.views_open(trigger_id=trigger_id, view=view))
        if len(args) < 2:
            raise BadInput("Give the night of the duty and the colleague, like `2026-12-21 @bob`.")
        day, to_user, note = day_arg(args[0]), user_arg(args[1]), " ".join(args[2:])
        now = self.now()

        def offer(session: Session) -> SwapView:
            duty = store.duty_on_night(session, day, self.tz_of(session, user))
            if duty is None:
                raise RotaError(f"No published duty covers the night of {day}.")
            return self.offer(session, duty.id, user, to_user, note, now)

        swap = run_domain(self.services, offer)
        return Reply(self.offered_text(swap))

    def offer(
        self, session: Session, duty_id: int, user: str, to_user: str, note: str, now: datetime
    ) -> SwapView:
        swap = swaps.offer_swap(
            session,
            duty_id,
            from_user=user,
            to_user=to_user,
            note=note,
            now=now,
            expires_in=timedelta(hours=self.settings.swap_expiry_hours),
        )
        text, blocks = ui.swap_offer_dm(swap, self.team_tz)
        ui.queue_notice(session, to_user, text, blocks, now=now)
        return swap

    def offered_text(self, swap: SwapView) -> str:
        expiry = f"; the offer expires {ui.when(swap.expires_at, self.team_tz)}" if swap.expires_at else ""
        return (
            f"You offered your duty {ui.duty_text(swap.duty, self.team_tz)} to <@{swap.to_user}>. "
            f"They have a DM with Accept and Decline{expiry}."
        )

    def cover(self, user: str, args: list[str]) -> Reply:
        if len(args) > 1:
            raise BadInput("Give at most one date: the night whose duty you take.")
        day = day_arg(args[0]) if args else None
        now = self.now()
        approval = self.settings.swap_approval

        def take(session: Session) -> str:
            if day is None:
                duty = store.duty_at(session, now)
                if duty is None:
                    raise RotaError("No duty is under way right now; give the night, like `2026-12-21`.")
            else:
                duty = store.duty_on_night(session, day, self.tz_of(session, user))
                if duty is None:
                    raise RotaError(f"No published duty covers the night of {day}.")
            outcome = swaps.cover_duty(session, duty.id, user=user, now=now, approval=approval)
            return self._notify(session, outcome, actor=user, now=now)

        return Reply(run_domain(self.services, take))

    def answer(self, user: str, swap_id: int, accept: bool) -> str:
        now = self.now()

        def answer(session: Session) -> str:
            outcome = swaps.answer_swap(
                session, swap_id, user=user, accept=accept, now=now, approval=self.settings.swap_approval
            )
            return self._notify(session, outcome, actor=user, now=now)

        return run_domain(self.services, answer)

    def decide(self, manager: str, swap_id: int, approve: bool) -> str:
        now = self.now()

        def decide(session: Session) -> str:
            outcome = swaps.decide_swap(session, swap_id, manager=manager, approve=approve, now=now)
            # Every manager got the request; the others can stand down, as paged people do
            # when someone acknowledges (their DM keeps its buttons; a late click is told).
            duty = ui.duty_text(outcome.applied or outcome.swap.duty, self.team_tz)
            verdict = "approved" if approve else "rejected"
            for other in sorted(self.settings.managers - {manager}):
                ui.queue_notice(
                    session,
                    other,
                    f"<@{manager}> {verdict} the {outcome.swap.kind} of the on-call duty {duty}; "
                    "nothing left to do.",
                    now=now,
                )
            return self._notify(session, outcome, actor=manager, now=now)

        return run_domain(self.services, decide)

    def withdraw(self, user: str, swap_id: int) -> str:
        now = self.now()

        def withdraw(session: Session) -> str:
            swap = swaps.cancel_swap(session, swap_id, user=user, now=now)
            duty = ui.duty_text(swap.duty, self.team_tz)
            other = swap.to_user if user != swap.to_user else swap.from_user
            if other and swap.kind == "swap":
                ui.queue_notice(
                    session, other, f"<@{user}> withdrew the swap of the on-call duty {duty}.", now=now
                )
            return f"Withdrawn: the request for {duty}."

        return run_domain(self.services, withdraw)

    def _notify(self, session: Session, outcome: SwapOutcome, *, actor: str, now: datetime) -> str:
        """Queue the DMs an outcome calls for; return what to tell the person who acted."""
        swap, tz = outcome.swap, self.team_tz
        duty = ui.duty_text(outcome.applied or swap.duty, tz)
        giver, taker = swap.from_user, swap.to_user
        by_manager = actor not in (giver, taker)
        if swap.status == "awaiting_approval":
            text, blocks = ui.approval_dm(swap, tz)
            for manager in sorted(self.settings.managers):
                ui.queue_notice(session, manager, text, blocks, now=now)
            if swap.kind == "swap" and giver:
                ui.queue_notice(
                    session,
                    giver,
                    f"<@{taker}> accepted your offer of the on-call duty {duty}; it waits for a manager.",
                    now=now,
                )
                return f"You accepted <@{giver}>'s duty {duty}; it waits for a manager's approval."
            return f"You asked to cover {duty}; it waits for a manager's approval."
        if swap.status == "declined":
            if giver:
                ui.queue_notice(
                    session, giver, f"<@{taker}> declined your offer of the on-call duty {duty}.", now=now
                )
            return f"You declined <@{giver}>'s duty {duty}."
        if swap.status == "rejected":
            for person in {giver, taker} - {None}:
                ui.queue_notice(
                    session,
                    str(person),
                    f"<@{actor}> rejected the {swap.kind} of the on-call duty {duty}: "
                    f"it stays with {ui.holder(giver)}.",
                    now=now,
                )
            return f"Rejected: {duty} stays with {ui.holder(giver)}."
        # Applied: the duty changed hands.
        since = " from now" if outcome.under_way else ""
        approved = f" (approved by <@{actor}>)" if by_manager else ""
        if giver and giver != actor:
            verb = "took over" if swap.kind == "cover" else "now holds"
            ui.queue_notice(
                session, giver, f"<@{taker}> {verb} your on-call duty {duty}{since}{approved}.", now=now
            )
        if by_manager:
            ui.queue_notice(
                session, taker, f"You now hold the on-call duty {duty}{since}{approved}.", now=now
            )
            return f"Approved: <@{taker}> holds {duty}{since} (was {ui.holder(giver)})."
        return f"You now hold the on-call duty {duty}{since}."

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
            return ui.plan_preview_blocks(found, weeks, self.team_tz)

        return Reply("Rota plan (preview)", run_domain(self.services, preview))

    def publish(self, manager: str, until: datetime) -> str:
        now = self.now()

        def publish(session: Session) -> str:
            # Planned again now: the planner is deterministic, so this is the preview
            # unless someone changed the rota in between.
            preview = store.preview_plan(
                session, self.calendar, self.settings.plan_config(), now=now, until=until
            )
            if not preview.changes:
                return "Nothing to publish: the rota already is this plan."
            published = store.publish_plan(session, preview, by=manager, now=now)
            changes = published.changes
            text, blocks = ui.published_summary(changes, until, preview.balance, manager, self.team_tz)
            ui.queue_notice(session, self.settings.support_channel, text, blocks, now=now)
            people = sorted({p for c in changes for p in (c.before, c.after) if p is not None})
            for person in people:
                text, blocks = ui.changes_for_person(person, changes, manager, self.team_tz)
                ui.queue_notice(session, person, text, blocks, now=now)
            return (
                f"Published: {len(changes)} duties changed. The channel has the summary and "
                f"{len(people)} people have a DM with their changes."
            )

        return run_domain(self.services, publish)

    def fairness(self, args: list[str]) -> Reply:
        if len(args) > 1:
            raise BadInput("Give at most one number of days.")
        days = whole_arg(args[0], "The number of days", 1, 3660) if args else DEFAULT_FAIRNESS_DAYS
        now = self.now()
        since = now - timedelta(days=days)

        def read(session: Session) -> list[Block]:
            weights = {m.user_id: m.weight for m in store.members(session)}
            end = max(store.rota_end(session) or now, now)
            past_duties = store.duties_between(session, since, now)
            future_duties = store.duties_between(session, now, end) if end > now else []
            past = self._loads(past_duties, weights, since, now)
            planned = self._loads(future_duties, weights, now, end)
            total = {p: past[p] + planned[p] for p in weights}
            rows = [ui.FairnessRow(p, w, past[p] / w, planned[p] / w) for p, w in sorted(weights.items())]
            return ui.fairness_blocks(
                rows,
                days,
                balance_score(past, weights),
                balance_score(planned, weights),
                balance_score(total, weights),
            )

        return Reply("Fairness", run_domain(self.services, read))

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
        try:
            value = float(args[1])
        except ValueError:
            raise BadInput(f"`{escape(args[1])}` is not a number; a weight is like 0.5.") from None
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
        try:
            amount = Decimal(args[1])
        except InvalidOperation:
            raise BadInput(f"`{escape(args[1])}` is not an amount; write it like 1.5 or -0.5.") from None
        reason = " ".join(args[2:])
        now, unit = self.now(), self.comp_unit

        def adjust(session: Session) -> str:
            line = ledger.adjust(session, who, amount, reason, by=manager, now=now, unit=unit)
            said = f"{line.amount:+} {line.unit}"
            ui.queue_notice(
                session,
                who,
                f"<@{manager}> adjusted your on-call compensation by {said}: {escape(line.note)}",
                now=now,
            )
            return f"Adjusted <@{who}>'s compensation by {said}: {escape(line.note)}"

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
                    raise RotaError("You are not on the rota, so you have no personal feed to reset.")
            else:
                token = feeds.member_feed_token(session, user)
            team = feeds.team_feed_token(session, now)
            return ui.ical_blocks(feeds.feed_url(base, token) if token else None, feeds.feed_url(base, team))

        text = "Your new calendar URL (the old one no longer works)" if args else "Calendar feeds"
        return Reply(text, run_domain(self.services, read))


# -- Slack listeners ---------------------------------------------------------------------------


def _id_of(body: dict[str, Any]) -> int | None:
    return id_of(action_value(body))


def replace_clicked(body: dict[str, Any], client: Any, context: Any, text: str) -> None:
    """Rewrite the clicked message with the outcome and no buttons; ephemerals through response_url."""
    container = body.get("container") or {}
    try:
        if container.get("is_ephemeral"):
            respond = getattr(context, "respond", None)
            if respond is not None:
                respond(text=text, blocks=ui.outcome_blocks(text), replace_original=True)
            return
        if container.get("channel_id") and container.get("message_ts"):
            client.chat_update(
                channel=container["channel_id"],
                ts=container["message_ts"],
                text=text,
                blocks=ui.outcome_blocks(text),
            )
    except SlackApiError:
        # The outcome stands; only the old buttons stay visible. A second click gets the domain's answer.
        log.exception("could not update the clicked message")


def register(app: App, services: Services, access: Access) -> None:
    desk = OncallDesk(services, access)

    def oncall(ack: Any, body: dict[str, Any], client: Any) -> None:
        user = acting_user(body)
        if problem := unstorable(body.get("text") or ""):
            ack(text=problem)
            return
        words = words_of(body.get("text") or "")
        verb, args = (words[0].lower(), words[1:]) if words else ("", [])
        if verb == "help":
            ack(text=ui.ONCALL_USAGE)
            return
        if verb not in VERBS:
            ack(text=f"I don't know `{escape(verb)}`.\n\n{ui.ONCALL_USAGE}")
            return
        if verb in MANAGER_VERBS and not access.is_manager(user):
            ack(text=access.refusal("manager"))
            return
        try:
            desk.roster.ensure_fresh()
            reply = dispatch(verb, user, args, body, client)
        except NotAllowed as exc:
            ack(text=str(exc))
            return
        except RotaError as exc:
            ack(text=f"{exc}\n{usage_for(verb, args)}")
            return
        except Exception:
            log.exception("/oncall %s failed", verb)
            ack(text="Sorry, that went wrong on our side; it is logged. Try again in a moment.")
            return
        if reply.text or reply.blocks:
            ack(text=reply.text, blocks=reply.blocks)
        else:
            ack()
        if reply.then is not None:
            try:
                reply.then()
            except SlackApiError:
                log.exception("/oncall %s: the follow-up Slack call failed", verb)
                tell(client, body, "Sorry, Slack refused that just now; please try again.")

    def dispatch(verb: str, user: str, args: list[str], body: dict[str, Any], client: Any) -> Reply:
        if verb == "":
            return desk.overview(user)
        if verb == "me":
            return desk.me(user)
        if verb == "away":
            return desk.away(user, args)
        if verb == "swap":
            return desk.swap(user, args, client, str(body.get("trigger_id") or ""))
        if verb == "cover":
            return desk.cover(user, args)
        if verb == "plan":
            return desk.plan(args)
        if verb == "fairness":
            return desk.fairness(args)
        if verb == "roster":
            return desk.roster_verb(user, args)
        if verb == "weight":
            return desk.weight(user, args)
        if verb == "comp":
            return desk.comp(user, args, client)
        return desk.ical(user, args)

    def clicked(act: Callable[[str, int], str], *, in_place: bool) -> Callable[..., None]:
        """A button whose value is an id: run `act`, then say the outcome where it was clicked."""

        def listener(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
            ack()
            target = _id_of(body)
            if target is None:
                tell(client, body, "That button carries nothing I can read; it may be from an old version.")
                return
            try:
                said = act(acting_user(body), target)
            except swaps.RequestClosed as exc:
                # A late click (another manager decided first, the offer expired): the
                # message's buttons are stale, so the answer replaces them.
                if in_place:
                    replace_clicked(body, client, context, str(exc))
                else:
                    tell(client, body, str(exc))
                return
            except RotaError as exc:
                tell(client, body, str(exc))
                return
            if in_place:
                replace_clicked(body, client, context, said)
            else:
                tell(client, body, said)

        return listener

    def offer_clicked(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        user, duty_id, now = acting_user(body), _id_of(body), services.clock.now()

        def mine(session: Session) -> tuple[list[DutyView], ZoneInfo]:
            return store.duties_of(session, user, since=now), desk.tz_of(session, user)

        duties, tz = run_domain(services, mine)
        if duty_id not in {d.id for d in duties}:
            tell(client, body, "That duty is no longer yours to offer (or it is over).")
            return
        client.views_open(trigger_id=body["trigger_id"], view=ui.swap_modal(duties, tz, selected=duty_id))

    def swap_submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
        from bot.slack.modals import state_value

        view, user = body["view"], acting_user(body)
        duty = state_value(view, ui.SWAP_DUTY_BLOCK, "duty")
        to_user = state_value(view, ui.SWAP_TO_BLOCK, "user")
        note = state_value(view, ui.SWAP_NOTE_BLOCK) or ""
        if id_of(duty) is None:
            ack(response_action="errors", errors={ui.SWAP_DUTY_BLOCK: "Pick one of your duties."})
            return
        if not to_user:
            ack(response_action="errors", errors={ui.SWAP_TO_BLOCK: "Pick a colleague."})
            return
        now = services.clock.now()
        try:
            swap = run_domain(services, lambda s: desk.offer(s, int(duty), user, to_user, note, now))
        except RotaError as exc:
            field = ui.SWAP_TO_BLOCK if "<@" in str(exc) or "yourself" in str(exc) else ui.SWAP_DUTY_BLOCK
            ack(response_action="errors", errors={field: str(exc)[:150]})
            return
        ack()
        tell(client, body, desk.offered_text(swap))

    def publish_clicked(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
        ack()
        try:
            until = datetime.fromisoformat(action_value(body))
        except ValueError:
            until = None
        # The button carries the preview's end; one without a zone or beyond the longest
        # plan `/oncall plan` makes did not come from us.
        longest = services.clock.now() + timedelta(weeks=104, days=1)
        if until is None or until.tzinfo is None or until > longest:
            tell(client, body, "That button carries no plan; run `/oncall plan` again.")
            return
        try:
            said = desk.publish(acting_user(body), until)
        except RotaError as exc:
            tell(client, body, str(exc))
            return
        replace_clicked(body, client, context, said)

    def discard_clicked(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
        ack()
        replace_clicked(body, client, context, "Plan discarded; the rota is unchanged.")

    app.command("/oncall")(guarded(access, "staff", oncall))
    app.action(ui.ACTION_OFFER)(guarded(access, "staff", offer_clicked))
    app.view(ui.SWAP_CALLBACK)(guarded(access, "staff", swap_submitted))
    app.action(ui.ACTION_CANCEL_TIME_OFF)(
        guarded(access, "staff", clicked(desk.cancel_time_off, in_place=False))
    )
    app.action(ui.ACTION_ACCEPT)(
        guarded(access, "staff", clicked(lambda u, i: desk.answer(u, i, True), in_place=True))
    )
    app.action(ui.ACTION_DECLINE)(
        guarded(access, "staff", clicked(lambda u, i: desk.answer(u, i, False), in_place=True))
    )
    app.action(ui.ACTION_WITHDRAW)(guarded(access, "staff", clicked(desk.withdraw, in_place=False)))
    app.action(ui.ACTION_APPROVE)(
        guarded(access, "manager", clicked(lambda u, i: desk.decide(u, i, True), in_place=True))
    )
    app.action(ui.ACTION_REJECT)(
        guarded(access, "manager", clicked(lambda u, i: desk.decide(u, i, False), in_place=True))
    )
    app.action(ui.ACTION_PUBLISH)(guarded(access, "manager", publish_clicked))
    app.action(ui.ACTION_DISCARD)(guarded(access, "manager", discard_clicked))
