"""A PostgreSQL cluster of a test's own, so the test may stop, crash and restart it
while the machine's shared server keeps serving every other test.

Debian's binaries (`initdb`, `pg_ctl`) live in /usr/lib/postgresql/<version>/bin.
PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
user and every command runs through `runuser`; as anyone else it runs as that user.
Trust authentication on a loopback port: a throwaway cluster holds no secrets.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa

from bot.sandbox.imap_server import free_port

_SEARCH = ("/usr/lib/postgresql",)


def postgres_bin_dir() -> Path | None:
    """The newest installed server's bin directory, or None when there is none."""
    for root in _SEARCH:
        base = Path(root)
        if not base.is_dir():
            continue
        versions = sorted(
            (p for p in base.iterdir() if (p / "bin" / "pg_ctl").exists()),
            key=lambda p: int(p.name) if p.name.isdigit() else 0,
        )
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PrivatePostgres:
    """initdb, start, stop, restart (fast or immediate, i.e. a crash) and a database URL."""

    def __init__(self, database: str = "supportbot") -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin_dir = bin_dir
        self.database = database
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        result = self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            "60",
            *extra,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl {action} failed: {result.stdout}{result.stderr}\n{self.log()}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"port = {self.port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.root}'\n"
            # Small and quick: a test cluster with a few connections per replica.
            "max_connections = 200\n"
            "shared_buffers = 32MB\n"
            "fsync = off\n"
            "full_page_writes = off\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(options)

    def start(self) -> None:
        self._pg_ctl("start", "-o", f"-p {self.port}")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> float:
        """Restart; `immediate` is a crash (no shutdown checkpoint, recovery at start).
        Returns the seconds the server was unavailable."""
        started = time.monotonic()
        self._pg_ctl("restart", "-m", mode, "-o", f"-p {self.port}")
        return time.monotonic() - started

    def create_database(self) -> None:
        admin = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.database}"'))
        admin.dispose()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
            self.start()
            self.create_database()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
