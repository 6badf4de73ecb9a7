"""`/support customer …`: what we hold about a customer (staff), and for managers their data
as a ZIP (right of access) or its erasure behind a typed confirmation (right to erasure).

`/support customer ADDRESS` answers at once from the database. `export` queues the ZIP in
the outbox and answers; the ZIP is built and uploaded after (bot/slack/export_delivery.py).
`erase` reads what would go (a few counts), acknowledges and opens the confirmation modal
with the trigger_id while it is fresh; the submission erases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.privacy.erasure import NothingToErase, erasure_preview, start_erasure
from bot.privacy.export import request_export
from bot.privacy.holdings import NotAnAddress, customer_address, customer_holdings
from bot.slack import privacy as ui
from bot.slack.modals import state_value
from handlers.access import Access, acting_user, guarded
from handlers.common import read_domain, run_domain, view_metadata
from handlers.kept_fresh import KeptFresh

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

# The workspace's URL (for links to ticket posts) changes only if the workspace is renamed.
_TEAM_URL_SECONDS = 3600.0
# Links are a nicety: the answer never waits long for the first read of the URL.
_TEAM_URL_WAIT = 0.3


def _typed_address(typed: str) -> str:
    # Slack may send an address typed in a command as a mailto link: <mailto:a@b.c|a@b.c>.
    return typed.strip("<>").removeprefix("mailto:").split("|")[0]


class CustomerCommand:
    """`/support customer …`, for the dispatcher in handlers/commands.py."""

    def __init__(self, services: Services, access: Access) -> None:
        self.services = services
        self.access = access
        self._team_url = KeptFresh(self._fetch_team_url, _TEAM_URL_SECONDS, "the workspace URL")

    def _fetch_team_url(self) -> str:
        return str(self.services.client.auth_test().get("url") or "")

    def __call__(self, ack: Any, body: dict[str, Any], client: Any, user: str, args: list[str]) -> None:
        verb = args[0].lower() if args else ""
        if verb in ("export", "erase") and len(args) == 2:
            if not self.access.is_manager(user):
                ack(text=self.access.refusal("manager"))
                return
            if verb == "export":
                self.export(ack, user, _typed_address(args[1]))
            else:
                self.erase(ack, body, client, _typed_address(args[1]))
        elif len(args) == 1:
            self.see(ack, user, _typed_address(args[0]))
        else:
            ack(text=ui.CUSTOMER_USAGE)

    def see(self, ack: Any, user: str, typed: str) -> None:
        try:
            held = read_domain(self.services, lambda s: customer_holdings(s, typed))
        except NotAnAddress:
            ack(text=ui.not_an_address(typed))
            return
        ack(
            text=f"What we hold about {held.address}",
            blocks=ui.holdings_blocks(
                held,
                team_url=self._team_url.get(first_wait=_TEAM_URL_WAIT) or None,
                manager=self.access.is_manager(user),
            ),
        )

    def export(self, ack: Any, user: str, typed: str) -> None:
        now = self.services.clock.now()
        try:
            address = run_domain(self.services, lambda s: request_export(s, typed, manager=user, now=now))
        except NotAnAddress:
            ack(text=ui.not_an_address(typed))
            return
        ack(text=ui.export_on_its_way(address))

    def erase(self, ack: Any, body: dict[str, Any], client: Any, typed: str) -> None:
        try:
            address = customer_address(typed)
            # A few counts: well within the trigger_id's three seconds.
            preview = read_domain(self.services, lambda s: erasure_preview(s, address))
        except NotAnAddress:
            ack(text=ui.not_an_address(typed))
            return
        except NothingToErase:
            ack(text=ui.nothing_to_erase(address))
            return
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=ui.erase_modal(address, preview))


def register(app: App, services: Services, access: Access) -> None:
    def erase_submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
        try:
            address = customer_address(str(view_metadata(body).get("address") or ""))
        except NotAnAddress:
            ack(response_action="errors", errors={ui.CONFIRM_BLOCK: ui.NO_ADDRESS_FORM})
            return
        typed = str(state_value(body.get("view") or {}, ui.CONFIRM_BLOCK, ui.CONFIRM_ACTION) or "")
        if typed.strip().lower() != address:
            ack(response_action="errors", errors={ui.CONFIRM_BLOCK: ui.confirmation_mismatch(address)})
            return
        # Confirmed: answer Slack now (its three seconds), erase, then show what was done.
        # A customer with years of tickets takes longer than Slack waits for an answer.
        ack(response_action="update", view=ui.erasing())
        user, now = acting_user(body), services.clock.now()
        try:
            started = run_domain(
                services,
                lambda s: start_erasure(
                    s, address, by=user, now=now, keep_stats=services.settings.privacy.keep_stats
                ),
            )
        except NothingToErase:
            # Erased by someone else since the modal opened: nothing is left, which is the goal.
            client.views_update(view_id=body["view"]["id"], view=ui.already_gone())
            return
        client.views_update(view_id=body["view"]["id"], view=ui.erasure_done(started))

    app.view(ui.ERASE_CALLBACK)(guarded(access, "manager", erase_submitted))
