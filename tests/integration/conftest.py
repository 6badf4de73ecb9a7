"""The stand-in servers integration tests run the bot against (database fixtures are
in tests/conftest.py, shared with the unit tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.dovecot import DovecotServer, dovecot_binary
from tests.support.dovecot_oauth import OAuthDovecot
from tests.support.oauth_introspection import OAuthStandIn
from tests.support.settings import CHANNEL


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
    need_dovecot()
    with DovecotServer() as server:
        yield server


def need_dovecot() -> None:
    if dovecot_binary() is None:
        if os.environ.get("CI") == "true":
            # CI installs dovecot-imapd (.ci/run); a silent skip there would hide that
            # these tests never ran against it.
            pytest.fail("CI=true but dovecot is not installed (apt-get install dovecot-imapd)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")


@pytest.fixture
def oauth() -> Iterator[OAuthStandIn]:
    """The OAuth authorisation server: tokens, and introspection for the mail servers."""
    with OAuthStandIn() as standin:
        yield standin


@pytest.fixture
def oauth_dovecot(oauth: OAuthStandIn) -> Iterator[OAuthDovecot]:
    """Dovecot taking XOAUTH2 tokens, judged by `oauth` (mark the test `dovecot`)."""
    need_dovecot()
    with OAuthDovecot(f"{oauth.url}/introspect") as server:
        yield server
