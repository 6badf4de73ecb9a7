from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import make_engine, make_sessionmaker
from tests.support.databases import DatabaseFactory, database_factory
from tests.support.dovecot import DovecotServer, dovecot_binary
from tests.support.harness import CHANNEL


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


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=(CHANNEL,)) as standin:
        yield standin


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[PymapServer]:
    with PymapServer(tmp_path / "imap") as server:
        yield server


@pytest.fixture(params=["pymap", pytest.param("dovecot", marks=pytest.mark.dovecot)])
def any_imap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PymapServer | DovecotServer]:
    """The mailbox for tests of IMAP behaviour: run once on pymap and once on Dovecot,
    a server the bot will meet in production."""
    if request.param == "pymap":
        with PymapServer(tmp_path / "imap") as server:
            yield server
        return
    if dovecot_binary() is None:
        if os.environ.get("CI") == "true":
            # CI installs dovecot-imapd (.ci/run); a silent skip there would hide that
            # these tests never ran against it.
            pytest.fail("CI=true but dovecot is not installed (apt-get install dovecot-imapd)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    with DovecotServer() as server:
        yield server
