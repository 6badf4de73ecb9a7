"""Who must be told what after a change to the rota, as data.

A use case returns these; the Slack side turns each into a DM (or the channel post) and
queues it in the same transaction as the change, so a notice goes out exactly when its
change is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rota.ledger import LineView
from rota.store import DutyChange, DutyView, TimeOffView
from rota.swaps import SwapView


class SwapNews(StrEnum):
    OFFERED = "offered"  # to the colleague: accept or decline
    NEEDS_APPROVAL = "needs_approval"  # to each manager: approve or reject
    ACCEPTED_AWAITS_MANAGER = "accepted_awaits_manager"  # to the offerer
    DECLINED = "declined"  # to the offerer
    REJECTED = "rejected"  # to both people in the request
    HANDED_OVER = "handed_over"  # to the one who held the duty
    NOW_YOURS = "now_yours"  # to the new holder, when a manager approved
    DECIDED_ELSEWHERE = "decided_elsewhere"  # to the other managers: nothing left to do
    WITHDRAWN = "withdrawn"  # to the other person in a swap
    EXPIRED = "expired"  # to the offerer: nobody answered in time


@dataclass(frozen=True)
class SwapNotice:
    to: str
    news: SwapNews
    swap: SwapView
    duty: DutyView  # the duty as it stands now (after a split, the part that changed hands)
    actor: str
    under_way: bool = False  # the duty changed hands part way through
    approved: bool = False  # a manager applied it (not the people in it)


@dataclass(frozen=True)
class TimeOffNotice:
    """Someone else (a manager) recorded or cancelled your time off."""

    to: str
    cancelled: bool
    time_off: TimeOffView
    clashes: tuple[DutyView, ...]
    actor: str


@dataclass(frozen=True)
class CompNotice:
    """A manager adjusted your compensation."""

    to: str
    line: LineView
    actor: str


@dataclass(frozen=True)
class PlanChangesNotice:
    """A published plan changed duties of yours."""

    to: str
    gained: tuple[DutyChange, ...]
    lost: tuple[DutyChange, ...]
    actor: str


Notice = SwapNotice | TimeOffNotice | CompNotice | PlanChangesNotice
