"""Registering a number: E.164, a code that is hashed, expires and allows few guesses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from bot.phone import numbers
from bot.phone.numbers import Confirmed, PhoneError, Refused
from bot.phone.seen import first_time, purge_seen_twilio_webhooks
from bot.storage.db import transaction
from bot.storage.models_phone import Phone

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("+39 333 123 4567", None, "+393331234567"),
        ("+39-333-1234567", None, "+393331234567"),
        ("333 123 4567", "IT", "+393331234567"),
        ("(202) 555-0143", "US", "+12025550143"),
    ],
)
def test_numbers_are_normalised_to_e164(typed: str, region: str | None, e164: str) -> None:
    assert numbers.normalise(typed, region) == e164


@given(st.text(max_size=30))
def test_anything_typed_is_a_number_or_refused(typed: str) -> None:
    try:
        e164 = numbers.normalise(typed, "IT")
    except PhoneError as exc:
        assert exc.reason == "invalid"
    else:
        assert e164.startswith("+") and e164[1:].isdigit()


def test_a_code_confirms_the_number_and_is_not_stored(session_factory: sessionmaker[Session]) -> None:
    with transaction(session_factory) as session:
        sent = numbers.start_registration(session, "UADA", "+39 333 123 4567", NOW)
    assert len(sent.code) == 6 and sent.code.isdigit() and sent.number == "+393331234567"
    with session_factory() as session:
        phone = session.get(Phone, "UADA")
        assert phone is not None and phone.number is None and sent.code not in (phone.code_hash or "")
    with transaction(session_factory) as session:
        assert numbers.confirm(session, "UADA", sent.code, NOW + timedelta(minutes=1)) == Confirmed(
            "UADA", "+393331234567"
        )
    with session_factory() as session:
        assert numbers.number_of(session, "UADA") == "+393331234567"
        assert numbers.owner_of(session, "+393331234567") == "UADA"
    with transaction(session_factory) as session:
        assert numbers.remove(session, "UADA") == "+393331234567"
        assert numbers.number_of(session, "UADA") is None


def test_wrong_guesses_are_counted_and_spend_the_code(session_factory: sessionmaker[Session]) -> None:
    with transaction(session_factory) as session:
        sent = numbers.start_registration(session, "UADA", "+393331234567", NOW)
    wrong = "000000" if sent.code != "000000" else "111111"
    outcomes = []
    for _ in range(numbers.MAX_ATTEMPTS):
        with transaction(session_factory) as session:  # each guess committed on its own
            outcomes.append(numbers.confirm(session, "UADA", wrong, NOW))
    assert outcomes[0] == Refused("wrong", numbers.MAX_ATTEMPTS - 1)
    assert outcomes[-1] == Refused("too_many")
    with transaction(session_factory) as session:
        assert numbers.confirm(session, "UADA", sent.code, NOW) == Refused("no_code")


def test_a_code_expires(session_factory: sessionmaker[Session]) -> None:
    with transaction(session_factory) as session:
        sent = numbers.start_registration(session, "UADA", "+393331234567", NOW)
    with transaction(session_factory) as session:
        late = NOW + numbers.CODE_TTL
        assert numbers.confirm(session, "UADA", sent.code, late) == Refused("expired")


def test_a_number_someone_else_confirmed_is_refused(session_factory: sessionmaker[Session]) -> None:
    with transaction(session_factory) as session:
        sent = numbers.start_registration(session, "UADA", "+393331234567", NOW)
        numbers.confirm(session, "UADA", sent.code, NOW)
    with transaction(session_factory) as session, pytest.raises(PhoneError) as caught:
        numbers.start_registration(session, "UBOB", "+39 333 1234567", NOW)
    assert caught.value.reason == "taken"


def test_codes_per_day_are_limited(session_factory: sessionmaker[Session]) -> None:
    for _ in range(numbers.MAX_CODES_PER_DAY):
        with transaction(session_factory) as session:
            numbers.start_registration(session, "UADA", "+393331234567", NOW)
    with transaction(session_factory) as session, pytest.raises(PhoneError) as caught:
        numbers.start_registration(session, "UADA", "+393331234567", NOW)
    assert caught.value.reason == "too_many"
    with transaction(session_factory) as session:
        numbers.start_registration(session, "UADA", "+393331234567", NOW + timedelta(days=1))


def test_a_webhook_is_acted_on_once_and_forgotten_after_a_week(
    session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as session:
        assert first_time(session, "sms:SM1", NOW)
        assert not first_time(session, "sms:SM1", NOW + timedelta(minutes=1))
    with transaction(session_factory) as session:
        assert purge_seen_twilio_webhooks(session, NOW + timedelta(days=6)) == 0
        assert purge_seen_twilio_webhooks(session, NOW + timedelta(days=8)) == 1
        assert first_time(session, "sms:SM1", NOW + timedelta(days=8))
