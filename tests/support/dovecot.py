"""A real Dovecot (Debian's dovecot-imapd) on loopback, with the same surface as the
sandbox's PymapServer, so the IMAP tests can run against a production IMAP server too.

Dovecot runs from a throwaway directory with its own config; it never reads
/etc/dovecot and needs no systemd. As root, Dovecot refuses to run its login process
as root and will not open mail as root either, so logins run as `dovenull`, internal
services and the mailbox as `dovecot` (Debian creates both users). As anyone else
it runs rootless, every process as the current user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bot.sandbox.imap_server import MailboxOps, free_port

# Debian installs the binary in /usr/sbin, which is not on a normal user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])

# Files that hold the maildir's UIDs and UIDVALIDITY; deleting them makes Dovecot
# number the mailbox afresh. `dovecot-uidvalidity*` is kept on purpose: Dovecot uses
# it to make every new UIDVALIDITY larger than the last, so the renumbering is sure
# to change it even within the same second.
_UID_STATE_FILES = ("dovecot-uidlist", "dovecot.index*", "dovecot.list.index*")


def dovecot_binary() -> str | None:
    return shutil.which("dovecot", path=_SEARCH_PATH)


class DovecotServer(MailboxOps):
    def __init__(
        self,
        directory: Path | None = None,
        *,
        user: str = "support@example.com",
        password: str = "secret",
        port: int | None = None,
    ) -> None:
        if ":" in user or ":" in password or "\n" in user + password:
            raise ValueError("user and password go into a passwd-file: no ':' or newlines")
        binary = dovecot_binary()
        if binary is None:
            raise FileNotFoundError("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
        self.binary = binary
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
        # Dovecot 2.4 (Debian 13) renamed and restructured most of the settings below;
        # say so plainly rather than fail on a config error.
        if not version.startswith("2.3."):
            raise RuntimeError(f"the config here is written for Dovecot 2.3, found {version.strip()}")
        # Not under pytest's tmp_path by default: that lies below a 0700 directory of the
        # user running the tests, which Dovecot's unprivileged processes cannot enter.
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="dovecot-")).resolve()
        self.user = user
        self.password = password
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    # -- configuration -------------------------------------------------------------

    @property
    def maildir(self) -> Path:
        return self.directory / "mail"

    @property
    def log_path(self) -> Path:
        return self.directory / "dovecot.log"

    def _accounts(self) -> tuple[str, str, str, int, int]:
        """(login user, internal user, internal group, mail uid, mail gid) for this euid."""
        if os.geteuid() == 0:
            mail = pwd.getpwnam("dovecot")
            return "dovenull", "dovecot", "dovecot", mail.pw_uid, mail.pw_gid
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, grp.getgrgid(os.getegid()).gr_name, me.pw_uid, os.getegid()

    def _write_config(self) -> Path:
        login_user, internal_user, internal_group, uid, gid = self._accounts()
        root = os.geteuid() == 0
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        # Dovecot's unprivileged processes must reach the mailbox, the users file and
        # the sockets in base_dir below this directory.
        d.chmod(0o755)
        for sub in ("run", "state", "home", "mail"):
            (d / sub).mkdir(exist_ok=True)
        if root:
            for sub in ("home", "mail"):
                for path in [d / sub, *(d / sub).rglob("*")]:
                    os.chown(path, uid, gid)
        users = d / "users"
        # passwd-file: user:password:uid:gid:gecos:home:shell:extra. A plaintext password
        # is fine for a throwaway mailbox and keeps logins instant.
        users.write_text(f"{self.user}:{{PLAIN}}{self.password}::::{d / 'home'}::\n")
        users.chmod(0o644)
        # Chrooting needs root; rootless Dovecot must not try.
        no_chroot = "" if root else "  chroot =\n"
        config = f"""\
# Written by tests/support/dovecot.py; self-contained, never reads /etc/dovecot.
protocols = imap
listen = {self.host}
base_dir = {d / "run"}
state_dir = {d / "state"}
log_path = {self.log_path}
info_log_path = {self.log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {uid}
last_valid_uid = 0
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{self.maildir}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d / "home"}
}}

service imap-login {{
{no_chroot}  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
{no_chroot}}}
"""
        path = d / "dovecot.conf"
        path.write_text(config)
        return path

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        config = self._write_config()
        # A master.pid left by a killed server would make Dovecot refuse to start if
        # its pid had been reused meanwhile.
        (self.directory / "run" / "master.pid").unlink(missing_ok=True)
        command = [self.binary, "-F", "-c", str(config)]
        setpriv = shutil.which("setpriv", path=_SEARCH_PATH)
        if setpriv is not None:
            # If the test process dies hard (SIGKILL, os._exit by a timeout), the kernel
            # stops Dovecot too instead of leaving a root daemon holding the port. It
            # watches the starting *thread*: start from one that outlives the server.
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        log = (self.directory / "dovecot.out").open("ab")
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._sweep()
                self.proc = None
                raise RuntimeError(f"dovecot exited with {code}: {self._log_tail()}")
            try:
                with self.client():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    self.kill()
                    raise
                time.sleep(0.05)

    def _log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("dovecot.out", "dovecot.log"):
            path = self.directory / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _sweep(self) -> None:
        """Kill whatever is left of the server's process group (its own session): imap
        and login processes must not outlive their master."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._sweep()
                self.proc.wait(10)
        self._sweep()
        self.proc = None

    def kill(self) -> None:
        """Die like a crashed server: the master and every session at once."""
        if self.proc is None:
            return
        self._sweep()
        self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> DovecotServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def reset_uidvalidity(self) -> None:
        """Renumber the mailbox, as after a restore or a migration: Dovecot rebuilds its
        uidlist and indexes from the mail files, which it keeps, under a new UIDVALIDITY."""
        before = self.uidvalidity()
        self.stop()
        for pattern in _UID_STATE_FILES:
            for path in self.maildir.rglob(pattern):
                path.unlink()
        self.start()
        if self.uidvalidity() == before:
            raise RuntimeError("dovecot kept its UIDVALIDITY")
