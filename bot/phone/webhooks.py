"""`/twilio/…`: what Twilio tells us about the calls and SMS we sent, and what people answer.

- `/twilio/voice?o=ID`: Twilio asks what the call should say (TwiML): the page, then
  "press 1 to acknowledge, 2 to pass it on" in a `<Gather>`.
- `/twilio/gather?o=ID`: the key pressed: 1 acknowledges the page, 2 passes it to the next level.
- `/twilio/status?o=ID`: a call's or SMS's status (queued, ringing, in-progress, completed,
  busy, no-answer, failed…), kept in its timeline.
- `/twilio/sms`: an SMS to our number: `1 123` or `ack 123` acknowledges ticket 123's page,
  from a confirmed number only.

Every request must carry a valid `X-Twilio-Signature` over PUBLIC_URL + path and its form
fields (the library's RequestValidator, keyed with TWILIO_AUTH_TOKEN); anything else gets a
403. Twilio's signature has no timestamp, so a captured request could be sent again: a
keypress (CallSid + Digits) and an inbound SMS (MessageSid) are acted on once, and a repeat
gets a 403 too. A keypress for a page that is already over is told so, and changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from bot.clock import Clock
from bot.config import Settings
from bot.outbox.queue import enqueue_post, notify_workers
from bot.phone.numbers import owner_of
from bot.phone.seen import first_time
from bot.phone.timeline import KNOWN_STATUSES, record_status
from bot.slack.paging import queue_paging_notices
from bot.slack.phone import call_outcome_notice
from bot.storage.db import transaction
from bot.storage.models import OutboxItem, Page, Ticket
from bot.storage.models_phone import PhoneDelivery
from bot.web import WSGIApp
from rota.paging import PagePolicy, PagingError, acknowledge, pass_on
from rota.paging_jobs import acknowledged, notice_of_step

log = logging.getLogger(__name__)

PREFIX = "/twilio/"
_BODY_LIMIT = 64 * 1024
_SMS_ACK = re.compile(r"^\s*(?:1|ack|ok)\s*#?\s*(\d{1,9})\s*$", re.IGNORECASE)
_PASS_ON_WORDS = "Press 1 to acknowledge. Press 2 to pass it to the next person."


def twilio_app(factory: sessionmaker[Session], clock: Clock, settings: Settings) -> WSGIApp:
    """The WSGI app for the `/twilio/` prefix of the bot's router."""
    twilio = settings.phone.twilio if settings.phone else None
    token = twilio.auth_token if twilio else None
    validator = RequestValidator(token) if token else None
    base = (settings.public_url or "").rstrip("/")
    hooks = _Hooks(factory, clock, settings, base)
    handlers: dict[str, Callable[[dict[str, str], int | None], tuple[str, str]]] = {
        "/twilio/voice": hooks.voice,
        "/twilio/gather": hooks.gather,
        "/twilio/status": hooks.status,
        "/twilio/sms": hooks.sms,
    }

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = handlers.get(path)
        if handler is None:
            return _answer(start_response, "404 Not Found", "text/plain", "not found")
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", "text/plain", "POST only")
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), _BODY_LIMIT)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        query = environ.get("QUERY_STRING") or ""
        url = base + path + (f"?{query}" if query else "")
        signature = str(environ.get("HTTP_X_TWILIO_SIGNATURE") or "")
        if validator is None or not base or not signature or not validator.validate(url, params, signature):
            log.warning("refused a Twilio webhook to %s: not signed by Twilio", path)
            return _answer(start_response, "403 Forbidden", "text/plain", "forbidden")
        outbox_id = _outbox_id(query)
        try:
            content_type, text = handler(params, outbox_id)
        except _Replayed:
            log.warning("refused a replayed Twilio webhook to %s", path)
            return _answer(start_response, "403 Forbidden", "text/plain", "already received")
        except Exception:
            log.exception("a Twilio webhook to %s failed", path)
            return _answer(start_response, "500 Internal Server Error", "text/plain", "try again")
        notify_workers()
        return _answer(start_response, "200 OK", content_type, text)

    return app


class _Replayed(Exception):
    pass


