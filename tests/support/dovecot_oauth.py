"""Dovecot taking SASL XOAUTH2: an `oauth2` passdb that asks the OAuth stand-in
(tests/support/oauth_introspection.py) about each token, by RFC 7662 introspection.

The password passdb stays for PLAIN and LOGIN, so tests still fill the mailbox with the
password (`append`); XOAUTH2 logins go to the oauth2 passdb only (`mechanisms`).
Dovecot 2.3's oauth2 passdb does not read `exp` itself: a token it is asked about is
valid while introspection says `active`, which the stand-in stops saying at expiry.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.dovecot import DovecotServer


class OAuthDovecot(DovecotServer):
    def __init__(self, introspection_url: str, directory: Path | None = None, **kwargs: object) -> None:
        super().__init__(directory, **kwargs)  # type: ignore[arg-type]
        self.introspection_url = introspection_url

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
