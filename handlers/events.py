"""Events: staff messages in a ticket's thread become internal notes; App Home; membership."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import lists
from bot.tickets import queries
from bot.tickets.workflow import add_note
from handlers import stats
from handlers.access import Access
from handlers.common import read_domain, run_domain, without_nul

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

# Edits, joins, bot posts and the like are not notes someone wrote.
_IGNORED_SUBTYPES = {
    "bot_message",
    "message_changed",
    "message_deleted",
    "channel_join",
    "channel_leave",
    "thread_broadcast_deleted",
}


def register(app: App, services: Services, access: Access) -> None:
    def thread_message(event: dict[str, Any]) -> None:
        thread_ts = event.get("thread_ts")
        user = event.get("user")
        if (
            not thread_ts
            or thread_ts == event.get("ts")
            or not user
            or event.get("bot_id")
            or event.get("subtype") in _IGNORED_SUBTYPES
            or event.get("channel") != services.settings.support_channel
        ):
            return
        if not access.is_staff(user):
            return

        def store(session: Any) -> None:
            ticket_id = queries.ticket_for_thread(session, event["channel"], thread_ts)
            if ticket_id is not None:
                # Never emailed: replies to customers go only through the Reply button.
                # A stray NUL is dropped, not refused: the message already stands in the
                # thread, and the note should keep what people see there.
                add_note(
                    session,
                    ticket_id,
                    user,
                    without_nul(event.get("text") or ""),
                    services.clock.now(),
                    slack_ts=event["ts"],
                )

        run_domain(services, store)

    def home_opened(event: dict[str, Any], client: Any) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = event["user"]
        if not access.is_staff(user):
            client.views_publish(user_id=user, view=lists.not_staff_home())
            return

        def read(session: Any) -> Any:
            return (
                queries.my_tickets(session, user),
                queries.open_queue(session, limit=15),
                queries.open_count(session),
            )

        mine, queue, waiting = read_domain(services, read)
        view = lists.home_view(
            user=user,
            mine=mine,
            queue=queue,
            waiting=waiting,
            now=services.clock.now(),
            stats=stats.home_blocks(services, access, user),
        )
        client.views_publish(user_id=user, view=view)

    def membership_changed(event: dict[str, Any]) -> None:
        if event.get("channel") == services.settings.support_channel:
            access.forget()

    app.event("message")(thread_message)
    app.event("app_home_opened")(home_opened)
    app.event("member_joined_channel")(membership_changed)
    app.event("member_left_channel")(membership_changed)
