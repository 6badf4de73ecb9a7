"""`supportbot db backup` while mail arrives, `db restore` into a fresh database: nothing
committed before the backup is lost, and the copy is consistent. Runs on SQLite, and on
PostgreSQL with TEST_DATABASE_URL (pg_dump / pg_restore)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.storage.db import make_engine, make_sessionmaker, upgrade
from bot.storage.models import MailboxCheckpoint, Message, OutboxItem, Ticket
from tests.support.databases import backend, head_revision
from tests.support.harness import bot_env, running_bot, wait_until
from tests.support.mail import customer_mail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MAILS = 200


def supportbot(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", *args], env=env, capture_output=True, text=True, timeout=120
    )


def ticket_ids(url: str) -> set[int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(Ticket.id)))
    finally:
        engine.dispose()


def test_a_backup_taken_while_mail_arrives_restores_everything_committed_before_it(
    imap, slack, database_url, db_factory, tmp_path
):
    mails = [customer_mail(n, subject=f"Backup round mail {n}") for n in range(MAILS)]
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, BURST_THRESHOLD="100000")
    backup_file = tmp_path / "supportbot.backup"

    def deliver_mail() -> None:
        for start in range(0, MAILS, 5):
            imap.append_many(mails[start : start + 5])
            time.sleep(0.05)

    with running_bot(env):
        sender = threading.Thread(target=deliver_mail, daemon=True)
        sender.start()
        wait_until(lambda: len(ticket_ids(database_url)) >= 40, timeout=60, what="some tickets")
        before = ticket_ids(database_url)
        result = supportbot(database_url, "backup", str(backup_file))
        after = ticket_ids(database_url)
        assert result.returncode == 0, result.stderr
        assert len(after) < MAILS, "the backup ran while mail was still arriving"
        sender.join(60)
        wait_until(lambda: len(ticket_ids(database_url)) == MAILS, timeout=120, what="every mail stored")

    target = fresh_database(db_factory, tmp_path)
    result = supportbot(target, "restore", str(backup_file))
    assert result.returncode == 0, result.stderr
    restored = ticket_ids(target)
    assert before <= restored <= after
    assert_consistent(target)

    # A database holding data is replaced only when asked to.
    refused = supportbot(target, "restore", str(backup_file))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "supportbot: db restore: the database at DATABASE_URL holds data; pass --force to replace it"
    )
    forced = supportbot(target, "restore", "--force", str(backup_file))
    assert forced.returncode == 0, forced.stderr
    assert ticket_ids(target) == restored
    db_factory.drop(target)


def assert_consistent(url: str) -> None:
    """Every ticket has its messages, every stored mail is at or below the checkpoint
    committed with it, and the database's own checks pass."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with factory() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket))
        with_messages = session.scalar(select(func.count(func.distinct(Message.ticket_id))))
        assert tickets == with_messages
        posts = session.scalar(select(func.count()).where(OutboxItem.kind == "slack.ticket_post"))
        assert posts == tickets
        checkpoint = session.scalar(select(MailboxCheckpoint.last_uid))
        highest = session.scalar(select(func.max(Message.imap_uid)))
        assert checkpoint is not None and highest == checkpoint
    if make_url(url).get_backend_name() == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    engine.dispose()


def fresh_database(db_factory, tmp_path: Path) -> str:
    if backend() == "sqlite":
        return f"sqlite:///{tmp_path / f'restored-{time.monotonic_ns()}.sqlite3'}"
    return db_factory.new_url()  # migrated and empty: restore replaces its empty schema


def test_restore_refuses_a_backup_newer_than_the_code_and_upgrades_an_older_one(db_factory, tmp_path):
    old = fresh_database(db_factory, tmp_path)
    if backend() == "postgresql":
        drop_everything(old)
    upgrade(old, "0011")
    old_backup = tmp_path / "old.backup"
    assert supportbot(old, "backup", str(old_backup)).returncode == 0

    target = fresh_database(db_factory, tmp_path)
    result = supportbot(target, "restore", str(old_backup))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"now at revision {head_revision()}")

    # A backup from a newer supportbot: its revision is unknown to our migrations.
    engine = make_engine(old)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    new_backup = tmp_path / "new.backup"
    assert supportbot(old, "backup", str(new_backup)).returncode == 0
    other = fresh_database(db_factory, tmp_path)
    refused = supportbot(other, "restore", str(new_backup))
    assert refused.returncode == 2
    assert "schema revision 0099, which this version does not know" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for url in (old, target, other):
        db_factory.drop(url)


def test_a_backup_of_the_wrong_kind_is_refused_by_name(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    result = supportbot(f"sqlite:///{tmp_path / 'x.sqlite3'}", "restore", str(junk))
    assert result.returncode == 2
    assert "is neither a SQLite database nor a pg_dump custom-format backup" in result.stderr


def drop_everything(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
