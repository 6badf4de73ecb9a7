"""The Slack edge of the rota's use cases: the sentence for each typed refusal, the swap
form's box it marks, and the notices queued in the outbox with the change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.oncall import SWAP_DUTY_BLOCK, SWAP_TO_BLOCK
from bot.slack.oncall_errors import rota_error_text, swap_block_to_blame
from bot.slack.oncall_notices import queue_notices, swap_reply
from bot.storage.db import transaction
from bot.storage.models import OutboxItem
from handlers.oncall_words import BadInput, number_arg
from rota import errors
from rota.notices import SwapNews, SwapNotice
from rota.store import DutyView
from rota.swap_flow import SwapResult
from rota.swaps import SwapOutcome, SwapView

DAY = date(2026, 12, 21)
SENTENCES: list[tuple[errors.RotaError, str]] = [
    (errors.NotOnRota("UEVE"), "<@UEVE> is not on the rota: only support staff are."),
    (errors.OffRota("UCY"), "<@UCY> is not on the rota at the moment."),
    (errors.AwayThen("UCY", DAY, DAY), "<@UCY> is on time off from 2026-12-21 to 2026-12-21."),
    (errors.CannotSwapWithYourself(), "Offer it to a colleague, not to yourself."),
    (
        errors.AlreadyRequested(1, 2, "UBOB", "awaiting_approval"),
        "That duty already has an open request (<@UBOB>, waiting for a manager).",
    ),
    (errors.NotYourDuty(1, "UBOB"), "You can only offer a duty you hold."),
    (errors.DutyNotFound(1), "That duty is not on the rota."),
    (errors.DutyOver(1), "That duty is over."),
    (errors.OfferNotForYou(2, "UBOB", "UCY"), "This offer was made to <@UBOB>, not to you."),
    (errors.AlreadyClosed(2, "offered", offer=True), "This offer is already waiting for an answer."),
    (errors.AlreadyClosed(2, "declined", offer=False), "This request is already declined."),
    (errors.DutyMovedOn(2, offer=True), "That duty has changed hands or ended since it was offered."),
    (errors.NoDutyThatNight(DAY), "No published duty covers the night of 2026-12-21."),
    (errors.NoDaysGiven(), "Give the day or days you take off, like `/oncall comp take 2026-12-27`."),
]  # fmt: skip


@pytest.mark.parametrize(("error", "sentence"), SENTENCES)
def test_each_refusal_reads_as_before_and_marks_the_box_it_blames(
    error: errors.RotaError, sentence: str
) -> None:
    assert rota_error_text(error) == sentence
    # The box the form marks used to be guessed from the sentence; the data now says the same.
    guessed = SWAP_TO_BLOCK if "<@" in sentence or "yourself" in sentence else SWAP_DUTY_BLOCK
    assert swap_block_to_blame(error) == guessed


def test_an_error_raised_at_the_edge_keeps_its_own_words() -> None:
    assert rota_error_text(errors.RotaError("As typed.")) == "As typed."


START = datetime(2026, 12, 21, 18, tzinfo=UTC)
DUTY = DutyView(7, START, START + timedelta(days=1), "UBOB", True, "swap", "swap from UADA")
SWAP = SwapView(3, "swap", DUTY, "UADA", "UBOB", "accepted", "", None, "UMAY")


def test_approved_swap_notices_are_queued_in_the_same_session(session_factory: sessionmaker[Session]) -> None:
    result = SwapResult(
        SwapOutcome(SWAP, DUTY, under_way=True),
        "UMAY",
        (
            SwapNotice("UADA", SwapNews.HANDED_OVER, SWAP, DUTY, "UMAY", under_way=True, approved=True),
            SwapNotice("UMAX", SwapNews.DECIDED_ELSEWHERE, SWAP, DUTY, "UMAY"),
        ),
    )
    tz = ZoneInfo("Europe/Rome")
    with transaction(session_factory) as session:
        queue_notices(session, result.notices, tz, now=START)
        reply = swap_reply(result, tz)
    with transaction(session_factory) as session:
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        sent = [(r.payload["channel"], r.payload["text"]) for r in rows]
    assert [channel for channel, _ in sent] == ["UADA", "UMAX"]
    assert sent[0][1].startswith("<@UBOB> now holds your on-call duty <!date^")
    assert sent[0][1].endswith(" from now (approved by <@UMAY>).")
    assert sent[1][1].startswith("<@UMAY> approved the swap of the on-call duty <!date^")
    assert reply.startswith("Approved: <@UBOB> holds <!date^") and reply.endswith(" from now (was <@UADA>).")


def test_a_typed_number_is_read_as_the_kind_asked_for() -> None:
    assert number_arg("0.5", float, "a number") == 0.5
    assert number_arg("-1.5", Decimal, "an amount") == Decimal("-1.5")


@pytest.mark.parametrize("kind", [float, Decimal])
def test_a_word_that_is_no_number_is_refused_saying_what_was_wanted(kind: type) -> None:
    with pytest.raises(BadInput) as refused:
        number_arg("<lots>", kind, "an amount; write it like 1.5")
    assert str(refused.value) == "`&lt;lots&gt;` is not an amount; write it like 1.5."
