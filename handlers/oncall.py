"""`/oncall`: the rota, my duties, time off, swaps and covers, planning, fairness, the roster,
compensation and calendar feeds; and the buttons and modal that go with them.

Commands answer ephemerally (the `ack` payload). Every DM or channel post that reports a
change is an outbox row written in the change's own transaction. A button clicked in a
DM is rewritten in place with the outcome, so nobody clicks it twice; a click that comes
anyway gets the domain's explanation, ephemerally. The verbs are `OncallDesk`'s methods;
this module routes to them and says what went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.slack import oncall as ui
from bot.slack.modals import state_value
from bot.slack.oncall_errors import rota_error_text, swap_block_to_blame
from bot.slack.refusals import refusal_text
from bot.slack.render import escape
from handlers import oncall_import
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import action_value, id_of, unstorable
from handlers.oncall_desk import OncallDesk
from handlers.oncall_phone import phone_verb, test_verb
from handlers.oncall_words import NotAllowed, Reply, usage_for, words_of
from rota.errors import RequestClosed, RotaError

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

log = logging.getLogger(__name__)

MANAGER_VERBS = {"plan", "fairness", "roster", "weight", "import"}
VERBS = {"", "help", "me", "away", "swap", "cover", "comp", "ical", "phone", "test", *MANAGER_VERBS}


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
    calendars = oncall_import.register(app, services, access)

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
            ack(text=f"{rota_error_text(exc)}\n{usage_for(verb, args)}")
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
            except SlackApiError as exc:
                log.exception("/oncall %s: the follow-up Slack call failed", verb)
                tell(
                    client, body, refusal_text(exc) or "Sorry, Slack refused that just now; please try again."
                )

    def dispatch(verb: str, user: str, args: list[str], body: dict[str, Any], client: Any) -> Reply:
        if verb == "":
            return desk.overview(user)
        if verb == "me":
            return desk.me(user)
        if verb == "away":
            if args[:1] == ["sync"]:
                return calendars.away_sync(user, args[1:])
            return desk.away(user, args)
        if verb == "import":
            return calendars.open_import(client, str(body.get("trigger_id") or ""))
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
        if verb in ("phone", "test"):
            return phone_verb(services, user, args) if verb == "phone" else test_verb(services, user)
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
            except RequestClosed as exc:
                # A late click (another manager decided first, the offer expired): the
                # message's buttons are stale, so the answer replaces them.
                if in_place:
                    replace_clicked(body, client, context, rota_error_text(exc))
                else:
                    tell(client, body, rota_error_text(exc))
                return
            except RotaError as exc:
                tell(client, body, rota_error_text(exc))
                return
            if in_place:
                replace_clicked(body, client, context, said)
            else:
                tell(client, body, said)

        return listener

    def offer_clicked(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        user, duty_id = acting_user(body), _id_of(body)
        duties, tz = desk.my_duties(user)
        if duty_id not in {d.id for d in duties}:
            tell(client, body, "That duty is no longer yours to offer (or it is over).")
            return
        client.views_open(trigger_id=body["trigger_id"], view=ui.swap_modal(duties, tz, selected=duty_id))

    def swap_submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
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
        try:
            said = desk.offer(user, int(duty), to_user, note)
        except RotaError as exc:
            ack(response_action="errors", errors={swap_block_to_blame(exc): rota_error_text(exc)[:150]})
            return
        ack()
        tell(client, body, said)

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
            tell(client, body, rota_error_text(exc))
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
