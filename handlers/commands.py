"""`/support`: queues, timelines, customer history, claim/resolve by number, templates.

Every answer is ephemeral (the `ack` payload). Empty input and `help` show usage;
unknown input shows usage with what was not understood.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.health import status as health_status
from bot.slack import lists, modals
from bot.slack.errors import ticket_error_text
from bot.slack.render import escape, truncate
from bot.slack.status import status_blocks
from bot.tickets import queries, search, template_store
from bot.tickets import templates as reply_templates
from bot.tickets.status import TicketStatus
from bot.tickets.workflow import (
    TicketError,
    claim_ticket,
    resolve_ticket,
    set_status,
    ticket_by_number,
    unclaim_ticket,
)
from handlers import automation, privacy, rules, spam, stats
from handlers.access import Access, acting_user, guarded
from handlers.common import id_of, read_domain, run_domain, unstorable

if TYPE_CHECKING:
    from slack_bolt import App
    from sqlalchemy.orm import Session

    from bot.services import Services


def _number(args: list[str]) -> int:
    # id_of, not isdigit(): "²" is a digit to Python and no number to int().
    number = id_of(args[0].lstrip("#")) if len(args) == 1 else None
    if number is None:
        raise TicketError("Give one ticket number, like `123`.")
    return number


def register(app: App, services: Services, access: Access) -> None:
    customer = privacy.CustomerCommand(services, access)

    def by_number(args: list[str], change: Callable[[Session, int], Any]) -> Any:
        number = _number(args)
        return run_domain(services, lambda s: change(s, ticket_by_number(s, number).id))

    def support(ack: Any, body: dict[str, Any], client: Any) -> None:
        user = acting_user(body)
        if problem := unstorable(body.get("text") or ""):
            ack(text=problem)
            return
        words = (body.get("text") or "").split()
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        now = services.clock.now()
        try:
            if verb == "help":
                ack(text=lists.SUPPORT_USAGE)
            elif verb == "open":
                lines = read_domain(services, queries.open_queue)
                ack(
                    text="Unclaimed tickets",
                    blocks=lists.ticket_lines(
                        "Unclaimed tickets, oldest first",
                        lines,
                        now,
                        empty=":sparkles: Every ticket has an owner.",
                    ),
                )
            elif verb == "mine":
                lines = read_domain(services, lambda s: queries.my_tickets(s, user))
                ack(
                    text="Your tickets",
                    blocks=lists.ticket_lines(
                        "Your open tickets", lines, now, empty="Nothing on your plate."
                    ),
                )
            elif verb == "ticket":
                number = _number(args)
                timeline = read_domain(services, lambda s: queries.timeline(s, number))
                ack(text=f"Timeline of #{number}", blocks=lists.timeline_blocks(timeline))
            elif verb == "customer":
                customer(ack, body, client, user, args)
            elif verb == "search":
                query_text = (body.get("text") or "").strip()[len(words[0]) :]
                tz = services.settings.timezone
                try:
                    found = read_domain(
                        services,
                        lambda s: search.search_tickets(s, search.parse_query(query_text, user=user, tz=tz)),
                    )
                except search.SearchError as exc:
                    # The explanation quotes what was typed.
                    raise TicketError(escape(truncate(str(exc), 500))) from None
                ack(
                    text="Search results",
                    blocks=lists.search_results(
                        query_text,
                        found.lines,
                        found.more,
                        now,
                        bodies_since=found.bodies_since,
                    ),
                )
            elif verb == "claim":
                result = by_number(args, lambda s, tid: claim_ticket(s, tid, user, now))
                if result.claimed:
                    ack(text=f"You claimed #{result.number}.")
                else:
                    owner = "you" if result.owner == user else f"<@{result.owner}>"
                    ack(text=f"Ticket #{result.number} is already claimed by {owner}.")
            elif verb == "unclaim":
                by_number(
                    args, lambda s, tid: unclaim_ticket(s, tid, user, now, manager=access.is_manager(user))
                )
                ack(text=f"You released #{_number(args)}.")
            elif verb == "resolve":
                by_number(args, lambda s, tid: resolve_ticket(s, tid, user, now))
                ack(text=f"Resolved #{_number(args)}.")
            elif verb == "reopen":
                by_number(args, lambda s, tid: set_status(s, tid, user, TicketStatus.OPEN, now))
                ack(text=f"Reopened #{_number(args)}.")
            elif verb == "templates":
                templates(ack, args)
            elif verb == "template":
                edit_template(ack, body, client, user, args)
            elif verb == "rules":
                rules.rules_command(
                    services, access, ack, user, (body.get("text") or "").strip()[len("rules") :]
                )
            elif verb == "automation":
                automation.automation_command(services, access, ack, user, args)
            elif verb == "spam":
                spam.spam_command(services, access, ack, user, args)
            elif verb == "status":
                report = read_domain(services, lambda s: health_status.status_report(s, now))
                text, blocks = status_blocks(
                    report, services.settings, now, version=health_status.bot_version()
                )
                ack(text=text, blocks=blocks)
            elif verb in ("stats", "export"):
                stats.support_command(services, access, verb, ack, client, user, args)
            else:
                ack(text=f"I don't know `{escape(truncate(verb, 100))}`.\n\n{lists.SUPPORT_USAGE}")
        except TicketError as exc:
            ack(text=ticket_error_text(exc))

    def templates(ack: Any, args: list[str]) -> None:
        directory = services.settings.templates_dir
        if not args:
            found = read_domain(services, lambda s: template_store.list_templates(s, directory))
            ack(text="Reply templates", blocks=lists.template_list(found))
            return
        try:
            template = read_domain(services, lambda s: template_store.get_template(s, directory, args[0]))
        except reply_templates.TemplateNotFound as exc:
            # The message quotes the name as typed.
            raise TicketError(escape(truncate(str(exc), 300))) from None
        ack(text=escape(truncate(template.title, 200)), blocks=lists.template_preview(template))

    def edit_template(ack: Any, body: dict[str, Any], client: Any, user: str, args: list[str]) -> None:
        if not access.is_manager(user):
            ack(text=access.refusal("manager"))
            return
        if args[:1] == ["new"] and len(args) == 1:
            draft = modals.TemplateDraft()
            editing = False
        elif args[:1] == ["edit"] and len(args) == 2:
            directory = services.settings.templates_dir
            try:
                found = run_domain(services, lambda s: template_store.get_template(s, directory, args[1]))
            except reply_templates.TemplateNotFound as exc:
                raise TicketError(escape(truncate(str(exc), 300))) from None
            draft = modals.TemplateDraft(
                found.name, found.title, found.language, tuple(found.tags), found.text, found.html
            )
            editing = True
        else:
            raise TicketError("Use `/support template new` or `/support template edit NAME`.")
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=modals.template_editor(draft, editing=editing))

    app.command("/support")(guarded(access, "staff", support))
