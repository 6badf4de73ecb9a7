"""Registering a phone number: parsed and normalised to E.164, confirmed by a six-digit code
sent to it by SMS before any page uses it, and removable.

The code is kept as a salted hash, expires after CODE_TTL and allows MAX_ATTEMPTS guesses
(a million codes, five guesses: one chance in 200,000); a person may ask for at most
MAX_CODES_PER_DAY codes, so nobody can use the bot to text a stranger's phone over and over.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models_phone import Phone

CODE_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
MAX_CODES_PER_DAY = 5


class PhoneError(ValueError):
    """A registration step that cannot be done; `reason` says which (the edge words it)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason  # invalid | not_mobile_capable | taken | no_code | expired | wrong | too_many
        self.detail = detail


@dataclass(frozen=True)
class CodeToSend:
    user: str
    number: str  # E.164
    code: str  # six digits, only ever in the SMS


@dataclass(frozen=True)
class Confirmed:
    user: str
    number: str


@dataclass(frozen=True)
class Refused:
    """A code not accepted. Returned, not raised, so the caller commits the counted guess."""

    reason: str  # no_code | expired | wrong | too_many | taken
    attempts_left: int = 0


def normalise(raw: str, default_region: str | None = None) -> str:
    """E.164 for what someone typed (`+39 333 123 4567`, `0333…` with a default region)."""
    try:
        parsed = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError("invalid", str(exc)) from None
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneError("invalid", raw.strip()[:40])
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def start_registration(
    session: Session, user: str, raw: str, now: datetime, default_region: str | None = None
) -> CodeToSend:
    number = normalise(raw, default_region)
    taken = session.scalar(select(Phone.user_id).where(Phone.number == number, Phone.user_id != user))
    if taken is not None:
        raise PhoneError("taken")
    phone = session.get(Phone, user, with_for_update=True)
    if phone is None:
        phone = Phone(user_id=user, code_attempts=0, codes_sent=0)
        session.add(phone)
    day = now.date().isoformat()
    if phone.codes_day != day:
        phone.codes_day, phone.codes_sent = day, 0
    if phone.codes_sent >= MAX_CODES_PER_DAY:
        raise PhoneError("too_many")
    code = f"{secrets.randbelow(1_000_000):06d}"
    phone.code_salt = secrets.token_hex(16)
    phone.code_hash = _hash(phone.code_salt, code)
    phone.pending_number = number
    phone.code_expires_at = now + CODE_TTL
    phone.code_attempts = 0
    phone.codes_sent += 1
    session.flush()
    return CodeToSend(user, number, code)


def confirm(session: Session, user: str, code: str, now: datetime) -> Confirmed | Refused:
    phone = session.get(Phone, user, with_for_update=True)
    if phone is None or phone.pending_number is None or phone.code_hash is None or phone.code_salt is None:
        return Refused("no_code")
    if phone.code_expires_at is None or now >= phone.code_expires_at:
        _forget_code(phone)
        return Refused("expired")
    phone.code_attempts += 1
    if not hmac.compare_digest(phone.code_hash, _hash(phone.code_salt, code.strip())):
        left = MAX_ATTEMPTS - phone.code_attempts
        if left <= 0:
            _forget_code(phone)
            return Refused("too_many")
        return Refused("wrong", left)
    number = phone.pending_number
    taken = session.scalar(select(Phone.user_id).where(Phone.number == number, Phone.user_id != user))
    _forget_code(phone)
    if taken is not None:
        return Refused("taken")
    phone.number, phone.confirmed_at = number, now
    return Confirmed(user, number)


def remove(session: Session, user: str) -> str | None:
    """Forget the person's number; returns the number that was confirmed, if any."""
    phone = session.get(Phone, user, with_for_update=True)
    if phone is None:
        return None
    number = phone.number
    phone.number, phone.confirmed_at = None, None
    _forget_code(phone)
    return number


def number_of(session: Session, user: str) -> str | None:
    """The person's confirmed number; None when they have none (they are paged by Slack)."""
    return session.scalar(select(Phone.number).where(Phone.user_id == user, Phone.number.is_not(None)))


def owner_of(session: Session, number: str) -> str | None:
    """Who confirmed `number` (E.164); None for anyone else."""
    return session.scalar(select(Phone.user_id).where(Phone.number == number))


def pending_of(session: Session, user: str) -> str | None:
    return session.scalar(select(Phone.pending_number).where(Phone.user_id == user))


def _forget_code(phone: Phone) -> None:
    phone.pending_number = phone.code_hash = phone.code_salt = None
    phone.code_expires_at = None
    phone.code_attempts = 0


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()
