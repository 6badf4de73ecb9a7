"""Phones: the numbers people registered, every call and SMS sent, and the Twilio
webhooks already acted on (so a replayed keypress or SMS does nothing twice)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


class Phone(Base):
    """One person's number: confirmed (by a code sent to it) before any page uses it."""

    __tablename__ = "phones"
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164, once confirmed
    confirmed_at: Mapped[datetime | None]
    # A registration under way: the number asked for and the code's hash, never the code.
    pending_number: Mapped[str | None] = mapped_column(String(20))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_salt: Mapped[str | None] = mapped_column(String(32))
    code_expires_at: Mapped[datetime | None]
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)  # today's, see bot/phone/numbers.py
    codes_day: Mapped[str | None] = mapped_column(String(10))


class PhoneDelivery(Base):
    """A call or an SMS: its outbox row, Twilio's SID once known, and each status Twilio reported."""

    __tablename__ = "phone_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(Integer, unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # call | sms
    page_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    user_id: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(20))
    sid: Mapped[str | None] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(20))  # Twilio's last word: queued … completed, no-answer
    # [{"status": "ringing", "at": "…"}], in the order Twilio told us.
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class TwilioWebhookSeen(Base):
    """A keypress (CallSid + Digits) or an inbound SMS (MessageSid) already acted on."""

    __tablename__ = "twilio_webhooks_seen"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    seen_at: Mapped[datetime]