class _Hooks:
    def __init__(self, factory: sessionmaker[Session], clock: Clock, settings: Settings, base: str) -> None:
        self.base = base
        self.factory = factory
        self.clock = clock
        self.settings = settings
        self.policy = PagePolicy.from_settings(settings)

    def voice(self, params: dict[str, str], outbox_id: int | None) -> tuple[str, str]:
        twiml = VoiceResponse()
        with transaction(self.factory) as session:
            item = session.get(OutboxItem, outbox_id) if outbox_id is not None else None
            if item is None:
                twiml.say("This call is no longer known to supportbot. Goodbye.")
                return _xml(twiml)
            self._note(session, item, params.get("CallSid", ""), params.get("CallStatus", ""))
            over = _page_over(session, item)
            if over is not None:
                twiml.say(over)
                return _xml(twiml)
            gather = twiml.gather(
                num_digits=1, action=f"{self.base}/twilio/gather?o={item.id}", method="POST", timeout=10
            )
            gather.say(str(item.payload.get("say") or "Urgent support page."))
            gather.say("Press 1 to confirm this test." if item.payload.get("test") else _PASS_ON_WORDS)
            twiml.say("No key was pressed. Goodbye.")
        return _xml(twiml)

    def gather(self, params: dict[str, str], outbox_id: int | None) -> tuple[str, str]:
        twiml = VoiceResponse()
        call_sid, digits = params.get("CallSid", ""), params.get("Digits", "")
        now = self.clock.now()
        with transaction(self.factory) as session:
            item = session.get(OutboxItem, outbox_id) if outbox_id is not None else None
            if item is None or not call_sid:
                twiml.say("This call is no longer known to supportbot. Goodbye.")
                return _xml(twiml)
            # Only keys that act are remembered: a stray key may be pressed again after the menu.
            if digits in ("1", "2") and not first_time(session, f"gather:{call_sid}:{digits}", now):
                raise _Replayed
            user = str(item.payload.get("user") or "")
            if item.payload.get("test"):
                if digits == "1":
                    enqueue_post(
                        session, user, ":white_check_mark: Your test call worked: you pressed 1.", now=now
                    )
                twiml.say("Thank you. Your test page worked. Goodbye.")
                return _xml(twiml)
            over = _page_over(session, item)
            if over is not None:
                twiml.say(over)
                return _xml(twiml)
            page_id = int(item.payload["page_id"])
            if digits == "1":
                try:
                    ack = acknowledge(session, page_id, user=user, now=now)
                except PagingError:
                    twiml.say("This page no longer exists. Goodbye.")
                    return _xml(twiml)
                queue_paging_notices(
                    session, acknowledged(ack), now, support_channel=self.settings.support_channel
                )
                twiml.say("Acknowledged. The others are told to stand down. Thank you.")
            elif digits == "2":
                step = pass_on(session, page_id, user=user, now=now, policy=self.policy)
                if step is None:
                    twiml.say("The page has already moved on from you. Goodbye.")
                    return _xml(twiml)
                queue_paging_notices(
                    session, [notice_of_step(step)], now, support_channel=self.settings.support_channel
                )
                twiml.say("Passed to the next person. Goodbye.")
            else:
                twiml.say("That key does nothing. " + _PASS_ON_WORDS)
                twiml.redirect(f"{self.base}/twilio/voice?o={item.id}", method="POST")
        return _xml(twiml)

    def status(self, params: dict[str, str], outbox_id: int | None) -> tuple[str, str]:
        sid = params.get("CallSid") or params.get("MessageSid") or ""
        status = (params.get("CallStatus") or params.get("MessageStatus") or "").lower()
        if sid and status in KNOWN_STATUSES and outbox_id is not None:
            with transaction(self.factory) as session:
                item = session.get(OutboxItem, outbox_id)
                if item is not None:
                    self._note(session, item, sid, status)
        return "text/plain", ""

    def sms(self, params: dict[str, str], outbox_id: int | None) -> tuple[str, str]:
        reply = MessagingResponse()
        sid, sender, body = params.get("MessageSid", ""), params.get("From", ""), params.get("Body", "")
        now = self.clock.now()
        with transaction(self.factory) as session:
            if not sid or not first_time(session, f"sms:{sid}", now):
                raise _Replayed
            user = owner_of(session, sender)
            match = _SMS_ACK.match(body)
            if user is None:
                # Only a confirmed number may acknowledge; anyone else hears nothing useful.
                return _xml(reply)
            if match is None:
                reply.message("To acknowledge a page, answer 1 and the ticket number, e.g. '1 123'.")
                return _xml(reply)
            number = int(match.group(1))
            page = session.scalar(
                select(Page).join(Ticket, Ticket.id == Page.ticket_id).where(Ticket.number == number)
            )
            if page is None:
                reply.message(f"Ticket {number} has no page to acknowledge.")
                return _xml(reply)
            ack = acknowledge(session, page.id, user=user, now=now)
            queue_paging_notices(
                session, acknowledged(ack), now, support_channel=self.settings.support_channel
            )
            reply.message(
                f"Acknowledged ticket {number}."
                if ack.first
                else f"Ticket {number} was already acknowledged."
            )
        return _xml(reply)

    def _note(self, session: Session, item: OutboxItem, sid: str, status: str) -> None:
        if not sid or status not in KNOWN_STATUSES:
            return
        known = session.scalar(select(PhoneDelivery.outbox_id).where(PhoneDelivery.sid == sid))
        if known is not None and known != item.id:
            return  # a SID another row owns: not this row's call
        kind = "call" if sid.startswith("CA") else "sms"
        row = record_status(session, outbox=item, kind=kind, sid=sid, status=status, at=self.clock.now())
        call_outcome_notice(session, row, self.clock.now())


def _page_over(session: Session, item: OutboxItem) -> str | None:
    page_id = item.payload.get("page_id")
    if page_id is None:
        return None
    page = session.get(Page, int(page_id))
    if page is None or page.status == "active":
        return None if page is not None else "This page no longer exists. Goodbye."
    if page.status == "acknowledged":
        return "This page is already over: someone acknowledged it. Goodbye."
    return "This page is already over. Goodbye."


def _outbox_id(query: str) -> int | None:
    value = dict(parse_qsl(query)).get("o", "")
    return int(value) if value.isdigit() and len(value) < 12 else None


def _xml(response: VoiceResponse | MessagingResponse) -> tuple[str, str]:
    return "application/xml", str(response)


def _answer(start_response: Callable[..., Any], status: str, content_type: str, text: str) -> list[bytes]:
    data = text.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]
