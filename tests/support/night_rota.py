"""A night with Ada on call and Bob her backup, for paging tests at the rota level and end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.storage.db import transaction
from bot.storage.models import PageAttempt, RotaDuty
from bot.tickets.ingest import ingest_email
from rota import store
from rota.paging import PagePolicy
from rota.store import StaffMember
from tests.support.harness import CHANNEL
from tests.support.mail import customer_mail
from tests.support.settings import settings_for as harness_settings

ROME = ZoneInfo("Europe/Rome")
ADA, BOB, MAY = "UADA", "UBOB", "UMAY"
# Tuesday 2026-12-01, 23:00 in Rome: after hours, in the week Ada holds (planned from Sunday).
SUNDAY = datetime(2026, 11, 29, 10, 0, tzinfo=ROME).astimezone(UTC)
NIGHT = datetime(2026, 12, 1, 23, 0, tzinfo=ROME).astimezone(UTC)
POLICY = PagePolicy(
    repeat_every=timedelta(minutes=5), repeats=3, managers=(MAY,), dnd_escalate_after=timedelta(minutes=1)
)


def settings_for(database_url: str, **overrides: str) -> Settings:
    return harness_settings(database_url, **{"MANAGERS": MAY, **overrides})


def rota_with_ada_on_call(factory: sessionmaker[Session], settings: Settings) -> None:
    """Ada holds the week of 30 November, Bob the next: Bob is Ada's backup."""
    with transaction(factory) as session:
        store.sync_roster(session, [StaffMember(ADA, "Ada"), StaffMember(BOB, "Bob")], SUNDAY)
        preview = store.preview_plan(
            session,
            settings.calendar(),
            settings.plan_config(),
            now=SUNDAY,
            until=SUNDAY + timedelta(weeks=3),
        )
        store.publish_plan(session, preview, by=MAY, now=SUNDAY)
        week = store.duty_at(session, NIGHT)
        assert week is not None
        if week.user_id != ADA:
            # The planner's choice depends on names only; make the scenario explicit.
            for duty in store.duties_between(session, SUNDAY, SUNDAY + timedelta(weeks=3)):
                row = session.get(RotaDuty, duty.id)
                assert row is not None
                row.user_id = {ADA: BOB, BOB: ADA}.get(row.user_id or "", row.user_id)


def urgent_ticket(factory: sessionmaker[Session], n: int = 1, at: datetime = NIGHT) -> int:
    with transaction(factory) as session:
        result = ingest_email(
            session, customer_mail(n, subject=f"Server down {n}"), mailbox="box", channel=CHANNEL, now=at
        )
        return result.ticket_id


def attempts(factory: sessionmaker[Session]) -> list[tuple[int, str, str]]:
    with factory() as session:
        rows = session.scalars(select(PageAttempt).order_by(PageAttempt.id)).all()
        return [(row.step, row.level, row.user_id) for row in rows]


@pytest.fixture
def night(session_factory: sessionmaker[Session], database_url: str) -> sessionmaker[Session]:
    rota_with_ada_on_call(session_factory, settings_for(database_url))
    return session_factory
