"""`/oncall import` (managers) and `/oncall away sync`: calendars from outside.

The import modal is acknowledged at once; reading the calendar (a URL, or the uploaded
file fetched with the bot token from Slack) and looking addresses up in Slack happen
after, and the preview reaches the manager as a DM through the outbox, with its buttons:
Publish with history, Publish without, Cancel. Publish applies in one transaction and
tells the team as publishing a plan does.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError

from bot.ical_fetch import MAX_BYTES, FetchFailed, fetch_calendar, mask_url, normalise_url
from bot.outbox.queue import enqueue_post
from bot.slack import oncall_import as ui
from bot.slack import oncall_notices as say
from bot.slack.calendar_people import directory_for, roster_names
from bot.slack.modals import state_value
from bot.slack.oncall import outcome_blocks
from bot.slack.oncall_errors import rota_error_text
from bot.slack.render import escape
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import action_value, id_of, read_domain, run_domain
from handlers.oncall_words import BadInput, Reply
from rota import ical_import, time_off_feeds
from rota.errors import RotaError
from rota.ical_match import emails_of, match_events
from rota.ical_read import CalendarUnreadable, read_calendar

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

log = logging.getLogger(__name__)


class CalendarDesk:
    def __init__(self, services: Services, access: Access) -> None:
        self.services = services
        self.access = access
        self.settings = services.settings
        self.calendar = services.settings.calendar()

    def open_import(self, client: Any, trigger_id: str) -> Reply:
        return Reply(then=lambda: client.views_open(trigger_id=trigger_id, view=ui.import_modal()))

    def away_sync(self, user: str, args: list[str]) -> Reply:
        now = self.services.clock.now()
        if not args:
            return Reply(
                ui.feed_status(run_domain(self.services, lambda s: time_off_feeds.personal_feed(s, user)))
            )
        if args == ["off"]:
            stopped = run_domain(self.services, lambda s: time_off_feeds.stop_personal_feed(s, user, now=now))
            if not stopped:
                return Reply("No calendar of yours was followed.")
            return Reply(
                "Your calendar is no longer followed. Time off it brought in stays;"
                " cancel it in `/oncall me`."
            )
        if len(args) != 1:
            raise BadInput("Use `/oncall away sync URL` or `/oncall away sync off`.")
        try:
            url = normalise_url(args[0])
        except FetchFailed as exc:
            raise BadInput(f"{exc}.") from None
        label = mask_url(url)
        key = self.settings.calendar_feeds.url_key
        run_domain(
            self.services, lambda s: time_off_feeds.set_personal_feed(s, user, url, label, now=now, key=key)
        )
        return Reply(
            f"Your time off now follows {escape(label)}: read within a few minutes, then hourly. "
            "Absences added, moved or removed there change here too."
        )

    # -- the import ------------------------------------------------------------------------

    def read_and_preview(self, manager: str, url: str | None, file: dict[str, Any] | None) -> None:
        """Runs after the modal closed: read, match, stage, and DM the preview (or the problem)."""
        tz, now = self.settings.timezone, self.services.clock.now()
        try:
            if url:
                source = mask_url(url)
                fetched = fetch_calendar(url, allow_private=self.settings.calendar_feeds.allow_private_hosts)
                data = fetched.body or b""
            else:
                assert file is not None
                source = str(file.get("name") or "the uploaded file")
                data = self._slack_file(str(file.get("url_private") or ""))
            events = read_calendar(
                data, start=now - ical_import.MAX_PAST, end=now + ical_import.MAX_AHEAD, tz=tz
            )
        except (FetchFailed, CalendarUnreadable) as exc:
            self._dm(manager, f"I could not import that calendar: {escape(str(exc))}.")
            return
        names = read_domain(self.services, roster_names)
        matched = match_events(events, directory_for(self.services.client, names, emails_of(events)))

        def stage(session: Any) -> None:
            import_id = ical_import.stage_import(session, matched, source=source, by=manager, now=now)
            preview = ical_import.preview_import(
                session, import_id, self.calendar, self.settings.rota_unit, now=now
            )
            enqueue_post(
                session,
                manager,
                "Rota import (preview)",
                now=now,
                blocks=ui.import_preview_blocks(preview, tz),
            )

        run_domain(self.services, stage)

    def _slack_file(self, url: str) -> bytes:
        # The bot token goes only to Slack's own file host, never to an address in a payload.
        parts, api = urlsplit(url), urlsplit(self.settings.slack_api_url)
        host = parts.hostname or ""
        on_slack = parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))
        # The configured API host (the Slack stand-in in tests and the sandbox) as it is configured.
        on_api_host = (parts.scheme, host) == (api.scheme, api.hostname or "")
        if not (on_slack or on_api_host):
            raise FetchFailed("the file is not on Slack")
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.settings.slack_bot_token}"}
        )
        # urllib would carry the Authorization header along a redirect to any host.
        opener = urllib.request.build_opener(_NoRedirects())
        try:
            with opener.open(request, timeout=15) as response:
                body: bytes = response.read(MAX_BYTES + 1)
        except OSError as exc:
            raise FetchFailed(f"Slack did not give the file ({type(exc).__name__})") from None
        if len(body) > MAX_BYTES:
            raise FetchFailed("the file is larger than 5 MB")
        return body

    def _dm(self, user: str, text: str) -> None:
        now = self.services.clock.now()
        run_domain(self.services, lambda s: enqueue_post(s, user, text, now=now))

    def publish(self, manager: str, import_id: int, with_history: bool) -> str:
        now, tz = self.services.clock.now(), self.settings.timezone

        def apply(session: Any) -> str:
            published = ical_import.publish_import(
                session,
                import_id,
                self.calendar,
                self.settings.rota_unit,
                self.settings.rota_weights,
                with_history=with_history,
                by=manager,
                now=now,
            )
            return say.queue_published(session, published, self.settings.support_channel, tz, now=now)

        return run_domain(self.services, apply)

    def cancel(self, manager: str, import_id: int) -> str:
        now = self.services.clock.now()
        run_domain(self.services, lambda s: ical_import.cancel_import(s, import_id, by=manager, now=now))
        return "Import cancelled; the rota is unchanged."


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


def _replace_preview(body: dict[str, Any], client: Any, text: str) -> None:
    """The preview DM rewritten with the outcome and no buttons, so nobody clicks twice."""
    container = body.get("container") or {}
    if not (container.get("channel_id") and container.get("message_ts")):
        tell(client, body, text)
        return
    try:
        client.chat_update(
            channel=container["channel_id"],
            ts=container["message_ts"],
            text=text,
            blocks=outcome_blocks(text),
        )
    except SlackApiError:
        log.exception("could not update the import preview")
        tell(client, body, text)


def register(app: App, services: Services, access: Access) -> CalendarDesk:
    desk = CalendarDesk(services, access)

    def submitted(ack: Any, body: dict[str, Any]) -> None:
        view, manager = body["view"], acting_user(body)
        url = state_value(view, ui.IMPORT_URL_BLOCK, "url")
        files = (((view.get("state") or {}).get("values") or {}).get(ui.IMPORT_FILE_BLOCK) or {}).get(
            "file"
        ) or {}
        file = (files.get("files") or [None])[0]
        if not url and not file:
            ack(response_action="errors", errors={ui.IMPORT_URL_BLOCK: "Give an address or a file."})
            return
        if url:
            try:
                url = normalise_url(url)
            except FetchFailed as exc:
                ack(response_action="errors", errors={ui.IMPORT_URL_BLOCK: str(exc)[:150]})
                return
        ack()

        def work() -> None:
            try:
                desk.read_and_preview(manager, url, file)
            except Exception:
                log.exception("reading a rota import failed")
                desk._dm(manager, "Sorry, reading that calendar went wrong on our side; it is logged.")

        # Reading can take seconds: Slack wants the modal's answer within three.
        threading.Thread(target=work, name="rota-import", daemon=True).start()

    def decided(kind: str) -> Any:
        def listener(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
            ack()
            import_id = id_of(action_value(body))
            if import_id is None:
                tell(client, body, "That button carries nothing I can read.")
                return
            try:
                if kind == "cancel":
                    said = desk.cancel(acting_user(body), import_id)
                else:
                    said = desk.publish(acting_user(body), import_id, with_history=kind == "history")
            except ical_import.ImportDecided as exc:
                tell(client, body, f"That import is already {escape(exc.outcome)}.")
                return
            except ical_import.ImportNotFound:
                tell(client, body, "That import is not on record; run `/oncall import` again.")
                return
            except RotaError as exc:
                tell(client, body, rota_error_text(exc))
                return
            _replace_preview(body, client, said)

        return listener

    app.view(ui.IMPORT_CALLBACK)(guarded(access, "manager", submitted))
    app.action(ui.ACTION_IMPORT_PUBLISH)(guarded(access, "manager", decided("history")))
    app.action(ui.ACTION_IMPORT_FUTURE_ONLY)(guarded(access, "manager", decided("future")))
    app.action(ui.ACTION_IMPORT_CANCEL)(guarded(access, "manager", decided("cancel")))
    return desk
