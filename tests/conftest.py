"""Fixtures shared by both tiers of the suite.

- `tests/unit/`: pure functions and DB-session-level tests; no sockets, servers or child
  processes. The fast tier, under a minute: `pytest tests/unit`.
- `tests/integration/`: tests that start servers (IMAP, SMTP, the Slack stand-in, the bot's
  HTTP server, PostgreSQL clusters, a browser) or `supportbot` subprocesses. Their server
  fixtures live in tests/integration/conftest.py, so a unit test cannot ask for one.

A bare `pytest` (the README's command) runs both; `TEST_DATABASE_URL=postgresql://…` runs
every database test on PostgreSQL instead of SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.db import make_engine, make_sessionmaker
from tests.support.databases import DatabaseFactory, database_factory

# Property tests assert what comes out, not how fast: on a CI machine running both databases'
# suites side by side, hypothesis's per-example deadline and its "generation too slow" check
# failed tests that are correct. Every other setting stays hypothesis's default.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow], parent=settings.default
)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def db_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    with database_factory(tmp_path_factory.mktemp("databases")) as factory:
        yield factory


@pytest.fixture
def database_url(db_factory: DatabaseFactory) -> Iterator[str]:
    url = db_factory.new_url()
    yield url
    db_factory.drop(url)


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
