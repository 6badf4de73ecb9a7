"""Engine, sessions and schema upgrades for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.resources import migrations_dir
from bot.storage.sqlite_writes import QueuedConnection, write_queue_for

_READ_ONLY = "supportbot_read_only"


# The name SQLite connections know Python's str.lower() by (see `bot.tickets.search`).
UNICODE_LOWER = "unicode_lower"


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _database_file(url: str) -> str:
    database = make_url(url).database or ":memory:"
    return database if database.startswith((":memory:", "file:")) else os.path.abspath(database)


# How long a writer waits for the lock, in the process's queue and then in SQLite's.
_SQLITE_BUSY_SECONDS = 30.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Writers of this process queue in Python (bot/storage/sqlite_writes.py); the busy
        # timeout is for other processes sharing the file. WAL lets readers run beside the writer.
        queue = write_queue_for(_database_file(url))
        engine = create_engine(
            url,
            connect_args={
                "timeout": _SQLITE_BUSY_SECONDS,
                "check_same_thread": False,
                "factory": QueuedConnection,
            },
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            if isinstance(dbapi_connection, QueuedConnection):
                dbapi_connection.write_queue = queue
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            # SQLite's lower() folds only A–Z; search folds other scripts through this one.
            dbapi_connection.create_function(UNICODE_LOWER, 1, _unicode_lower, deterministic=True)

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn: Any) -> None:
            # Take the write lock at BEGIN, not at the first write: otherwise two
            # deferred transactions that both read then write deadlock on upgrade
            # and one fails at once with "database is locked". A session that only
            # reads (`reading`) needs no lock: WAL runs it beside the writer.
            read_only = conn.get_execution_options().get(_READ_ONLY, False)
            if read_only:
                conn.exec_driver_sql("BEGIN")
                return
            raw = conn.connection.dbapi_connection
            queued = raw if isinstance(raw, QueuedConnection) else None
            if queued is not None:
                queued.start_write(_SQLITE_BUSY_SECONDS)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if queued is not None:
                    queued.end_write()
                raise

        # pysqlite's own BEGIN handling must be off for the listener above to work.
        @event.listens_for(engine, "connect", insert=True)
        def _sqlite_no_autobegin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only. On SQLite it does not queue for the single write lock, so
    queues, timelines and ticket cards answer while mail is ingested and posts delivered.
    Never write in it (it may fail with "database is locked"): that is `transaction`'s job."""
    with factory() as session:
        session.connection(execution_options={_READ_ONLY: True})
        yield session


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    with factory() as session, session.begin():
        yield session


# why (each alembic import below): alembic takes most of a second to import, and only schema
# commands need it, not every process (tests, subprocesses) that opens a session.
def alembic_config(url: str) -> Any:
    from alembic.config import Config  # why: heavy, see above

    config = Config()
    # Shipped in the package (see bot/resources): found the same from a checkout and a wheel.
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command  # why: heavy, see alembic_config

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command  # why: heavy, see alembic_config

    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext  # why: heavy, see alembic_config

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
