"""A manager's correction to someone's compensation, and the notice it owes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from rota import ledger
from rota.ledger import LineView
from rota.notices import CompNotice


@dataclass(frozen=True)
class Adjusted:
    line: LineView
    notices: tuple[CompNotice, ...]


def adjust_compensation(
    session: Session, user: str, amount: Decimal, reason: str, *, by: str, now: datetime, unit: str
) -> Adjusted:
    line = ledger.adjust(session, user, amount, reason, by=by, now=now, unit=unit)
    return Adjusted(line, (CompNotice(user, line, by),))
