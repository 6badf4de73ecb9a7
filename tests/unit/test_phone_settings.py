"""Twilio and PAGE_POLICY settings: off unless set, each mistake one line naming the setting."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

BASE = {
    "SLACK_BOT_TOKEN": "xoxb-1-secret-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "SUPPORT_CHANNEL": "C0SUPPORT",
    "IMAP_HOST": "imap.example.com",
    "IMAP_USER": "help@example.com",
    "IMAP_PASSWORD": "imap-password-value",
    "SMTP_HOST": "smtp.example.com",
    "SUPPORT_ADDRESS": "help@example.com",
}
SID = "AC" + "a" * 32
TWILIO = {
    "TWILIO_ACCOUNT_SID": SID,
    "TWILIO_AUTH_TOKEN": "twilio-token-value-123",
    "TWILIO_FROM": "+39 02 1234 5678",
}


def test_off_unless_configured() -> None:
    assert load_settings(BASE).phone is None


def test_twilio_with_a_policy() -> None:
    s = load_settings({**BASE, **TWILIO, "PAGE_POLICY": "oncall: slack, call+2m; managers: sms"})
    assert s.phone is not None and s.phone.twilio is not None and s.phone.policy is not None
    assert s.phone.twilio.from_number == "+390212345678"
    assert s.phone.twilio.credentials == (SID, "twilio-token-value-123")
    assert s.phone.twilio.api_url == "https://api.twilio.com"
    assert "twilio-token-value-123" in s.secrets()
    assert "twilio-token-value-123" not in repr(s)


def test_an_api_key_authenticates_instead_of_the_token() -> None:
    key = {"TWILIO_API_KEY_SID": "SK" + "b" * 32, "TWILIO_API_KEY_SECRET": "key-secret-value-456"}
    s = load_settings({**BASE, **TWILIO, **key})
    assert s.phone is not None and s.phone.twilio is not None
    assert s.phone.twilio.credentials == ("SK" + "b" * 32, "key-secret-value-456")
    assert "key-secret-value-456" in s.secrets()


def test_a_slack_only_policy_needs_no_twilio() -> None:
    s = load_settings({**BASE, "PAGE_POLICY": "oncall: slack, slack+3m; managers: slack"})
    assert s.phone is not None and s.phone.twilio is None and s.phone.policy is not None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"PAGE_POLICY": "oncall: slack, call+2m"},
            "PAGE_POLICY calls or texts people, but TWILIO_ACCOUNT_SID",
        ),
        ({"PAGE_POLICY": "oncall: pager"}, "PAGE_POLICY is not valid"),
        ({**TWILIO, "TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID"),
        ({**TWILIO, "TWILIO_FROM": "12"}, "TWILIO_FROM"),
        ({**TWILIO, "TWILIO_FROM": ""}, "TWILIO_FROM"),
        ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_FROM": "+390212345678"}, "TWILIO_AUTH_TOKEN"),
        ({**TWILIO, "TWILIO_API_KEY_SID": "SK" + "b" * 32}, "TWILIO_API_KEY_SECRET"),
        ({**TWILIO, "TWILIO_API_URL": "ftp://x"}, "TWILIO_API_URL"),
    ],
)
def test_mistakes_name_the_setting(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        load_settings({**BASE, **change})
    assert "\n" not in str(caught.value)
    assert "twilio-token-value-123" not in str(caught.value)
