"""Fresh, migrated databases for tests: a copied SQLite file, or a PostgreSQL
database cloned from a migrated template (CREATE DATABASE … TEMPLATE), so every
test starts clean without paying for the migrations again."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from bot.storage.db import alembic_config, upgrade

# CI sets this to run the whole suite again on PostgreSQL.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def head_revision() -> str:
    """The newest migration: what a database is at after `upgrade` (it moves with every new one)."""
    return str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def backend() -> str:
    return "postgresql" if TEST_DATABASE_URL else "sqlite"


def _pg_url(database: str) -> str:
    url = make_url(TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    return url.set(database=database).render_as_string(hide_password=False)


class DatabaseFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.counter = itertools.count()
        self.prefix = f"sbtest_{os.getpid()}"
        self.template: str | None = None
        self.created: list[str] = []

    def _admin(self) -> sa.Engine:
        return sa.create_engine(
            _pg_url(make_url(TEST_DATABASE_URL).database or "postgres"), isolation_level="AUTOCOMMIT"
        )

    def _create(self, name: str, template: str | None = None) -> str:
        """A fresh PostgreSQL database `name`, a copy of `template` if given (one left by a
        crashed run is dropped first), noted for dropping at the end."""
        copy = f' TEMPLATE "{template}"' if template else ""
        admin = self._admin()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
        admin.dispose()
        self.created.append(name)
        return name

    def _template(self) -> str:
        if self.template is not None:
            return self.template
        if backend() == "postgresql":
            name = self._create(f"{self.prefix}_template")
            upgrade(_pg_url(name))
            self.template = name
        else:
            path = self.workdir / "template.sqlite3"
            upgrade(f"sqlite:///{path}")
            self.template = str(path)
        return self.template

    def new_url(self) -> str:
        template = self._template()
        n = next(self.counter)
        if backend() == "postgresql":
            return _pg_url(self._create(f"{self.prefix}_{n}", template))
        path = self.workdir / f"db{n}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        if backend() != "postgresql":
            return
        name = make_url(url).database
        admin = self._admin()
        with admin.connect() as conn:
            # Bots killed by a test may leave sessions behind.
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop(_pg_url(name))


@contextmanager
def database_factory(workdir: Path) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(workdir)
    try:
        yield factory
    finally:
        factory.close()
