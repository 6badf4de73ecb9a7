"""`/oncall phone …` and `/oncall test`: registering a number for pages, and paging yourself.

Thin: each verb calls one use case in one transaction and words its answer (bot/slack/phone.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.phone import numbers
from bot.phone.pages import code_sms
from bot.slack import phone as words
from handlers.common import run_domain
from handlers.oncall_words import Reply

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.services import Services


def phone_on(services: Services) -> bool:
    settings = services.settings
    return settings.phone is not None and settings.phone.twilio is not None


def phone_verb(services: Services, user: str, args: list[str]) -> Reply:
    if not phone_on(services):
        return Reply(words.NOT_SET_UP)
    now = services.clock.now()
    first = args[0].lower() if args else ""
    if not args:

        def status(session: Session) -> str:
            return words.phone_status(numbers.number_of(session, user), numbers.pending_of(session, user))

        return Reply(run_domain(services, status))
    if first == "remove":
        return Reply(words.removed(run_domain(services, lambda s: numbers.remove(s, user))))
    if first == "confirm":
        code = "".join(args[1:])
        return Reply(
            words.confirmed_or_refused(run_domain(services, lambda s: numbers.confirm(s, user, code, now)))
        )
    region = services.settings.holidays_country

    def register(session: Session) -> str:
        sent = numbers.start_registration(session, user, " ".join(args), now, region)
        code_sms(session, user=user, number=sent.number, code=sent.code, now=now)
        return sent.number

    try:
        return Reply(words.code_sent(run_domain(services, register)))
    except numbers.PhoneError as exc:
        return Reply(words.phone_error(exc))


def test_verb(services: Services, user: str) -> Reply:
    on = phone_on(services)
    now = services.clock.now()

    def page(session: Session) -> tuple[list[str], bool]:
        has = on and numbers.number_of(session, user) is not None
        return words.queue_test_page(session, user, now, phone_on=on), has

    channels, has_phone = run_domain(services, page)
    return Reply(words.test_page_sent(channels, phone_on=on, has_phone=has_phone))
