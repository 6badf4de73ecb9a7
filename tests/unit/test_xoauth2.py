"""The SASL XOAUTH2 words, as Google's protocol page spells them; the logins themselves
run against Dovecot and an SMTP server in tests/integration/test_mail_xoauth2.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.clock import FrozenClock
from bot.mail.watcher import renewal_time
from bot.mail.xoauth2 import _XOAuth2, mail_token_source, xoauth2_response
from tests.support.settings import make_settings


def test_the_initial_response_is_googles_example() -> None:
    # https://developers.google.com/gmail/imap/xoauth2-protocol, "Initial client response"
    response = xoauth2_response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert base64.b64encode(response.encode()).decode() == (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_smtp_sends_the_response_first_and_an_empty_line_to_the_error_challenge() -> None:
    auth = _XOAuth2("someuser@example.com", "token")
    # smtplib calls it with no challenge for the RFC 4954 initial response.
    assert auth() == "user=someuser@example.com\x01auth=Bearer token\x01\x01"
    error = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
    assert auth(error) == ""


def test_passwords_need_no_token_source() -> None:
    settings = make_settings("sqlite://")
    assert settings.mail_oauth is None
    assert mail_token_source(settings, None, FrozenClock(datetime(2026, 11, 20, tzinfo=UTC))) is None  # type: ignore[arg-type]


@given(
    lifetime=st.floats(min_value=0.001, max_value=24 * 3600),
    margin=st.floats(min_value=1, max_value=3600),
)
def test_a_session_ends_before_its_token_and_not_in_a_tight_loop(lifetime: float, margin: float) -> None:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    expires = now + timedelta(seconds=lifetime)
    ends = renewal_time(expires, now, timedelta(seconds=margin))
    assert ends < expires
    # At least half of what the token had left is used: no reconnecting in a tight loop.
    assert ends - now >= (expires - now) / 2 - timedelta(microseconds=1)
    if lifetime >= 2 * margin:
        assert ends == expires - timedelta(seconds=margin)
