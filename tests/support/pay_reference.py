"""The reference the pay-rule tests check `PayRules` against: a minute's rate read off the
wall clock, rule by rule, the slow and obvious way."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from bot.business_hours import BusinessCalendar
from rota.pay_rules import PayRules


def rate_of_minute(rules: PayRules, moment: datetime, calendar: BusinessCalendar) -> Decimal:
    """The first rule whose window holds what the calendar's clock reads at `moment` (a window
    past midnight belongs to the day it starts); 0 when none does."""
    local = moment.astimezone(calendar.tz)
    minute = local.hour * 60 + local.minute
    today, yesterday = local.date(), local.date() - timedelta(days=1)
    for rule in rules.in_order:
        for day, carried in ((today, False), (yesterday, True)):
            kind = "holiday" if calendar.is_holiday(day) else "weekend" if day.weekday() >= 5 else "weeknight"
            if not rule.matches_day(day.weekday(), kind, day):  # type: ignore[arg-type]
                continue
            start, end = rule.window or (0, 24 * 60)
            overnight = end <= start
            if (not carried and start <= minute < (24 * 60 if overnight else end)) or (
                carried and overnight and minute < end
            ):
                return rule.rate
    return Decimal(0)


def pay_by_the_minute(rules: PayRules, start: datetime, minutes: int, calendar: BusinessCalendar) -> Fraction:
    """What `minutes` from `start` earn when every after-hours minute is paid at its own rate."""
    paid = Fraction(0)
    for n in range(minutes):
        moment = start + timedelta(minutes=n)
        if not calendar.is_open(moment):
            paid += Fraction(rate_of_minute(rules, moment, calendar)) / 60
    return paid
