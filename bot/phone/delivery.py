"""The phone outbox handlers: `phone.call` and `phone.sms` through the real `twilio` client.

Never twice after a crash: the worker counts a try before making it, so a row tried
before (`attempts > 1`) may have reached Twilio. Before creating again, the handler looks:
first for a status callback Twilio already sent us about this row (its URL names the row),
then in Twilio's own list of calls (or messages) to that number from our number since
the row was written, leaving out those another row already owns. Twilio's list answers do
not echo the status-callback URL, so that is as precise as its API allows: one lane per
number delivers one row at a time, and a row's call is recorded before the next row's try.

A page's call or SMS that is due once the page is over (acknowledged anywhere, passed on,
ended) is not made: acknowledging anywhere stops every channel.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.base.exceptions import TwilioRestException
from twilio.twiml.voice_response import VoiceResponse

from bot.clock import Clock
from bot.config import Settings
from bot.outbox.queue import PHONE_CALL, PHONE_CANCEL, PHONE_SMS
from bot.outbox.worker import Handler, PermanentFailure, RetryLater
from bot.phone.timeline import record_status
from bot.phone.twilio_api import make_client
from bot.storage.db import reading
from bot.storage.models import OutboxItem, Page
from bot.storage.models_phone import PhoneDelivery

log = logging.getLogger(__name__)

# Twilio's clock and ours differ a little; a call it dates a few seconds before our row is ours.
CLOCK_SKEW = timedelta(seconds=30)


def webhook_base(settings: Settings) -> str | None:
    """Where Twilio reaches our webhooks; None without PUBLIC_URL or an auth token to check them."""
    phone = settings.phone
    if settings.public_url is None or phone is None or phone.twilio is None or not phone.twilio.auth_token:
        return None
    return settings.public_url.rstrip("/")


class _TwilioHandler:
    kind = ""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], clock: Clock) -> None:
        assert settings.phone is not None and settings.phone.twilio is not None
        self.settings = settings
        self.clock = clock
        self.twilio = settings.phone.twilio
        self.factory = factory
        self.client, self.http = make_client(self.twilio)

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        payload = item.payload
        if payload.get("page_id") is not None and not self._page_running(int(payload["page_id"])):
            return {"skipped": "the page is over"}
        if item.attempts > 1:
            found = self._look(item)
            if found is not None:
                return {"sid": found[0], "status": found[1], "adopted": True}
        try:
            sid, status = self._create(item)
        except TwilioRestException as exc:
            raise self._refusal(exc) from None
        except OSError as exc:  # requests' connection errors are OSErrors too
            raise RetryLater(f"Twilio unreachable: {type(exc).__name__}") from None
        return {"sid": sid, "status": status}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        if item.payload.get("scrub"):
            # A registration code is kept hashed; its SMS must not keep it either once it is out.
            item.payload = {**item.payload, "body": "(a registration code, removed once sent)"}
        if not result.get("sid"):
            return
        record_status(
            session,
            outbox=item,
            kind=self.kind,
            sid=str(result["sid"]),
            status=str(result.get("status") or "queued"),
            at=self.clock.now(),
        )

    # -- inside ------------------------------------------------------------------

    def _create(self, item: OutboxItem) -> tuple[str, str]:
        raise NotImplementedError

    def _listed(self, item: OutboxItem) -> list[tuple[str, str, datetime | None, str]]:
        raise NotImplementedError

    def _page_running(self, page_id: int) -> bool:
        with reading(self.factory) as session:
            page = session.get(Page, page_id)
            return page is not None and page.status == "active"

    def _look(self, item: OutboxItem) -> tuple[str, str] | None:
        with reading(self.factory) as session:
            told = session.scalar(select(PhoneDelivery).where(PhoneDelivery.outbox_id == item.id))
            if told is not None and told.sid:
                return told.sid, told.status
        try:
            listed = self._listed(item)
        except TwilioRestException as exc:
            raise self._refusal(exc) from None
        except OSError as exc:
            raise RetryLater(f"Twilio unreachable: {type(exc).__name__}") from None
        since = item.created_at - CLOCK_SKEW
        candidates = [
            (sid, status) for sid, status, created, _ in listed if created is None or created >= since
        ]
        if not candidates:
            return None
        with reading(self.factory) as session:
            owned = set(
                session.scalars(
                    select(PhoneDelivery.sid).where(PhoneDelivery.sid.in_([c[0] for c in candidates]))
                )
            )
        mine = [c for c in candidates if c[0] not in owned]
        return mine[0] if mine else None

    def _refusal(self, exc: TwilioRestException) -> Exception:
        if exc.status == 429 or exc.status >= 500:
            after = self.http.last_header("Retry-After")
            seconds = float(after) if after and after.replace(".", "", 1).isdigit() else None
            return RetryLater(f"Twilio answered {exc.status}", seconds)
        if exc.status in (401, 403):
            # Wrong credentials are fixed by an operator; keep the page's call waiting meanwhile.
            return RetryLater(f"Twilio refused our credentials ({exc.status})")
        return PermanentFailure(f"Twilio refused it ({exc.status}, code {exc.code}): {exc.msg}")

    def _callbacks(self, item: OutboxItem) -> dict[str, Any]:
        base = webhook_base(self.settings)
        if base is None:
            return {}
        return {"status_callback": f"{base}/twilio/status?o={item.id}"}


class CallHandler(_TwilioHandler):
    kind = "call"

    def _create(self, item: OutboxItem) -> tuple[str, str]:
        payload = item.payload
        base = webhook_base(self.settings)
        fields: dict[str, Any] = {"to": payload["to"], "from_": self.twilio.from_number, "timeout": 30}
        if base is not None:
            fields["url"] = f"{base}/twilio/voice?o={item.id}"
            fields["status_callback"] = f"{base}/twilio/status?o={item.id}"
            fields["status_callback_event"] = ["initiated", "ringing", "answered", "completed"]
        else:
            # No public address: the call still reads the page out; a keypress has nowhere to go.
            twiml = VoiceResponse()
            twiml.say(str(payload["say"]))
            twiml.pause(length=1)
            twiml.say(str(payload["say"]))
            fields["twiml"] = str(twiml)
        call = self.client.calls.create(**fields)
        return str(call.sid), str(call.status or "queued")

    def _listed(self, item: OutboxItem) -> list[tuple[str, str, datetime | None, str]]:
        calls = self.client.calls.list(to=item.payload["to"], from_=self.twilio.from_number, limit=20)
        return [(str(c.sid), str(c.status), c.date_created, "") for c in calls]


class SmsHandler(_TwilioHandler):
    kind = "sms"

    def _create(self, item: OutboxItem) -> tuple[str, str]:
        payload = item.payload
        message = self.client.messages.create(
            to=payload["to"], from_=self.twilio.from_number, body=payload["body"], **self._callbacks(item)
        )
        return str(message.sid), str(message.status or "queued")

    def _listed(self, item: OutboxItem) -> list[tuple[str, str, datetime | None, str]]:
        messages = self.client.messages.list(to=item.payload["to"], from_=self.twilio.from_number, limit=20)
        # The body is ours to the letter (it carries the page's code), which narrows the match.
        return [
            (str(m.sid), str(m.status), m.date_created, "")
            for m in messages
            if (m.body or "") == item.payload["body"]
        ]


class CancelHandler:
    """A page's call not answered yet, once the page is over: Twilio is asked to cancel it.

    Cancelling is idempotent at Twilio (a call already canceled, answered or ended is left as
    it is), so a retry after a crash needs no look first.
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        assert settings.phone is not None and settings.phone.twilio is not None
        self.clock = clock
        self.client, self.http = make_client(settings.phone.twilio)

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        try:
            call = self.client.calls(item.payload["sid"]).update(status="canceled")
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                after = self.http.last_header("Retry-After")
                seconds = float(after) if after and after.replace(".", "", 1).isdigit() else None
                raise RetryLater(f"Twilio answered {exc.status}", seconds) from None
            # 404 or "not in a state to cancel": nothing is ringing any more.
            return {"status": "gone", "code": exc.code}
        except OSError as exc:
            raise RetryLater(f"Twilio unreachable: {type(exc).__name__}") from None
        return {"status": str(call.status)}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        return None


def phone_handlers(settings: Settings, factory: sessionmaker[Session], clock: Clock) -> dict[str, Handler]:
    return {
        PHONE_CALL: CallHandler(settings, factory, clock),
        PHONE_SMS: SmsHandler(settings, factory, clock),
        PHONE_CANCEL: CancelHandler(settings, clock),
    }
