"""A real IMAP server on loopback: pymap (pure Python, IDLE, maildir on disk) run as a
child process. The test suite and the local sandbox both use it.

The maildir backend keeps mail on disk, so the server can be killed and restarted
mid-test with its mailbox intact, and its UIDVALIDITY renumbered on demand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient
from pysasl.hashing import BuiltinHash

# Login hashing cost: pymap's default (500,000 PBKDF2 rounds) makes each login take
# a third of a second; a throwaway local mailbox does not need it.
_HASH_ROUNDS = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailboxOps:
    """A local IMAP server's life cycle and what tests and the sandbox do to its mailbox,
    over a real IMAP connection (pymap here, Dovecot in CI). Subclasses start and stop it."""

    host: str
    port: int
    user: str
    password: str
    directory: Path
    _own_dir: bool

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, raw: bytes, flags: Sequence[bytes | str] = (), folder: str = "INBOX") -> int:
        with self.client() as client:
            answer = client.append(folder, raw, flags=tuple(flags))
        return _appended_uids(answer)[-1]

    def append_many(self, raws: Sequence[bytes], folder: str = "INBOX") -> list[int]:
        """One MULTIAPPEND (RFC 3502) per call: one round trip instead of one per mail."""
        if not raws:
            return []
        with self.client() as client:
            answer = client.multiappend(folder, list(raws))
        return _appended_uids(answer)

    def set_seen(self, uid: int, folder: str = "INBOX") -> None:
        with self.client() as client:
            client.select_folder(folder)
            client.add_flags([uid], [b"\\Seen"])

    def flags(self, uid: int, folder: str = "INBOX") -> tuple[bytes, ...]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return tuple(client.get_flags([uid]).get(uid, ()))

    def count(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.select_folder(folder, readonly=True)[b"EXISTS"])

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])


class PymapServer(MailboxOps):
    def __init__(
        self,
        directory: Path | None = None,
        *,
        user: str = "support@example.com",
        password: str = "secret",
        port: int | None = None,
    ) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="pymap-"))
        self.user = user
        self.password = password
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def _write_users(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # passwd(5)-style files: name:password:uid:gid:comment:home:shell, shadow(5) likewise.
        (self.directory / "pymap-etc-passwd").write_text(f"{self.user}:::::mail:\n")
        hashed = BuiltinHash(rounds=_HASH_ROUNDS).hash(self.password)
        (self.directory / "pymap-etc-shadow").write_text(f"{self.user}:{hashed}:::::::\n")
        (self.directory / "pymap-etc-group").touch()

    @property
    def maildir(self) -> Path:
        return self.directory / "mail"

    def start(self, timeout: float = 20.0) -> None:
        self._write_users()
        log = (self.directory / "pymap.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pymap.main import main; main()",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--no-tls",
                "maildir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"pymap exited with {self.proc.returncode}; see {self.directory}/pymap.log"
                )
            try:
                with self.client():
                    return
            except (OSError, Exception):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> PymapServer:
        self.start()
        return self

    def reset_uidvalidity(self) -> None:
        """Renumber the mailbox, as a server does after a restore or a migration: the
        same messages come back with new UIDs under a new UIDVALIDITY."""
        before = self.uidvalidity()
        self.stop()
        for uidlist in self.maildir.rglob("dovecot-uidlist"):
            uidlist.unlink()
        time.sleep(1.0)  # pymap derives UIDVALIDITY from the clock, in seconds
        self.start()
        if self.uidvalidity() == before:
            raise RuntimeError("pymap kept its UIDVALIDITY")

    def write_backlog(self, raws: Sequence[bytes]) -> None:
        """Drop mail straight into the maildir while the server is stopped, as a delivery
        agent would: far faster than APPEND for building large backlogs."""
        if self.proc is not None:
            raise RuntimeError("stop the server before writing to its maildir")
        new = self.maildir / "new"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        for n, raw in enumerate(raws):
            (new / f"{stamp}.M{n}P{os.getpid()}.localhost").write_bytes(raw)


def _appended_uids(answer: bytes | str) -> list[int]:
    """UIDs from an APPENDUID response code (RFC 4315): '[APPENDUID 12 5]' or '[APPENDUID 12 5:9]'."""
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    if "APPENDUID" not in text:
        raise RuntimeError(f"server did not report the appended UID: {text}")
    uid_set = text.split("APPENDUID", 1)[1].split("]", 1)[0].split()[1]
    uids: list[int] = []
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids
