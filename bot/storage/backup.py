"""`supportbot db backup` and `db restore`: a consistent copy while the bot runs.

SQLite: the online backup API (`sqlite3.Connection.backup`) copies a snapshot page by page
inside one read transaction; in WAL mode the bot keeps writing meanwhile. PostgreSQL:
`pg_dump --format=custom` reads one snapshot; `pg_restore` loads it. Both tools are
PostgreSQL's own (Debian's postgresql-client), given the password through the environment
so it never shows in the process list.

A restore checks the backup's schema revision before touching anything: a backup made by a
newer version (a revision our migrations do not know) is refused; an older one is restored
and then upgraded, as `supportbot run` would.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import Engine, MetaData, func, inspect, select, text
from sqlalchemy.engine import URL, make_url

from bot.storage.db import alembic_config, make_engine, upgrade
from bot.storage.models import Base, Counter

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why, on one line."""


# -- backing up ------------------------------------------------------------------------


def backup(url: str, file: Path) -> None:
    """Write a consistent copy of the database at `url` to `file` (replaced atomically)."""
    partial = file.with_name(file.name + ".partial")
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            source_path = _sqlite_path(parsed)
            if not source_path.is_file():
                raise BackupError(f"there is no SQLite database at {source_path}")
            partial.unlink(missing_ok=True)
            source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
            target = sqlite3.connect(partial)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        else:
            _pg_tool("pg_dump", parsed, ["--format=custom", "--no-owner", f"--file={partial}"])
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)


# -- restoring -------------------------------------------------------------------------


def restore(url: str, file: Path, *, force: bool = False) -> str:
    """Load `file` into the database at `url`; returns the revision the database is at after.

    Refuses a database holding data unless `force`, and a backup newer than our migrations.
    """
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    kind = backup_kind(file)
    if kind != ("sqlite" if sqlite else "postgresql"):
        raise BackupError(
            f"{file} is a {kind} backup and DATABASE_URL is a {parsed.get_backend_name()} database"
            " (to move from SQLite to PostgreSQL use `supportbot db copy`)"
        )
    revision = backup_revision(file, kind)
    _check_known(url, revision)
    engine = make_engine(url)
    try:
        if not force and not is_empty(engine):
            raise BackupError("the database at DATABASE_URL holds data; pass --force to replace it")
        if sqlite:
            engine.dispose()
            source = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
            target = sqlite3.connect(_sqlite_path(parsed))
            try:
                source.backup(target)  # replaces every page of the target
            finally:
                target.close()
                source.close()
        else:
            _drop_everything(engine)
            engine.dispose()
            _pg_tool(
                "pg_restore",
                parsed,
                ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(file)],
            )
    finally:
        engine.dispose()
    upgrade(url)
    return revision_of(url)


def backup_kind(file: Path) -> str:
    try:
        with file.open("rb") as stream:
            start = stream.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {file}: {exc.strerror}") from None
    if start.startswith(SQLITE_MAGIC):
        return "sqlite"
    if start.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{file} is neither a SQLite database nor a pg_dump custom-format backup")


def backup_revision(file: Path, kind: str) -> str | None:
    """The schema revision recorded in a backup (alembic_version), read without restoring it."""
    if kind == "sqlite":
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            return None
        finally:
            conn.close()
        return str(row[0]) if row else None
    listing = _run(["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(file)], {})
    # The data section is a COPY block: `COPY public.alembic_version (version_num) FROM stdin;`,
    # one line per row, then `\.`.
    match = re.search(r"^COPY [^\n]*alembic_version[^\n]*FROM stdin;\n([^\n\\]+)\n", listing, re.M)
    return match[1].strip() if match else None


def _check_known(url: str, revision: str | None) -> None:
    from alembic.script import ScriptDirectory  # why: heavy, as in bot/storage/db.py

    script = ScriptDirectory.from_config(alembic_config(url))
    known = {rev.revision for rev in script.walk_revisions()}
    if revision is None:
        raise BackupError(
            "the backup holds no schema revision (alembic_version); is it a supportbot database?"
        )
    if revision not in known:
        raise BackupError(
            f"the backup is at schema revision {revision}, which this version does not know"
            f" (its newest is {script.get_current_head()}): restore it with a newer supportbot"
        )


def revision_of(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())
    finally:
        engine.dispose()


def is_empty(engine: Engine) -> bool:
    """No rows in any of our tables (the ticket counter the first migration seeds at 0 aside)."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in present:
                continue
            if table.name == Counter.__tablename__:
                if conn.scalar(select(func.count()).select_from(table).where(table.c.value != 0)):
                    return False
            elif conn.execute(select(1).select_from(table).limit(1)).first() is not None:
                return False
    return True


def _drop_everything(engine: Engine) -> None:
    """Drop every table (ours, Alembic's, any left by an older version) before a forced restore."""
    found = MetaData()
    found.reflect(engine)
    found.drop_all(engine)


# -- PostgreSQL's tools ----------------------------------------------------------------


def _pg_tool(tool: str, url: URL, args: list[str]) -> str:
    env: dict[str, str] = {}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return _run([tool, f"--dbname={target}", *args], env)


def _run(command: list[str], env: dict[str, str]) -> str:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (Debian: apt install postgresql-client)")
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        problem = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise BackupError(f"{command[0]} failed: {problem}")
    return done.stdout


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("DATABASE_URL names an in-memory SQLite database: there is nothing to back up")
    return Path(url.database)
