"""Engine, sessions and schema upgrades for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bot.resources import migrations_dir

_READ_ONLY = "supportbot_read_only"


# The name SQLite connections know Python's str.lower() by (see `bot.tickets.search`).
UNICODE_LOWER = "unicode_lower"


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # A generous busy timeout lets the HTTP handlers, the IMAP watcher and the
        # outbox worker share one file; WAL lets readers run beside the writer.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
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
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

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
