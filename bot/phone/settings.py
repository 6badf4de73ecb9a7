"""Phone pages through Twilio, and the escalation policy: off unless TWILIO_ACCOUNT_SID is set.

Twilio authenticates the bot with the account's auth token or an API key; it signs the
webhooks it sends us (keypresses, call status, inbound SMS) with the auth token only, so
without TWILIO_AUTH_TOKEN calls and SMS still go out but nothing they answer is believed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers

from bot.env_reader import ConfigError, EnvReader
from rota.page_policy import PagePlan, PolicyError, parse_policy

TWILIO_API = "https://api.twilio.com"
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    from_number: str  # E.164
    auth_token: str | None = field(default=None, repr=False)
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)
    api_url: str = TWILIO_API

    @property
    def credentials(self) -> tuple[str, str]:
        """(username, password) for Twilio's REST API: an API key when given, else the auth token."""
        if self.api_key_sid and self.api_key_secret:
            return self.api_key_sid, self.api_key_secret
        assert self.auth_token is not None
        return self.account_sid, self.auth_token


@dataclass(frozen=True)
class PhoneSettings:
    twilio: TwilioSettings | None  # None: pages go by Slack only
    policy: PagePlan | None  # None: PAGE_REPEATS and PAGE_REPEAT_MINUTES, Slack only

    @property
    def account_sid(self) -> str:
        return self.twilio.account_sid if self.twilio else ""

    def secrets(self) -> list[str]:
        if self.twilio is None:
            return []
        return [s for s in (self.twilio.auth_token, self.twilio.api_key_secret) if s]


def load_phone_settings(r: EnvReader) -> PhoneSettings | None:
    """None when neither Twilio nor PAGE_POLICY is set (pages by Slack DM, as always)."""
    policy = _policy(r)
    twilio = _twilio(r)
    if policy is not None and policy.uses_phone and twilio is None:
        raise ConfigError("PAGE_POLICY calls or texts people, but TWILIO_ACCOUNT_SID is not set")
    if policy is None and twilio is None:
        return None
    return PhoneSettings(twilio=twilio, policy=policy)


def _policy(r: EnvReader) -> PagePlan | None:
    raw = r.raw("PAGE_POLICY")
    if raw is None:
        return None
    try:
        return parse_policy(raw)
    except PolicyError as exc:
        raise ConfigError(f"PAGE_POLICY is not valid ({exc})") from None


def _twilio(r: EnvReader) -> TwilioSettings | None:
    sid = r.raw("TWILIO_ACCOUNT_SID")
    if sid is None:
        return None
    if not _ACCOUNT_SID.match(sid):
        raise ConfigError("TWILIO_ACCOUNT_SID must be an account SID: AC and 32 hex digits")
    token = r.raw("TWILIO_AUTH_TOKEN")
    key_sid, key_secret = r.raw("TWILIO_API_KEY_SID"), r.raw("TWILIO_API_KEY_SECRET")
    if key_sid is not None and not _KEY_SID.match(key_sid):
        raise ConfigError("TWILIO_API_KEY_SID must be an API key SID: SK and 32 hex digits")
    if bool(key_sid) != bool(key_secret):
        raise ConfigError("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET go together: set both or neither")
    if token is None and key_sid is None:
        raise ConfigError("TWILIO_AUTH_TOKEN is not set (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET)")
    raw_from = r.required("TWILIO_FROM", "the Twilio number calls and SMS come from, e.g. +390212345678")
    try:
        number = phonenumbers.parse(raw_from, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ConfigError(
            f"TWILIO_FROM must be a phone number in E.164 form like +390212345678, got {raw_from!r}"
        )
    api_url = r.text("TWILIO_API_URL", TWILIO_API).rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", api_url):
        raise ConfigError(f"TWILIO_API_URL must be an http(s) address with no path, got {api_url!r}")
    return TwilioSettings(
        account_sid=sid,
        from_number=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        auth_token=token,
        api_key_sid=key_sid,
        api_key_secret=key_secret,
        api_url=api_url,
    )
