"""The words for what the rota refuses: one sentence per typed error, and the swap form's
box to mark, read from the error's data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.slack.oncall import SWAP_DUTY_BLOCK, SWAP_TO_BLOCK
from rota import errors as e

# The swap modal's blocks, by what an error blames.
SWAP_BLOCK_FOR = {e.DUTY: SWAP_DUTY_BLOCK, e.PERSON: SWAP_TO_BLOCK}


def said(status: str) -> str:
    """A request's status as a person says it."""
    return {"offered": "waiting for an answer", "awaiting_approval": "waiting for a manager"}.get(
        status, status
    )


def _closed(err: e.AlreadyClosed) -> str:
    return f"This {'offer' if err.offer else 'request'} is already {said(err.status)}."


def _moved_on(err: e.DutyMovedOn) -> str:
    if err.offer:
        return "That duty has changed hands or ended since it was offered."
    return "That duty has changed hands or ended since; the request no longer stands."


_TEXT: dict[type[e.RotaError], Callable[[Any], str]] = {
    e.NotOnRota: lambda err: f"<@{err.user}> is not on the rota: only support staff are.",
    e.OffRota: lambda err: f"<@{err.user}> is not on the rota at the moment.",
    e.AwayThen: lambda err: f"<@{err.user}> is on time off from {err.first_day} to {err.last_day}.",
    e.CannotSwapWithYourself: lambda err: "Offer it to a colleague, not to yourself.",
    e.DutyNotFound: lambda err: "That duty is not on the rota.",
    e.DutyOver: lambda err: "That duty is over.",
    e.NotYourDuty: lambda err: "You can only offer a duty you hold.",
    e.AlreadyYours: lambda err: "You already hold that duty.",
    e.NoDutyThatNight: lambda err: f"No published duty covers the night of {err.night}.",
    e.NoDutyNow: lambda err: "No duty is under way right now; give the night, like `2026-12-21`.",
    e.AlreadyRequested: lambda err: (
        f"That duty already has an open request (<@{err.to_user}>, {said(err.status)})."
    ),
    e.RequestNotFound: lambda err: "That request no longer exists.",
    e.OfferNotForYou: lambda err: f"This offer was made to <@{err.to_user}>, not to you.",
    e.NotInRequest: lambda err: "Only the people in this request can withdraw it.",
    e.AlreadyClosed: _closed,
    e.OfferExpired: lambda err: "This offer has expired.",
    e.DutyMovedOn: _moved_on,
    e.TimeOffBackwards: lambda err: f"The time off ends ({err.last_day}) before it starts ({err.first_day}).",
    e.TimeOffOver: lambda err: (
        f"{err.first_day} to {err.last_day} is already over; time off is for the future."
    ),
    e.TimeOffTooFar: lambda err: (
        "Time off is taken at most two years ahead and for at most a year at a time."
    ),
    e.TimeOffNotFound: lambda err: "That time off is not on record (already cancelled?).",
    e.NotYourTimeOff: lambda err: "Only a manager can cancel someone else's time off.",
    e.WeightOutOfRange: lambda err: (
        "A weight is a share of a full load: above 0 and at most 1 (0.5 for half)."
    ),
    e.NoPersonalFeed: lambda err: "You are not on the rota, so you have no personal feed to reset.",
    e.NoDaysGiven: lambda err: "Give the day or days you take off, like `/oncall comp take 2026-12-27`.",
    e.NotDaysInLieu: lambda err: (
        "Compensation is paid, not taken as days off; ask a manager to record a payout."
    ),
    e.ReasonNeeded: lambda err: "An adjustment needs a reason.",
    e.BadAmount: lambda err: "The amount must be a number other than 0, like 1.5 or -0.5.",
}


def rota_error_text(err: e.RotaError) -> str:
    """The sentence the person who asked reads. An error raised at the edge (bad words in a
    command) already carries its sentence."""
    for kind in type(err).__mro__:
        if kind in _TEXT:
            return _TEXT[kind](err)
    return str(err)


def swap_block_to_blame(err: e.RotaError) -> str:
    return SWAP_BLOCK_FOR.get(err.field, SWAP_BLOCK_FOR[e.DUTY])
