"""Dovecot taking SASL XOAUTH2: an `oauth2` passdb that asks the OAuth stand-in
(tests/support/oauth_introspection.py) about each token, by RFC 7662 introspection.

The password passdb stays for PLAIN and LOGIN, so tests still fill the mailbox with the
password (`append`); XOAUTH2 logins go to the oauth2 passdb only (`mechanisms`).
Dovecot 2.3's oauth2 passdb does not read `exp` itself: a token it is asked about is
valid while introspection says `active`, which the stand-in stops saying at expiry.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

from tests.support.dovecot import DovecotServer
from tests.support.oauth_introspection import OAuthStandIn


class OAuthDovecot(DovecotServer):
    def __init__(
        self,
        introspection_url: str,
        directory: Path | None = None,
        *,
        ca_file: Path | None = None,
        **kwargs: object,
    ) -> None:
        """`ca_file`: the certificate to trust for an https introspection URL (the token
        endpoints' stand-in, tests/support/token_endpoints.py)."""
        super().__init__(directory, **kwargs)  # type: ignore[arg-type]
        self.introspection_url = introspection_url
        self.ca_file = ca_file

    def _write_config(self) -> Path:
        path = super()._write_config()
        oauth2 = self.directory / "dovecot-oauth2.conf.ext"
        oauth2.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "force_introspection = yes\n"
        )
        if self.ca_file is not None:
            # Copied beside the config: the auth process (dovecot's user when run as root)
            # may not enter the test's own temporary directory.
            trusted = self.directory / "introspection-ca.pem"
            trusted.write_bytes(self.ca_file.read_bytes())
            trusted.chmod(0o644)
            with oauth2.open("a") as config_file:
                config_file.write(f"tls_ca_cert_file = {trusted}\n")
        oauth2.chmod(0o644)
        config = path.read_text()
        config = config.replace("auth_mechanisms = plain login\n", "auth_mechanisms = plain login xoauth2\n")
        # No delay after a refused login: tests refuse tokens on purpose.
        config = config.replace(
            "disable_plaintext_auth = no\n", "disable_plaintext_auth = no\nauth_failure_delay = 0\n"
        )
        config = config.replace(
            "passdb {\n  driver = passwd-file\n",
            "passdb {\n  driver = passwd-file\n  mechanisms = plain login\n",
        )
        config += f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2
  args = {oauth2}
}}
"""
        path.write_text(config)
        return path


class ExpiredSessionCutter:
    """Ends each XOAUTH2 session the moment its token expires, as Exchange Online does
    ("AccessTokenExpired"); Dovecot itself keeps such a session open.

    Dovecot logs each login with the pid of the session's imap process (`mpid`); the
    n-th XOAUTH2 login is the n-th token the authorisation server found active (the test
    logs in to this server only, one login at a time). `cut` lists the sessions ended.
    """

    def __init__(self, server: OAuthDovecot, oauth: OAuthStandIn) -> None:
        self.server = server
        self.oauth = oauth
        self.cut: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-cutter", daemon=True)

    def __enter__(self) -> ExpiredSessionCutter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            pids = [int(p) for p in _XOAUTH2_LOGIN.findall(self.server.log_path.read_text(errors="replace"))]
            for pid, check in zip(pids, self.oauth.accepted(), strict=False):
                if pid in self.cut or time.time() < self.oauth.expiry_of(check.token):
                    continue
                if _is_imap_session(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    self.cut.append(pid)


_XOAUTH2_LOGIN = re.compile(r"method=XOAUTH2, .*?mpid=(\d+)")


def _is_imap_session(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "imap"
    except OSError:
        return False  # logged out already


def end_oauth_sessions(server: OAuthDovecot) -> int:
    """End every open XOAUTH2 session at once, as Exchange Online does when a token is revoked
    (continuous access evaluation): Dovecot checks a token only at login. Returns how many."""
    ended = 0
    for pid in {int(p) for p in _XOAUTH2_LOGIN.findall(server.log_path.read_text(errors="replace"))}:
        if _is_imap_session(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                ended += 1
    return ended
