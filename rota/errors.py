"""What the rota refuses, as data: who, which duty or request, which dates.

Each error names the input to blame (`field`), so a form can mark the right box; the
sentence a person reads is written where the answer is rendered (`bot/slack`), and
`str()` of an error is a plain description for logs and tests.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

# The inputs an error can blame: the duty chosen, or the person named.
DUTY = "duty"
PERSON = "person"


class RotaError(ValueError):
    """A request the rota cannot honour."""

    field: str = DUTY


# -- people ---------------------------------------------------------------------------


class NotOnRota(RotaError):
    """Not a member of the roster at all (not support staff)."""

    field = PERSON

    def __init__(self, user: str) -> None:
        super().__init__(f"{user} is not on the rota: only support staff are")
        self.user = user


class OffRota(RotaError):
    """A member a manager (or the staff sync) took off the rota."""

    field = PERSON

    def __init__(self, user: str) -> None:
        super().__init__(f"{user} is not on the rota at the moment")
        self.user = user


class AwayThen(RotaError):
    """The person is on time off during the duty."""

    field = PERSON

    def __init__(self, user: str, first_day: date, last_day: date) -> None:
        super().__init__(f"{user} is on time off from {first_day} to {last_day}")
        self.user, self.first_day, self.last_day = user, first_day, last_day


class CannotSwapWithYourself(RotaError):
    field = PERSON

    def __init__(self) -> None:
        super().__init__("a duty is offered to a colleague, not to yourself")


# -- duties ---------------------------------------------------------------------------


class DutyNotFound(RotaError):
    def __init__(self, duty_id: int) -> None:
        super().__init__(f"duty {duty_id} is not on the rota")
        self.duty_id = duty_id


class DutyOver(RotaError):
    def __init__(self, duty_id: int) -> None:
        super().__init__(f"duty {duty_id} is over")
        self.duty_id = duty_id


class NotYourDuty(RotaError):
    def __init__(self, duty_id: int, user: str) -> None:
        super().__init__(f"{user} can only offer a duty you hold, and duty {duty_id} is not theirs")
        self.duty_id, self.user = duty_id, user


class AlreadyYours(RotaError):
    def __init__(self, duty_id: int, user: str) -> None:
        super().__init__(f"{user} already holds duty {duty_id}")
        self.duty_id, self.user = duty_id, user


class NoDutyThatNight(RotaError):
    def __init__(self, night: date) -> None:
        super().__init__(f"no published duty covers the night of {night}")
        self.night = night


class NoDutyNow(RotaError):
    def __init__(self) -> None:
        super().__init__("no duty is under way right now")


# -- swap and cover requests ----------------------------------------------------------


class AlreadyRequested(RotaError):
    """The duty already has an open request; one at a time."""

    field = PERSON

    def __init__(self, duty_id: int, swap_id: int, to_user: str, status: str) -> None:
        super().__init__(f"duty {duty_id} already has an open request ({swap_id} to {to_user}, {status})")
        self.duty_id, self.swap_id, self.to_user, self.status = duty_id, swap_id, to_user, status


class RequestNotFound(RotaError):
    def __init__(self, swap_id: int) -> None:
        super().__init__(f"request {swap_id} no longer exists")
        self.swap_id = swap_id


class OfferNotForYou(RotaError):
    field = PERSON

    def __init__(self, swap_id: int, to_user: str, user: str) -> None:
        super().__init__(f"offer {swap_id} was made to {to_user}, not to {user}")
        self.swap_id, self.to_user, self.user = swap_id, to_user, user


class NotInRequest(RotaError):
    def __init__(self, swap_id: int, user: str) -> None:
        super().__init__(f"only the people in request {swap_id} can withdraw it, not {user}")
        self.swap_id, self.user = swap_id, user


class RequestClosed(RotaError):
    """The request was decided, withdrawn or overtaken: its buttons have nothing left to do."""


class AlreadyClosed(RequestClosed):
    """`offer` is True for a colleague's answer to an offer, False for a request in general."""

    def __init__(self, swap_id: int, status: str, *, offer: bool) -> None:
        super().__init__(f"{'offer' if offer else 'request'} {swap_id} is already {status}")
        self.swap_id, self.status, self.offer = swap_id, status, offer


class OfferExpired(RequestClosed):
    def __init__(self, swap_id: int) -> None:
        super().__init__(f"offer {swap_id} has expired")
        self.swap_id = swap_id


class DutyMovedOn(RequestClosed):
    """The duty changed hands or ended after the request was made."""

    def __init__(self, swap_id: int, *, offer: bool) -> None:
        super().__init__(f"the duty of {'offer' if offer else 'request'} {swap_id} changed hands or ended")
        self.swap_id, self.offer = swap_id, offer


# -- time off -------------------------------------------------------------------------


class TimeOffBackwards(RotaError):
    def __init__(self, first_day: date, last_day: date) -> None:
        super().__init__(f"the time off ends ({last_day}) before it starts ({first_day})")
        self.first_day, self.last_day = first_day, last_day


class TimeOffOver(RotaError):
    def __init__(self, first_day: date, last_day: date) -> None:
        super().__init__(f"{first_day} to {last_day} is already over")
        self.first_day, self.last_day = first_day, last_day


class TimeOffTooFar(RotaError):
    def __init__(self, first_day: date, last_day: date) -> None:
        super().__init__(f"{first_day} to {last_day} is too far ahead or too long")
        self.first_day, self.last_day = first_day, last_day


class TimeOffNotFound(RotaError):
    def __init__(self, time_off_id: int) -> None:
        super().__init__(f"time off {time_off_id} is not on record (or already cancelled)")
        self.time_off_id = time_off_id


class NotYourTimeOff(RotaError):
    def __init__(self, time_off_id: int, user: str) -> None:
        super().__init__(f"only a manager can cancel someone else's time off ({time_off_id}, not {user}'s)")
        self.time_off_id, self.user = time_off_id, user


# -- roster and ledger ----------------------------------------------------------------


class WeightOutOfRange(RotaError):
    def __init__(self, weight: float) -> None:
        super().__init__(f"a weight is above 0 and at most 1, not {weight}")
        self.weight = weight


class NoPersonalFeed(RotaError):
    def __init__(self, user: str) -> None:
        super().__init__(f"{user} is not on the rota, so has no personal feed")
        self.user = user


class NoDaysGiven(RotaError):
    def __init__(self) -> None:
        super().__init__("give the day or days taken off")


class NotDaysInLieu(RotaError):
    def __init__(self, unit: str) -> None:
        super().__init__(f"compensation is paid in {unit}, not taken as days off")
        self.unit = unit


class ReasonNeeded(RotaError):
    def __init__(self) -> None:
        super().__init__("an adjustment needs a reason")


class BadAmount(RotaError):
    def __init__(self, amount: Decimal) -> None:
        super().__init__(f"the amount must be a number other than 0, not {amount}")
        self.amount = amount
